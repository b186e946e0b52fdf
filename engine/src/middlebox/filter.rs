//! The packet filter and logger: drops configured TCP and UDP ports on paths whose packets
//! it can read, passes what it cannot read unless told otherwise, and counts what it saw.

use super::{Middlebox, Seen, Verdict};
use crate::time::Instant;
use crate::wire::checksum;
use crate::wire::ip::{IpView, PROTO_TCP as TCP, PROTO_UDP as UDP};
use crate::wire::transport::{TcpView, UdpView};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[middlebox]`: this node filters the paths that pass through it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// TCP destination ports to drop.
    pub drop_tcp_ports: Vec<u16>,
    /// UDP destination ports to drop.
    pub drop_udp_ports: Vec<u16>,
    /// Drop data it cannot read (encrypted paths) too: only readable traffic passes.
    pub drop_sealed: bool,
}

/// Most distinct (protocol, port) pairs counted; the rest are counted as `other`.
const MAX_PORTS: usize = 256;

/// What the filter saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterStats {
    /// Control messages (setup, accept, confirm, close, ...).
    pub control: u64,
    /// Data messages with an IP packet it could read.
    pub readable: u64,
    /// Of those, packets of encrypted paths it was granted the keys of and opened.
    pub opened: u64,
    /// Data messages it could not read (ciphertext).
    pub sealed: u64,
    /// Messages it dropped.
    pub dropped: u64,
    /// Readable packets by (IP protocol, destination port; 0 for ICMP).
    pub by_port: BTreeMap<(u8, u16), u64>,
    /// Readable packets past the `by_port` bound.
    pub other: u64,
}

/// One line for logs and summaries:
/// `5 control, 25 readable (icmp x15, udp/7 x10), 10 opened, 15 sealed, 10 dropped`.
impl std::fmt::Display for FilterStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} control, {} readable (", self.control, self.readable)?;
        let mut sep = "";
        for (&(proto, port), n) in &self.by_port {
            match proto {
                TCP => write!(f, "{sep}tcp/{port} x{n}")?,
                UDP => write!(f, "{sep}udp/{port} x{n}")?,
                1 | 58 => write!(f, "{sep}icmp x{n}")?,
                p => write!(f, "{sep}proto {p} x{n}")?,
            }
            sep = ", ";
        }
        if self.other > 0 {
            write!(f, "{sep}other x{}", self.other)?;
            sep = ", ";
        }
        if sep.is_empty() {
            f.write_str("-")?;
        }
        write!(
            f,
            "), {} opened, {} sealed, {} dropped",
            self.opened, self.sealed, self.dropped
        )
    }
}

/// The filter middlebox.
#[derive(Debug)]
pub struct Filter {
    cfg: FilterConfig,
    stats: FilterStats,
}

impl Filter {
    pub fn new(cfg: FilterConfig) -> Filter {
        Filter {
            cfg,
            stats: FilterStats::default(),
        }
    }

    pub fn stats(&self) -> &FilterStats {
        &self.stats
    }

    fn count(&mut self, key: (u8, u16)) {
        let full = self.stats.by_port.len() >= MAX_PORTS;
        match self.stats.by_port.get_mut(&key) {
            Some(n) => *n += 1,
            None if full => self.stats.other += 1,
            None => {
                self.stats.by_port.insert(key, 1);
            }
        }
    }
}

/// The (protocol, destination port) of a payload that is a whole IP packet in the clear, or
/// `None` when it is not one (ciphertext). An IPv4 header must also carry a valid checksum,
/// which ciphertext does with odds of 1 in 65 536.
fn readable(payload: &[u8]) -> Option<(u8, u16)> {
    let ip = IpView::parse(payload).ok()?;
    if ip.version() == 4 {
        let header = payload.get(..ip.header_len())?;
        if checksum::fold(checksum::sum(header)) != 0xffff {
            return None;
        }
    }
    let port = match ip.protocol() {
        _ if ip.is_fragment() => 0,
        TCP => TcpView::parse(ip.payload()).ok()?.dst_port(),
        UDP => UdpView::parse(ip.payload()).ok()?.dst_port(),
        _ => 0,
    };
    Some((ip.protocol(), port))
}

impl Filter {
    /// The verdict on a packet it can read.
    fn judge(&mut self, key: (u8, u16)) -> Verdict {
        self.stats.readable += 1;
        self.count(key);
        let listed = match key.0 {
            TCP => &self.cfg.drop_tcp_ports,
            UDP => &self.cfg.drop_udp_ports,
            _ => &Vec::new(),
        };
        if listed.contains(&key.1) {
            Verdict::Drop("port filtered")
        } else {
            Verdict::Pass
        }
    }

    fn sealed(&mut self) -> Verdict {
        self.stats.sealed += 1;
        if self.cfg.drop_sealed {
            Verdict::Drop("unreadable data")
        } else {
            Verdict::Pass
        }
    }
}

impl Middlebox for Filter {
    fn inspect(&mut self, _now: Instant, seen: Seen<'_>) -> Verdict {
        let verdict = match seen {
            Seen::Control => {
                self.stats.control += 1;
                Verdict::Pass
            }
            Seen::Data(payload) => match readable(payload) {
                Some(key) => self.judge(key),
                None => self.sealed(),
            },
            Seen::Opened(packet) => match readable(packet) {
                Some(key) => {
                    self.stats.opened += 1;
                    self.judge(key)
                }
                // Opened, yet not an IP packet: the sender sealed junk.
                None => Verdict::Drop("not an IP packet"),
            },
        };
        if verdict != Verdict::Pass {
            self.stats.dropped += 1;
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{build_ip, udp_segment};

    fn udp4(dport: u16) -> Vec<u8> {
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        build_ip(a, b, UDP, &udp_segment(5000, dport, b"hi"))
    }

    fn data(payload: &[u8]) -> Seen<'_> {
        Seen::Data(payload)
    }

    #[test]
    fn listed_ports_are_dropped_on_readable_paths_and_everything_is_counted() {
        let mut f = Filter::new(FilterConfig {
            drop_udp_ports: vec![7],
            ..Default::default()
        });
        let (udp7, udp8) = (udp4(7), udp4(8));
        assert_eq!(
            f.inspect(Instant::ZERO, data(&udp7)),
            Verdict::Drop("port filtered")
        );
        assert_eq!(f.inspect(Instant::ZERO, data(&udp8)), Verdict::Pass);
        // Ciphertext passes (nothing to judge it by) and is counted as such.
        assert_eq!(f.inspect(Instant::ZERO, data(&[0x45; 60])), Verdict::Pass);
        // Opened for it (a certified middlebox on an encrypted path): judged like the clear.
        assert_eq!(
            f.inspect(Instant::ZERO, Seen::Opened(&udp7)),
            Verdict::Drop("port filtered")
        );
        assert_eq!(
            f.inspect(Instant::ZERO, Seen::Opened(b"junk")),
            Verdict::Drop("not an IP packet")
        );
        assert_eq!(f.inspect(Instant::ZERO, Seen::Control), Verdict::Pass);
        let s = f.stats();
        assert_eq!(
            (s.control, s.readable, s.opened, s.sealed, s.dropped),
            (1, 3, 1, 1, 3)
        );
        assert_eq!(s.by_port.get(&(UDP, 7)), Some(&2));
        assert_eq!(
            s.to_string(),
            "1 control, 3 readable (udp/7 x2, udp/8 x1), 1 opened, 1 sealed, 3 dropped"
        );
    }

    #[test]
    fn a_corrupted_header_checksum_reads_as_ciphertext() {
        let mut p = udp4(7);
        p[8] ^= 1;
        assert_eq!(readable(&p), None);
        let mut f = Filter::new(FilterConfig {
            drop_sealed: true,
            ..Default::default()
        });
        assert_eq!(
            f.inspect(Instant::ZERO, data(&p)),
            Verdict::Drop("unreadable data")
        );
    }
}
