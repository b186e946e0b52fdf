//! Packet writers: the few packets the engine originates itself (UDP for overlay traffic on
//! a raw path, ICMP "too big" to make local applications shrink their packets).
//!
//! Writers append to a caller-owned `Vec` that is cleared first, so a warm buffer is reused
//! without allocating.

use std::net::{IpAddr, SocketAddr};

use super::bytes::put_u16;
use super::checksum::{add, finish, internet_checksum, pseudo_header_v4, pseudo_header_v6, sum};
use super::ip::{IpView, IPV4_MIN_HEADER, IPV6_HEADER, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP};
use super::transport::{is_error_type, ICMP_HEADER_LEN, UDP_HEADER_LEN};
use super::WireError;

/// TTL / hop limit of packets we originate (the common default of Linux and BSD).
const DEFAULT_TTL: u8 = 64;
/// RFC 1812 §4.3.2.3: an ICMPv4 error should not exceed 576 bytes; we keep to 548 so that
/// it also fits a minimal path with a 28-byte tunnel overhead.
const ICMPV4_ERROR_MAX: usize = 548;
/// RFC 4443 §2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU.
const ICMPV6_ERROR_MAX: usize = 1280;

/// Appends an IP header for `payload_len` bytes of `protocol` and returns the unfolded sum
/// of the pseudo-header the transport checksum needs.
fn push_ip_header(
    out: &mut Vec<u8>,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    payload_len: usize,
) -> Result<u64, WireError> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total =
                u16::try_from(IPV4_MIN_HEADER + payload_len).map_err(|_| WireError::TooLarge)?;
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            // Identification 0 with DF set: allowed for atomic datagrams (RFC 6864).
            out.extend_from_slice(&[0, 0, 0x40, 0, DEFAULT_TTL, protocol, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let ck = internet_checksum(out.get(start..).unwrap_or(&[]));
            put_u16(out, start + 10, ck)?;
            // Cannot truncate: total fits in u16, so payload_len does too.
            let len = u16::try_from(payload_len).map_err(|_| WireError::TooLarge)?;
            Ok(pseudo_header_v4(s, d, protocol, len))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(payload_len).map_err(|_| WireError::TooLarge)?;
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[protocol, DEFAULT_TTL]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            Ok(pseudo_header_v6(&s, &d, protocol, u32::from(len)))
        }
        _ => Err(WireError::FamilyMismatch),
    }
}

/// Clears `out` and writes a complete IPv4 or IPv6 packet carrying one UDP datagram from
/// `src` to `dst`: TTL/hop limit 64, DF set and identification 0 on IPv4, all checksums
/// filled in. `FamilyMismatch` for mixed families, `TooLarge` when a length field would
/// overflow; `out` is left empty on error.
pub fn write_udp_packet(
    out: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Result<(), WireError> {
    out.clear();
    let udp_len = UDP_HEADER_LEN + payload.len();
    let udp_len16 = u16::try_from(udp_len).map_err(|_| WireError::TooLarge)?;
    let pseudo = match push_ip_header(out, src.ip(), dst.ip(), PROTO_UDP, udp_len) {
        Ok(p) => p,
        Err(e) => {
            out.clear();
            return Err(e);
        }
    };
    let start = out.len();
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len16.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    let mut ck = finish(add(pseudo, sum(out.get(start..).unwrap_or(&[]))));
    if ck == 0 {
        ck = 0xFFFF;
    }
    put_u16(out, start + 6, ck)
}

/// Clears `out` and writes the ICMP message telling the sender of `original` that it was
/// too big for a next hop with the given `mtu`: ICMPv4 "fragmentation needed" (type 3,
/// code 4) or ICMPv6 "packet too big" (type 2), from `from` to the original's source.
///
/// As much of the original as fits is quoted (548 bytes in all for IPv4, 1280 for IPv6),
/// which always covers the IP header and the first 8 payload bytes that the sender's stack
/// needs to find the socket. Following RFC 1122 §3.2.2 and RFC 4443 §2.4(e), no error is
/// made about an ICMP error or a non-first fragment (`Unsupported`): doing so invites loops.
pub fn write_icmp_too_big(
    out: &mut Vec<u8>,
    original: &[u8],
    from: IpAddr,
    mtu: u16,
) -> Result<(), WireError> {
    out.clear();
    let view = IpView::parse(original)?;
    let v6 = view.version() == 6;
    if v6 != from.is_ipv6() {
        return Err(WireError::FamilyMismatch);
    }
    if !view.has_transport_header() {
        return Err(WireError::Unsupported);
    }
    if view.protocol() == if v6 { PROTO_ICMPV6 } else { PROTO_ICMP } {
        let kind = view.payload().first().copied();
        if kind.is_some_and(|k| is_error_type(v6, k)) {
            return Err(WireError::Unsupported);
        }
    }
    let (max, ip_header, protocol) = if v6 {
        (ICMPV6_ERROR_MAX, IPV6_HEADER, PROTO_ICMPV6)
    } else {
        (ICMPV4_ERROR_MAX, IPV4_MIN_HEADER, PROTO_ICMP)
    };
    let packet = view.packet();
    let quote_len = packet.len().min(max - ip_header - ICMP_HEADER_LEN);
    let quote = packet.get(..quote_len).unwrap_or(packet);
    let icmp_len = ICMP_HEADER_LEN + quote.len();
    let pseudo = push_ip_header(out, from, view.src(), protocol, icmp_len)?;
    let start = out.len();
    if v6 {
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&u32::from(mtu).to_be_bytes());
    } else {
        out.extend_from_slice(&[3, 4, 0, 0, 0, 0]);
        out.extend_from_slice(&mtu.to_be_bytes());
    }
    out.extend_from_slice(quote);
    let body = sum(out.get(start..).unwrap_or(&[]));
    // ICMPv4's checksum covers the message only; ICMPv6 adds the pseudo-header.
    let ck = if v6 {
        finish(add(pseudo, body))
    } else {
        finish(body)
    };
    put_u16(out, start + 2, ck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::verify;
    use crate::wire::testutil::{build_ip, echo, icmp_error, recompute_all, udp_segment};
    use crate::wire::transport::{IcmpView, UdpView};
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_v4_known_bytes() {
        // Computed independently (Python, RFC 768/791 by the letter).
        let expected = [
            0x45, 0x00, 0x00, 0x1e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0xcd, 0x0a, 0x00,
            0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x04, 0xd2, 0x00, 0x35, 0x00, 0x0a, 0x7e, 0x67,
            0x68, 0x69,
        ];
        let mut out = vec![0xAA; 3]; // stale content must be cleared
        write_udp_packet(&mut out, sa("10.0.0.1:1234"), sa("10.0.0.2:53"), b"hi").unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn udp_matches_reference_builder() {
        for (s, d) in [
            ("192.0.2.1:9", "198.51.100.7:65535"),
            ("[2001:db8::1]:4000", "[fd00::2]:53"),
        ] {
            let (s, d) = (sa(s), sa(d));
            let mut out = Vec::new();
            write_udp_packet(&mut out, s, d, b"some odd payload").unwrap();
            let mut reference = build_ip(
                s.ip(),
                d.ip(),
                PROTO_UDP,
                &udp_segment(s.port(), d.port(), b"some odd payload"),
            );
            if s.is_ipv4() {
                reference[4..6].copy_from_slice(&[0, 0]); // the reference uses a fixed id
                reference[10..12].copy_from_slice(&[0, 0]);
                let ck = internet_checksum(&reference[..20]);
                reference[10..12].copy_from_slice(&ck.to_be_bytes());
            } else {
                reference[1..4].copy_from_slice(&[0, 0, 0]); // and a flow label
            }
            assert_eq!(out, reference);
            let v = IpView::parse(&out).unwrap();
            let u = UdpView::parse(v.payload()).unwrap();
            assert_eq!(
                (v.src(), u.src_port(), v.dst(), u.dst_port()),
                (s.ip(), s.port(), d.ip(), d.port())
            );
            assert_eq!(v.ttl_or_hop_limit(), 64);
        }
    }

    #[test]
    fn udp_errors() {
        let mut out = vec![1, 2, 3];
        assert_eq!(
            write_udp_packet(&mut out, sa("1.2.3.4:1"), sa("[::1]:2"), b""),
            Err(WireError::FamilyMismatch)
        );
        assert!(out.is_empty());
        let big = vec![0u8; 65535 - 28 + 1];
        assert_eq!(
            write_udp_packet(&mut out, sa("1.2.3.4:1"), sa("1.2.3.5:2"), &big),
            Err(WireError::TooLarge)
        );
        assert!(write_udp_packet(&mut out, sa("1.2.3.4:1"), sa("1.2.3.5:2"), &big[1..]).is_ok());
        assert_eq!(out.len(), 65535);
        let big = vec![0u8; 65535 - 8 + 1];
        assert_eq!(
            write_udp_packet(&mut out, sa("[::1]:1"), sa("[::2]:2"), &big),
            Err(WireError::TooLarge)
        );
        assert!(write_udp_packet(&mut out, sa("[::1]:1"), sa("[::2]:2"), &big[1..]).is_ok());
        assert_eq!(out.len(), 40 + 65535);
    }

    fn too_big_case(src: &str, dst: &str, payload_len: usize, from: &str, max: usize) {
        let payload = vec![0x5a; payload_len];
        let original = build_ip(
            src.parse().unwrap(),
            dst.parse().unwrap(),
            PROTO_UDP,
            &udp_segment(1, 2, &payload),
        );
        let from: IpAddr = from.parse().unwrap();
        let mut out = Vec::new();
        write_icmp_too_big(&mut out, &original, from, 1400).unwrap();
        assert_eq!(
            out.len(),
            max.min(original.len() + ICMP_HEADER_LEN + if from.is_ipv4() { 20 } else { 40 })
        );
        assert_eq!(recompute_all(&out), out);
        let v = IpView::parse(&out).unwrap();
        assert_eq!((v.src(), v.dst()), (from, src.parse().unwrap()));
        let icmp = IcmpView::parse(v.payload(), from.is_ipv6()).unwrap();
        assert!(icmp.is_error());
        assert_eq!(icmp.mtu(), Some(1400));
        assert_eq!(icmp.quoted(), &original[..icmp.quoted().len()]);
        assert!(icmp.quoted().len() >= 28);
        if from.is_ipv4() {
            assert_eq!((icmp.kind(), icmp.code()), (3, 4));
            assert!(verify(v.payload()));
        } else {
            assert_eq!((icmp.kind(), icmp.code()), (2, 0));
        }
    }

    #[test]
    fn icmp_too_big_both_families() {
        too_big_case("10.0.0.1", "10.0.0.2", 1472, "198.18.0.1", ICMPV4_ERROR_MAX);
        too_big_case("10.0.0.1", "10.0.0.2", 3, "198.18.0.1", ICMPV4_ERROR_MAX);
        too_big_case(
            "2001:db8::1",
            "2001:db8::2",
            1452,
            "fd00::1",
            ICMPV6_ERROR_MAX,
        );
        too_big_case("2001:db8::1", "2001:db8::2", 1, "fd00::1", ICMPV6_ERROR_MAX);
    }

    #[test]
    fn icmp_too_big_refusals() {
        let mut out = Vec::new();
        let p = build_ip(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            PROTO_UDP,
            &udp_segment(1, 2, b""),
        );
        assert_eq!(
            write_icmp_too_big(&mut out, &p, "::1".parse().unwrap(), 1280),
            Err(WireError::FamilyMismatch)
        );
        assert_eq!(
            write_icmp_too_big(&mut out, &p[..10], "1.1.1.1".parse().unwrap(), 1280),
            Err(WireError::Truncated)
        );
        let e = build_ip(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            PROTO_ICMP,
            &icmp_error(3, 1, 0, &p),
        );
        assert_eq!(
            write_icmp_too_big(&mut out, &e, "10.9.9.9".parse().unwrap(), 576),
            Err(WireError::Unsupported)
        );
        let ping = build_ip(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            PROTO_ICMP,
            &echo(false, 1, 1, &[0; 2000]),
        );
        assert!(write_icmp_too_big(&mut out, &ping, "10.9.9.9".parse().unwrap(), 576).is_ok());
    }

    proptest! {
        #[test]
        fn too_big_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100), v6 in any::<bool>()) {
            let from: IpAddr = if v6 { "::1".parse().unwrap() } else { "127.0.0.1".parse().unwrap() };
            let mut out = Vec::new();
            if write_icmp_too_big(&mut out, &data, from, 1280).is_ok() {
                prop_assert_eq!(recompute_all(&out), out);
            }
        }

        #[test]
        fn udp_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..300), sp in any::<u16>(), dp in any::<u16>(), v6 in any::<bool>()) {
            let (s, d): (SocketAddr, SocketAddr) = if v6 {
                (SocketAddr::new("2001:db8::7".parse().unwrap(), sp), SocketAddr::new("fd00::9".parse().unwrap(), dp))
            } else {
                (SocketAddr::new("192.0.2.7".parse().unwrap(), sp), SocketAddr::new("198.18.3.4".parse().unwrap(), dp))
            };
            let mut out = Vec::new();
            write_udp_packet(&mut out, s, d, &payload).unwrap();
            prop_assert_eq!(recompute_all(&out), out.clone());
            let v = IpView::parse(&out).unwrap();
            let u = UdpView::parse(v.payload()).unwrap();
            prop_assert_eq!(u.payload(), &payload[..]);
            prop_assert!(u.checksum() != 0);
        }
    }
}
