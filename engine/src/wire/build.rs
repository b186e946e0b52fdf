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
            let total = u16::try_from(IPV4_MIN_HEADER + payload_len).map_err(|_| WireError::TooLarge)?;
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
    let ck = if v6 { finish(add(pseudo, body)) } else { finish(body) };
    put_u16(out, start + 2, ck)
}
