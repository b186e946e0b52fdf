//! Test-only packet builders that compute every checksum from scratch with a deliberately
//! naive RFC 1071 loop, independent of the production code, so that tests compare the
//! optimised and incremental paths against a reference.

use std::net::IpAddr;

use super::ip::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

pub(crate) fn naive_sum(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for pair in data.chunks(2) {
        let w = (u32::from(pair[0]) << 8) | pair.get(1).map_or(0, |&b| u32::from(b));
        s += w;
        s = (s & 0xFFFF) + (s >> 16);
    }
    s
}

fn naive_checksum(parts: &[&[u8]]) -> u16 {
    let mut s: u32 = 0;
    for p in parts {
        s += naive_sum(p);
        s = (s & 0xFFFF) + (s >> 16);
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    !(s as u16)
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = addr_bytes(src);
    p.extend_from_slice(&addr_bytes(dst));
    if src.is_ipv4() {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    p
}

/// Offset of the checksum field inside a transport header, if the protocol has one.
fn checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        PROTO_TCP => Some(16),
        PROTO_UDP => Some(6),
        PROTO_ICMP | PROTO_ICMPV6 => Some(2),
        _ => None,
    }
}

/// Fills in the transport checksum of `seg` (a complete segment) for the given addresses.
/// A UDP segment whose checksum field is 0 over IPv4 is left "no checksum".
pub(crate) fn fix_transport_checksum(src: IpAddr, dst: IpAddr, proto: u8, seg: &mut [u8]) {
    let Some(off) = checksum_offset(proto) else {
        return;
    };
    if seg.len() < off + 2 {
        return;
    }
    if proto == PROTO_UDP && src.is_ipv4() && seg[off..off + 2] == [0, 0] {
        return;
    }
    seg[off..off + 2].copy_from_slice(&[0, 0]);
    let ck = if proto == PROTO_ICMP {
        naive_checksum(&[seg])
    } else {
        naive_checksum(&[&pseudo(src, dst, proto, seg.len()), seg])
    };
    let ck = if proto == PROTO_UDP && ck == 0 {
        0xFFFF
    } else {
        ck
    };
    seg[off..off + 2].copy_from_slice(&ck.to_be_bytes());
}

/// A complete IP packet around `seg`, all checksums computed from scratch. For UDP over
/// IPv4, pass a segment whose checksum field is 0xDEAD to request a checksum (any non-zero
/// value works) or 0 to send without one.
pub(crate) fn build_ip(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8]) -> Vec<u8> {
    let mut seg = seg.to_vec();
    fix_transport_checksum(src, dst, proto, &mut seg);
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let ck = naive_checksum(&[&p]);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0x0a, 0xbc, 0xde]);
            p.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            p.extend_from_slice(&[proto, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    p.extend_from_slice(&seg);
    p
}

pub(crate) fn udp_segment(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0xde, 0xad]);
    s.extend_from_slice(payload);
    s
}

pub(crate) fn tcp_segment(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // ack
    s.extend_from_slice(&[0x60, flags, 0xff, 0xff, 0, 0, 0, 0]); // 24-byte header, window
    s.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS option
    s.extend_from_slice(payload);
    s
}

/// An ICMP(v6) echo request body (type, code, checksum placeholder, id, seq, data).
pub(crate) fn echo(v6: bool, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut s = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(data);
    s
}

/// An ICMP(v6) error body quoting `quoted`.
pub(crate) fn icmp_error(kind: u8, code: u8, rest: u32, quoted: &[u8]) -> Vec<u8> {
    let mut s = vec![kind, code, 0, 0];
    s.extend_from_slice(&rest.to_be_bytes());
    s.extend_from_slice(quoted);
    s
}

/// Recomputes, from scratch, every checksum that can be recomputed: the IPv4 header, the
/// transport checksum of an unfragmented packet, and for ICMP errors the quoted IPv4 header
/// (when whole) before the outer ICMP checksum. The quoted transport checksum covers bytes
/// that are no longer present, so it is left as is (tests check it by rebuilding).
pub(crate) fn recompute_all(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    let v6 = p[0] >> 4 == 6;
    let (hl, proto, src, dst) = if v6 {
        let s: [u8; 16] = p[8..24].try_into().unwrap();
        let d: [u8; 16] = p[24..40].try_into().unwrap();
        (40, p[6], IpAddr::from(s), IpAddr::from(d))
    } else {
        let hl = usize::from(p[0] & 0xf) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let ck = naive_checksum(&[&p[..hl]]);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let s: [u8; 4] = p[12..16].try_into().unwrap();
        let d: [u8; 4] = p[16..20].try_into().unwrap();
        (hl, p[9], IpAddr::from(s), IpAddr::from(d))
    };
    let is_error = |t: u8| {
        if v6 {
            (1..=4).contains(&t)
        } else {
            [3, 11, 12].contains(&t)
        }
    };
    if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) && is_error(p[hl]) {
        let inner = hl + 8;
        if !v6 && p.len() >= inner + 20 && p[inner] >> 4 == 4 {
            let ihl = usize::from(p[inner] & 0xf) * 4;
            if p.len() >= inner + ihl {
                p[inner + 10..inner + 12].copy_from_slice(&[0, 0]);
                let ck = naive_checksum(&[&p[inner..inner + ihl]]);
                p[inner + 10..inner + 12].copy_from_slice(&ck.to_be_bytes());
            }
        }
    }
    fix_transport_checksum(src, dst, proto, &mut p[hl..]);
    p
}

/// `packet` (complete, from [`build_ip`], TCP or UDP) as a kernel with checksum offload hands
/// it over: its transport checksum holding only the pseudo-header's sum, and where that is.
pub(crate) fn with_partial_checksum(
    packet: &[u8],
) -> (Vec<u8>, crate::wire::checksum::PartialChecksum) {
    let at = crate::wire::checksum::PartialChecksum::of(packet).expect("TCP or UDP");
    let (start, field) = (usize::from(at.start), usize::from(at.start + at.offset));
    let mut p = packet.to_vec();
    let v6 = p[0] >> 4 == 6;
    let (src, dst, proto) = if v6 {
        let s: [u8; 16] = p[8..24].try_into().unwrap();
        let d: [u8; 16] = p[24..40].try_into().unwrap();
        (IpAddr::from(s), IpAddr::from(d), p[6])
    } else {
        let s: [u8; 4] = p[12..16].try_into().unwrap();
        let d: [u8; 4] = p[16..20].try_into().unwrap();
        (IpAddr::from(s), IpAddr::from(d), p[9])
    };
    // The sum, not its complement: what naive_checksum gives, complemented back.
    let sum = !naive_checksum(&[&pseudo(src, dst, proto, p.len() - start)]);
    p[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    (p, at)
}
