//! NAT boxes with the behaviours RFC 4787 names, so scenarios can put hosts behind the NATs
//! users actually sit behind. A NAT sits in front of the nodes inside it: their datagrams to
//! the outside leave from its public address through a mapping, and datagrams to its public
//! address come in only through a live mapping that the filtering rule lets them use.
//!
//! - Mapping (RFC 4787 §4.1): one external port per internal socket (endpoint-independent),
//!   per internal socket and destination address (address-dependent), or per internal socket
//!   and destination address and port (address-and-port-dependent, the "symmetric" NAT).
//! - Filtering (§5): anyone may use a mapping (endpoint-independent), only addresses the
//!   mapping has sent to (address-dependent), or only those addresses and ports.
//! - Timeout (§4.3): a mapping with no outbound traffic for the timeout is gone; only
//!   outbound traffic refreshes it (REQ-6 lets inbound refresh too; the stricter NAT is the
//!   one keepalives must survive).

use ocala_engine::Instant;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How much of the destination a mapping or a filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependence {
    EndpointIndependent,
    AddressDependent,
    AddressAndPortDependent,
}

/// `[[nats]]` in a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatSpec {
    pub name: String,
    /// The address the inside nodes appear to have.
    pub public_ip: IpAddr,
    /// The nodes behind it.
    pub inside: Vec<String>,
    #[serde(default = "default_mapping")]
    pub mapping: Dependence,
    #[serde(default = "default_filtering")]
    pub filtering: Dependence,
    /// Milliseconds a mapping lives without outbound traffic (RFC 4787 REQ-5 asks for at
    /// least two minutes; many boxes use 30 s).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_mapping() -> Dependence {
    Dependence::EndpointIndependent
}
fn default_filtering() -> Dependence {
    Dependence::AddressAndPortDependent
}
fn default_timeout() -> u64 {
    120_000
}

/// What a mapping is keyed by: the inside socket, and as much of the destination as the
/// mapping behaviour looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    node: usize,
    port: u16,
    dst: Option<IpAddr>,
    dst_port: Option<u16>,
}

#[derive(Debug)]
struct Mapping {
    key: Key,
    last_out: Instant,
    /// Every destination this mapping sent to, for filtering.
    sent_to: BTreeSet<SocketAddr>,
}

/// One NAT box.
#[derive(Debug)]
pub struct Nat {
    pub name: String,
    pub public_ip: IpAddr,
    mapping: Dependence,
    filtering: Dependence,
    timeout: Duration,
    by_key: BTreeMap<Key, u16>,
    by_port: BTreeMap<u16, Mapping>,
    next_port: u16,
}

/// Why a datagram to a NAT's public address went nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No live mapping on that port.
    NoMapping,
    /// The mapping exists but the filter does not let this sender use it.
    Filtered,
}

const FIRST_PORT: u16 = 20_000;

impl Nat {
    pub fn new(spec: &NatSpec) -> Nat {
        Nat {
            name: spec.name.clone(),
            public_ip: spec.public_ip,
            mapping: spec.mapping,
            filtering: spec.filtering,
            timeout: Duration::from_millis(spec.timeout_ms),
            by_key: BTreeMap::new(),
            by_port: BTreeMap::new(),
            next_port: FIRST_PORT,
        }
    }

    fn live(&self, m: &Mapping, now: Instant) -> bool {
        now.since(m.last_out) < self.timeout
    }

    /// The public source for a datagram from an inside node's `port` to `dst`.
    pub fn outbound(
        &mut self,
        now: Instant,
        node: usize,
        port: u16,
        dst: SocketAddr,
    ) -> SocketAddr {
        let key = Key {
            node,
            port,
            dst: (self.mapping != Dependence::EndpointIndependent).then_some(dst.ip()),
            dst_port: (self.mapping == Dependence::AddressAndPortDependent).then_some(dst.port()),
        };
        let existing = self
            .by_key
            .get(&key)
            .copied()
            .filter(|p| self.by_port.get(p).is_some_and(|m| self.live(m, now)));
        let ext = match existing {
            Some(p) => p,
            None => {
                if let Some(old) = self.by_key.remove(&key) {
                    self.by_port.remove(&old);
                }
                let p = self.free_port(now);
                self.by_key.insert(key, p);
                self.by_port.insert(
                    p,
                    Mapping {
                        key,
                        last_out: now,
                        sent_to: BTreeSet::new(),
                    },
                );
                p
            }
        };
        if let Some(m) = self.by_port.get_mut(&ext) {
            m.last_out = now;
            m.sent_to.insert(dst);
        }
        SocketAddr::new(self.public_ip, ext)
    }

    /// A port no live mapping uses (expired ones are reclaimed), chosen in sequence so runs
    /// repeat exactly.
    fn free_port(&mut self, now: Instant) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT);
            let stale = self.by_port.get(&p).map(|m| !self.live(m, now));
            match stale {
                None => return p,
                Some(true) => {
                    if let Some(m) = self.by_port.remove(&p) {
                        self.by_key.remove(&m.key);
                    }
                    return p;
                }
                Some(false) => {}
            }
        }
    }

    /// The inside node and port a datagram from `from` to public port `port` goes to.
    pub fn inbound(
        &self,
        now: Instant,
        from: SocketAddr,
        port: u16,
    ) -> Result<(usize, u16), Refused> {
        let m = self
            .by_port
            .get(&port)
            .filter(|m| self.live(m, now))
            .ok_or(Refused::NoMapping)?;
        let allowed = match self.filtering {
            Dependence::EndpointIndependent => true,
            Dependence::AddressDependent => m.sent_to.iter().any(|d| d.ip() == from.ip()),
            Dependence::AddressAndPortDependent => m.sent_to.contains(&from),
        };
        if allowed {
            Ok((m.key.node, m.key.port))
        } else {
            Err(Refused::Filtered)
        }
    }

    /// Forgets every mapping (a NAT reboot or rebinding): inside sockets get new ports.
    pub fn rebind(&mut self) {
        self.by_key.clear();
        self.by_port.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nat(mapping: Dependence, filtering: Dependence) -> Nat {
        Nat::new(&NatSpec {
            name: "n".into(),
            public_ip: "198.51.100.1".parse().unwrap(),
            inside: vec![],
            mapping,
            filtering,
            timeout_ms: 1000,
        })
    }

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapping_behaviours_choose_ports_by_what_they_look_at() {
        use Dependence::*;
        let (a, a2, b) = (sa("192.0.2.1:1"), sa("192.0.2.1:2"), sa("192.0.2.2:1"));
        let mut eim = nat(EndpointIndependent, EndpointIndependent);
        let p = eim.outbound(at(0), 0, 4790, a);
        assert_eq!(eim.outbound(at(0), 0, 4790, b), p);
        assert_ne!(eim.outbound(at(0), 1, 4790, a), p, "another inside node");
        let mut adm = nat(AddressDependent, EndpointIndependent);
        let p = adm.outbound(at(0), 0, 4790, a);
        assert_eq!(adm.outbound(at(0), 0, 4790, a2), p);
        assert_ne!(adm.outbound(at(0), 0, 4790, b), p);
        let mut apdm = nat(AddressAndPortDependent, EndpointIndependent);
        let p = apdm.outbound(at(0), 0, 4790, a);
        assert_ne!(apdm.outbound(at(0), 0, 4790, a2), p);
    }

    #[test]
    fn filters_admit_only_what_they_should() {
        use Dependence::*;
        let (a, a2, b) = (sa("192.0.2.1:1"), sa("192.0.2.1:2"), sa("192.0.2.2:1"));
        for (filtering, admits_a2, admits_b) in [
            (EndpointIndependent, true, true),
            (AddressDependent, true, false),
            (AddressAndPortDependent, false, false),
        ] {
            let mut n = nat(EndpointIndependent, filtering);
            let p = n.outbound(at(0), 3, 4790, a).port();
            assert_eq!(n.inbound(at(1), a, p), Ok((3, 4790)));
            assert_eq!(n.inbound(at(1), a2, p).is_ok(), admits_a2, "{filtering:?}");
            assert_eq!(n.inbound(at(1), b, p).is_ok(), admits_b, "{filtering:?}");
            assert_eq!(n.inbound(at(1), a, p + 1), Err(Refused::NoMapping));
        }
    }

    #[test]
    fn mappings_time_out_without_outbound_traffic_and_rebinding_moves_them() {
        use Dependence::*;
        let a = sa("192.0.2.1:1");
        let mut n = nat(EndpointIndependent, EndpointIndependent);
        let p = n.outbound(at(0), 0, 4790, a).port();
        assert_eq!(n.outbound(at(900), 0, 4790, a).port(), p, "refreshed");
        assert!(n.inbound(at(1800), a, p).is_ok());
        assert_eq!(n.inbound(at(1900), a, p), Err(Refused::NoMapping));
        let q = n.outbound(at(1900), 0, 4790, a).port();
        assert_ne!(q, p, "a new mapping after expiry");
        n.rebind();
        assert_eq!(n.inbound(at(1901), a, q), Err(Refused::NoMapping));
        assert_ne!(n.outbound(at(1902), 0, 4790, a).port(), q);
    }
}
