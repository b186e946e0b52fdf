//! Legacy gateways (paper §3.2.2, §5.3): where paths leave the overlays for hosts that run
//! no ocala.
//!
//! A **legacy server gateway** ends paths whose last hop is a plain IP name, written with the
//! reserved suffix `ip` (`web.company1.com.ip_gw1.udp`: over udp to `gw1`, then plain IP to
//! `web.company1.com`). The gateway resolves the name itself — an address from the client is
//! never trusted — checks its [`policy`], and answers the setup as the path's far end: the
//! secure path's handshake runs between the client and the gateway. Each such path gets an
//! **egress address** of its own, a handle from the gateway's pool bound to the client *and*
//! the destination. Packets from the client leave towards the server from that address, and
//! the server's answers, addressed back to it, find the path. The driver turns the egress
//! address into the host's own (a masquerade), so the kernel's connection tracking and its
//! protocol helpers see ordinary NAT traffic, as the paper's Linux NAT did.
//!
//! Egress addresses are never recycled under live flows: a handle lives until it has been
//! idle for the idle timeout, keeps its address across the client's rekeys and re-setups,
//! and released addresses go to the back of the pool's queue. A packet for an egress address
//! whose path has ended is dropped (`SessionExpired`), never sent anywhere else.

pub mod policy;
mod server;

pub use policy::AllowRule;
pub(crate) use server::Egress;

use crate::time::Instant;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The hop suffix that means "plain IP from the previous gateway on" (`cnn.com.ip`). It is
/// reserved: no overlay may be called so.
pub const SUFFIX: &str = "ip";

/// `[legacy_server]`: this gateway leads paths to plain IP hosts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LegacyServerConfig {
    /// Who may reach what; empty refuses everyone (a gateway is not an open proxy).
    #[serde(default)]
    pub allow: Vec<AllowRule>,
    /// Seconds a resolved destination is reused before it is looked up again.
    #[serde(default = "default_ttl")]
    pub resolve_ttl_secs: u64,
}

fn default_ttl() -> u64 {
    60
}

/// `[legacy_client]`: this node serves a LAN of hosts that run no ocala (paper §3.2.2's
/// legacy client gateway). They use it as their DNS server and route the handle pools to
/// it; each client gets paths of its own under shared handle addresses, so the pool does not
/// limit how many clients there are.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LegacyClientConfig {
    /// The LAN prefixes whose hosts are served (`192.168.1.0/24`).
    pub lan: Vec<crate::config::Prefix>,
}

impl LegacyClientConfig {
    /// Whether `ip` is on a LAN this node serves.
    pub fn serves(&self, ip: IpAddr) -> bool {
        self.lan.iter().any(|p| p.contains(ip))
    }

    /// Checks the LAN against the handle pools: a LAN address that is also a handle could
    /// not tell a client's packet from a packet to a peer.
    pub(crate) fn validate(
        &self,
        handles: &crate::config::HandleConfig,
    ) -> Result<(), crate::config::ConfigError> {
        if self.lan.is_empty() {
            return Err(crate::config::ConfigError::new(
                "legacy_client.lan",
                "name at least one LAN prefix (\"192.168.1.0/24\")",
            ));
        }
        for (i, p) in self.lan.iter().enumerate() {
            for pool in [handles.pool_v4, handles.pool_v6] {
                if p.overlaps(&pool) {
                    return Err(crate::config::ConfigError::new(
                        format!("legacy_client.lan[{i}]"),
                        format!("{p} overlaps the handle pool {pool}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The legacy server a path leads to: its address in each family it has one in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LegacyEnd {
    pub(crate) v4: Option<Ipv4Addr>,
    pub(crate) v6: Option<Ipv6Addr>,
}

impl LegacyEnd {
    /// The first address of each family.
    pub(crate) fn of(addrs: &[IpAddr]) -> LegacyEnd {
        let mut end = LegacyEnd::default();
        for a in addrs {
            match a {
                IpAddr::V4(v4) if end.v4.is_none() => end.v4 = Some(*v4),
                IpAddr::V6(v6) if end.v6.is_none() => end.v6 = Some(*v6),
                _ => {}
            }
        }
        end
    }

    /// The families the server has addresses in (at least one: a path is accepted only
    /// for a server with an address the policy allows).
    pub(crate) fn families(&self) -> crate::wire::message::Families {
        crate::wire::message::Families::of(self.v4.is_some(), self.v6.is_some())
    }

    /// The server's address in the family of `like`, if it has one.
    pub(crate) fn addr_like(&self, like: IpAddr) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }
}

/// The hop where a path through these hops (destination first) ends in ocala: the
/// destination, or the gateway before it when the destination is a legacy host.
pub(crate) fn end_hop(hops: &[crate::dns::names::Hop]) -> Option<&crate::dns::names::Hop> {
    match hops {
        [dest, gateway, ..] if dest.overlay.eq_ignore_ascii_case(SUFFIX) => Some(gateway),
        [dest, ..] => Some(dest),
        [] => None,
    }
}

/// A LAN client as the first hop of a return name (`10.1.0.10.ip`): IPv4 dotted, IPv6 as
/// its eight groups joined by `-` (a name may hold no `:`).
pub(crate) fn client_hop(client: IpAddr) -> String {
    match client {
        IpAddr::V4(a) => format!("{a}.{SUFFIX}"),
        IpAddr::V6(a) => {
            let groups: Vec<String> = a.segments().iter().map(|g| format!("{g:x}")).collect();
            format!("{}.{SUFFIX}", groups.join("-"))
        }
    }
}

/// The host of a setup's remaining name when it is a single legacy hop (`web.x.com.ip`).
pub(crate) fn legacy_host(remaining: &str) -> Option<&str> {
    let (host, suffix) = remaining.trim_end_matches('.').rsplit_once('.')?;
    (suffix.eq_ignore_ascii_case(SUFFIX) && !host.is_empty() && !host.contains('_')).then_some(host)
}

/// The name an egress handle is bound under: the destination and the client, so each
/// client gets its own address per destination, and keeps it across its re-setups. The `<`
/// keeps it from ever parsing as a name a path could be set up for.
pub(crate) fn egress_name(host: &str, client_name: &str) -> String {
    format!("{}.{SUFFIX}<{client_name}", host.to_ascii_lowercase())
}

/// A setup waiting for its destination to be resolved, replayed once it is.
#[derive(Debug)]
pub(crate) struct WaitingSetup {
    pub(crate) overlay: crate::api::OverlayId,
    pub(crate) from: crate::ocd::Peer,
    pub(crate) path_id: u64,
    pub(crate) message: Vec<u8>,
}

/// A legacy server gateway's state: its rules, what it resolved, and setups waiting on
/// lookups. Both tables are bounded.
#[derive(Debug)]
pub(crate) struct LegacyServer {
    pub(crate) policy: policy::Policy,
    ttl: Duration,
    /// Host → its addresses (or why it has none), until the instant given.
    resolved: BTreeMap<String, (Result<Vec<IpAddr>, String>, Instant)>,
    /// Host → setups waiting for its lookup.
    pub(crate) waiting: BTreeMap<String, Vec<WaitingSetup>>,
    /// Host → the answer of the first of its two lookups (A, AAAA) to return.
    halves: BTreeMap<String, Result<Vec<IpAddr>, String>>,
    bound: usize,
}

/// Failed lookups are retried after at most this long.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

impl LegacyServer {
    pub(crate) fn new(
        cfg: &LegacyServerConfig,
        bound: usize,
    ) -> Result<LegacyServer, crate::ConfigError> {
        Ok(LegacyServer {
            policy: policy::Policy::new(&cfg.allow)?,
            ttl: Duration::from_secs(cfg.resolve_ttl_secs),
            resolved: BTreeMap::new(),
            waiting: BTreeMap::new(),
            halves: BTreeMap::new(),
            bound: bound.max(1),
        })
    }

    /// What a host resolved to, while still fresh.
    pub(crate) fn cached(&self, host: &str, now: Instant) -> Option<&Result<Vec<IpAddr>, String>> {
        self.resolved
            .get(host)
            .filter(|(_, until)| *until > now)
            .map(|(r, _)| r)
    }

    /// Remembers a lookup's result; at the bound, stale entries go first, then the one
    /// that would expire soonest.
    pub(crate) fn remember(
        &mut self,
        host: &str,
        result: Result<Vec<IpAddr>, String>,
        now: Instant,
    ) {
        let ttl = if result.is_ok() {
            self.ttl
        } else {
            self.ttl.min(NEGATIVE_TTL)
        };
        if self.resolved.len() >= self.bound && !self.resolved.contains_key(host) {
            self.resolved.retain(|_, (_, until)| *until > now);
            if self.resolved.len() >= self.bound {
                let soonest = self
                    .resolved
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(h, _)| h.clone());
                if let Some(h) = soonest {
                    self.resolved.remove(&h);
                }
            }
        }
        self.resolved
            .insert(host.to_string(), (result, now.saturating_add(ttl)));
    }

    /// One of a host's two lookups returned: `None` until the other has too, then the
    /// addresses of both (IPv4 first), or — when neither found any — why not.
    pub(crate) fn half_resolved(
        &mut self,
        host: &str,
        result: Result<Vec<IpAddr>, String>,
    ) -> Option<Result<Vec<IpAddr>, String>> {
        let Some(first) = self.halves.remove(host) else {
            self.halves.insert(host.to_string(), result);
            return None;
        };
        let mut addrs: Vec<IpAddr> = [&first, &result]
            .into_iter()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .copied()
            .collect();
        addrs.sort_by_key(|a| a.is_ipv6());
        addrs.dedup();
        if !addrs.is_empty() {
            return Some(Ok(addrs));
        }
        Some(match (first, result) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Err("it has no addresses".into()),
        })
    }

    /// Queues a setup for a host's lookup. `Some(true)` when the lookup must be started,
    /// `Some(false)` when one is already under way, `None` when the queue is full (or the
    /// same setup already waits: a retransmission).
    pub(crate) fn wait(&mut self, host: &str, setup: WaitingSetup) -> Option<bool> {
        let total: usize = self.waiting.values().map(Vec::len).sum();
        let queue = self.waiting.get(host);
        if total >= self.bound
            || queue.is_some_and(|q| q.iter().any(|w| w.path_id == setup.path_id))
        {
            return None;
        }
        let first = queue.is_none();
        self.waiting
            .entry(host.to_string())
            .or_default()
            .push(setup);
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_hops_are_recognised() {
        assert_eq!(legacy_host("web.company1.com.ip"), Some("web.company1.com"));
        assert_eq!(legacy_host("10.0.0.80.IP."), Some("10.0.0.80"));
        assert_eq!(legacy_host("bob.udp"), None);
        assert_eq!(legacy_host("ip"), None);
        assert_eq!(legacy_host(".ip"), None);
        assert_eq!(legacy_host("a.ip_b.udp"), None);
    }

    #[test]
    fn lookups_are_bounded_and_expire() {
        let cfg = LegacyServerConfig {
            allow: Vec::new(),
            resolve_ttl_secs: 60,
        };
        let mut s = LegacyServer::new(&cfg, 2).unwrap();
        let t0 = Instant::ZERO;
        let a: IpAddr = "10.0.0.80".parse().unwrap();
        s.remember("a", Ok(vec![a]), t0);
        s.remember("b", Err("no such host".into()), t0);
        s.remember("c", Ok(vec![a]), t0);
        // At the bound the soonest to expire (the failure, 5 s) made room.
        assert!(s.cached("b", t0).is_none());
        assert_eq!(s.cached("a", t0), Some(&Ok(vec![a])));
        assert!(s
            .cached("a", t0.saturating_add(Duration::from_secs(61)))
            .is_none());

        // The two families' answers are joined; a family without addresses is no failure.
        let b: IpAddr = "fd00::80".parse().unwrap();
        assert_eq!(s.half_resolved("d", Ok(vec![b])), None);
        assert_eq!(s.half_resolved("d", Ok(vec![a])), Some(Ok(vec![a, b])));
        assert_eq!(s.half_resolved("e", Err("NXDOMAIN".into())), None);
        assert_eq!(
            s.half_resolved("e", Ok(Vec::new())),
            Some(Err("NXDOMAIN".into()))
        );
        assert_eq!(s.half_resolved("f", Ok(Vec::new())), None);
        assert_eq!(
            s.half_resolved("f", Ok(Vec::new())),
            Some(Err("it has no addresses".into()))
        );

        let w = |id| WaitingSetup {
            overlay: crate::api::OverlayId(0),
            from: crate::ocd::Peer::new(&[1]).unwrap(),
            path_id: id,
            message: Vec::new(),
        };
        assert_eq!(s.wait("x", w(1)), Some(true));
        assert_eq!(s.wait("x", w(1)), None, "a retransmission waits once");
        assert_eq!(s.wait("x", w(2)), Some(false));
        assert_eq!(s.wait("y", w(3)), None, "the queue is full");
    }
}
