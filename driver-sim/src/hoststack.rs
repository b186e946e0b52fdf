//! The simulated hosts' own IP stacks, behind their TUN: they build the packets app models
//! send, answer ICMP echo and the UDP echo service (port 7) like a real kernel would, and
//! pick apart what the engine writes back.

use std::net::{IpAddr, SocketAddr};

/// UDP port of the echo service every simulated host runs.
pub const ECHO_PORT: u16 = 7;

/// What a packet delivered to a host's apps is.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivered {
    /// A DNS answer from the sentinel to a client port.
    Dns { port: u16, message: Vec<u8> },
    /// An echo request the host answers with this reply.
    EchoRequest { reply: Vec<u8> },
    /// An echo reply for the app using this identifier.
    EchoReply { id: u16, seq: u16 },
    /// A UDP request to the echo service, answered with this reply.
    UdpEcho { reply: Vec<u8> },
    /// A UDP reply from the echo service to a client port.
    UdpReply { port: u16, payload: Vec<u8> },
    /// Anything else.
    Other,
}

/// Internet checksum (RFC 1071) over several slices.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IP packet carrying `l4` with protocol `proto`, checksums filled in. `csum_at` is the
/// offset of the transport checksum inside `l4` (None for ICMPv4, which covers no pseudo-header).
fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    mut l4: Vec<u8>,
    csum_at: usize,
    pseudo: bool,
) -> Vec<u8> {
    let len = l4.len();
    let mut out = Vec::with_capacity(40 + len);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + len) as u16;
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = checksum(&[&h]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let c = if pseudo {
                let ph = [
                    &s.octets()[..],
                    &d.octets()[..],
                    &[0, proto],
                    &(len as u16).to_be_bytes(),
                ]
                .concat();
                checksum(&[&ph, &l4])
            } else {
                checksum(&[&l4])
            };
            l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&h);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(len as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let ph = [
                &s.octets()[..],
                &d.octets()[..],
                &(len as u32).to_be_bytes(),
                &[0, 0, 0, proto],
            ]
            .concat();
            let c = checksum(&[&ph, &l4]);
            l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&h);
        }
        _ => return Vec::new(),
    }
    out.extend_from_slice(&l4);
    out
}

/// A UDP packet.
pub fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(8 + payload.len());
    l4.extend_from_slice(&src.port().to_be_bytes());
    l4.extend_from_slice(&dst.port().to_be_bytes());
    l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.extend_from_slice(payload);
    ip_packet(src.ip(), dst.ip(), 17, l4, 6, true)
}

/// An ICMP (v4 or v6, by address family) echo request or reply with `size` payload bytes.
pub fn echo(src: IpAddr, dst: IpAddr, request: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let kind = match (v6, request) {
        (false, true) => 8,
        (false, false) => 0,
        (true, true) => 128,
        (true, false) => 129,
    };
    let mut l4 = vec![kind, 0, 0, 0];
    l4.extend_from_slice(&id.to_be_bytes());
    l4.extend_from_slice(&seq.to_be_bytes());
    l4.extend_from_slice(payload);
    ip_packet(src, dst, if v6 { 58 } else { 1 }, l4, 2, v6)
}

/// Splits an IP packet into (src, dst, protocol, transport bytes); None if unreadable.
fn split(packet: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            Some((
                IpAddr::from(src),
                IpAddr::from(dst),
                *packet.get(9)?,
                packet.get(ihl..total)?,
            ))
        }
        6 => {
            let len = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            Some((
                IpAddr::from(src),
                IpAddr::from(dst),
                *packet.get(6)?,
                packet.get(40..40 + len)?,
            ))
        }
        _ => None,
    }
}

/// A packet's addresses and what connection tracking tells its flows apart by: the
/// protocol and the port on the tracked side — the source port of a packet going out
/// (`outbound`), the destination port of one coming back — or the ICMP echo identifier.
pub fn flow(packet: &[u8], outbound: bool) -> Option<(IpAddr, IpAddr, (u8, u16))> {
    let (src, dst, proto, l4) = split(packet)?;
    let at = match proto {
        1 | 58 => 4,
        6 | 17 if outbound => 0,
        6 | 17 => 2,
        _ => return None,
    };
    let id = l4.get(at..at + 2)?;
    Some((src, dst, (proto, u16::from_be_bytes([id[0], id[1]]))))
}

/// Whether every checksum of a packet the engine delivered is right — the simulator checks
/// each one, so a wrong incremental update fails the run instead of going unnoticed.
pub fn checksums_ok(packet: &[u8]) -> bool {
    let Some((src, dst, proto, l4)) = split(packet) else {
        return false;
    };
    if src.is_ipv4() {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        if checksum(&[&packet[..ihl]]) != 0 {
            return false;
        }
    }
    let pseudo = |len: usize| -> Vec<u8> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => [
                &s.octets()[..],
                &d.octets()[..],
                &[0, proto],
                &(len as u16).to_be_bytes(),
            ]
            .concat(),
            (IpAddr::V6(s), IpAddr::V6(d)) => [
                &s.octets()[..],
                &d.octets()[..],
                &(len as u32).to_be_bytes(),
                &[0, 0, 0, proto],
            ]
            .concat(),
            _ => Vec::new(),
        }
    };
    match proto {
        1 => checksum(&[l4]) == 0,
        17 if src.is_ipv4() && l4.get(6..8) == Some(&[0, 0]) => true,
        6 | 17 | 58 => checksum(&[&pseudo(l4.len()), l4]) == 0,
        _ => true,
    }
}

/// Classifies a packet the engine wrote to a host's TUN.
pub fn classify(packet: &[u8]) -> Delivered {
    let Some((src, dst, proto, l4)) = split(packet) else {
        return Delivered::Other;
    };
    match proto {
        1 | 58 => {
            let (Some(&kind), Some(id), Some(seq)) = (l4.first(), l4.get(4..6), l4.get(6..8))
            else {
                return Delivered::Other;
            };
            let id = u16::from_be_bytes([id[0], id[1]]);
            let seq = u16::from_be_bytes([seq[0], seq[1]]);
            match kind {
                8 | 128 => Delivered::EchoRequest {
                    reply: echo(dst, src, false, id, seq, l4.get(8..).unwrap_or(&[])),
                },
                0 | 129 => Delivered::EchoReply { id, seq },
                _ => Delivered::Other,
            }
        }
        17 => {
            let (Some(sp), Some(dp)) = (l4.get(0..2), l4.get(2..4)) else {
                return Delivered::Other;
            };
            let sport = u16::from_be_bytes([sp[0], sp[1]]);
            let dport = u16::from_be_bytes([dp[0], dp[1]]);
            let payload = l4.get(8..).unwrap_or(&[]).to_vec();
            if sport == 53 {
                Delivered::Dns {
                    port: dport,
                    message: payload,
                }
            } else if dport == ECHO_PORT {
                Delivered::UdpEcho {
                    reply: udp(
                        SocketAddr::new(dst, dport),
                        SocketAddr::new(src, sport),
                        &payload,
                    ),
                }
            } else if sport == ECHO_PORT {
                Delivered::UdpReply {
                    port: dport,
                    payload,
                }
            } else {
                Delivered::Other
            }
        }
        _ => Delivered::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_have_valid_checksums_and_classify() {
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.7".parse().unwrap();
        let req = echo(a, b, true, 9, 3, b"hello");
        assert!(checksums_ok(&req));
        let Delivered::EchoRequest { reply } = classify(&req) else {
            panic!("not a request")
        };
        assert!(checksums_ok(&reply));
        assert_eq!(classify(&reply), Delivered::EchoReply { id: 9, seq: 3 });
        let a6: IpAddr = "fd00::1".parse().unwrap();
        let b6: IpAddr = "fd00::7".parse().unwrap();
        assert!(checksums_ok(&echo(a6, b6, true, 1, 1, b"x")));
        let u = udp(
            SocketAddr::new(a6, 4000),
            SocketAddr::new(b6, ECHO_PORT),
            b"ping",
        );
        assert!(checksums_ok(&u));
        let Delivered::UdpEcho { reply } = classify(&u) else {
            panic!("not echo")
        };
        assert_eq!(
            classify(&reply),
            Delivered::UdpReply {
                port: 4000,
                payload: b"ping".to_vec()
            }
        );
        let mut broken = req.clone();
        broken[25] ^= 1;
        assert!(!checksums_ok(&broken));
    }
}
