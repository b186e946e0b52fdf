//! Zero-copy views of IPv4 and IPv6 packets.
//!
//! The view records where the upper-layer (transport) header starts so that the rest of the
//! engine never re-walks extension headers, and it ignores link-layer padding beyond the
//! length the IP header declares.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{array, u16_at, u8_at};
use super::WireError;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// IPv6 extension headers we step over to find the upper layer.
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_DEST_OPTS: u8 = 60;

/// Bound on the extension-header walk: a legitimate packet has at most a handful (RFC 8200
/// §4.1 allows each type once, destination options twice); more is an attack or garbage.
const MAX_EXT_HEADERS: usize = 8;

pub(crate) const IPV4_MIN_HEADER: usize = 20;
pub(crate) const IPV6_HEADER: usize = 40;

/// What [`IpView::parse`] learned of a packet's header, without borrowing the packet: for
/// code that parsed it once and goes on to change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader {
    pub version: u8,
    pub src: IpAddr,
    pub protocol: u8,
    pub header_len: usize,
    pub total_len: usize,
    /// See [`IpView::has_transport_header`].
    pub has_transport: bool,
    /// See [`IpView::routing_pending`].
    pub routing_pending: bool,
}

/// A parsed IP packet borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpView<'a> {
    /// The packet up to its declared total length (or to the end of a truncated quote).
    buf: &'a [u8],
    version: u8,
    protocol: u8,
    header_len: usize,
    total_len: usize,
    is_fragment: bool,
    /// Fragment offset in 8-byte units (0 for unfragmented packets and first fragments).
    fragment_offset: u16,
    /// An IPv6 routing header with segments left: the destination field is not final.
    routing_pending: bool,
}

impl<'a> IpView<'a> {
    /// Parses a complete IPv4 or IPv6 packet. Bytes after the declared total length are
    /// ignored (they are link padding, not part of the packet).
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_inner(buf, false)
    }

    /// Parses a packet that may be cut short, as quoted inside ICMP error messages: the
    /// declared total length may exceed `buf`, in which case [`IpView::payload`] returns only
    /// the bytes present. The IP header itself (IPv4 options and IPv6 extension headers
    /// included) must be complete.
    pub fn parse_quoted(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse_inner(buf, true)
    }

    fn parse_inner(buf: &'a [u8], allow_truncated: bool) -> Result<Self, WireError> {
        let first = u8_at(buf, 0)?;
        match first >> 4 {
            4 => Self::parse_v4(buf, allow_truncated),
            6 => Self::parse_v6(buf, allow_truncated),
            _ => Err(WireError::BadVersion),
        }
    }

    fn parse_v4(buf: &'a [u8], allow_truncated: bool) -> Result<Self, WireError> {
        // The fixed header as an array: its fields are read without a check each (every
        // packet a path carries is parsed here, twice).
        let h = buf
            .first_chunk::<IPV4_MIN_HEADER>()
            .ok_or(WireError::Truncated)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if ihl < IPV4_MIN_HEADER {
            return Err(WireError::BadHeader);
        }
        let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if total_len < ihl {
            return Err(WireError::BadLength);
        }
        if ihl > buf.len() || (!allow_truncated && total_len > buf.len()) {
            return Err(WireError::Truncated);
        }
        let flags = u16::from_be_bytes([h[6], h[7]]);
        let more_fragments = flags & 0x2000 != 0;
        let fragment_offset = flags & 0x1fff;
        Ok(IpView {
            buf: buf
                .get(..total_len.min(buf.len()))
                .ok_or(WireError::Truncated)?,
            version: 4,
            protocol: h[9],
            header_len: ihl,
            total_len,
            is_fragment: more_fragments || fragment_offset != 0,
            fragment_offset,
            routing_pending: false,
        })
    }

    fn parse_v6(buf: &'a [u8], allow_truncated: bool) -> Result<Self, WireError> {
        if buf.len() < IPV6_HEADER {
            return Err(WireError::Truncated);
        }
        let payload_len = usize::from(u16_at(buf, 4)?);
        let mut next = u8_at(buf, 6)?;
        if payload_len == 0 && next == EXT_HOP_BY_HOP {
            // Possibly a jumbogram (RFC 2675); never seen on a TUN with a sane MTU.
            return Err(WireError::Unsupported);
        }
        let total_len = IPV6_HEADER + payload_len;
        if !allow_truncated && total_len > buf.len() {
            return Err(WireError::Truncated);
        }
        let pkt = buf
            .get(..total_len.min(buf.len()))
            .ok_or(WireError::Truncated)?;
        let mut off = IPV6_HEADER;
        let mut is_fragment = false;
        let mut fragment_offset = 0;
        let mut routing_pending = false;
        let mut walked = 0;
        loop {
            match next {
                EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS => {
                    if next == EXT_ROUTING && u8_at(pkt, off + 3)? != 0 {
                        routing_pending = true;
                    }
                    let len = (usize::from(u8_at(pkt, off + 1)?) + 1) * 8;
                    next = u8_at(pkt, off)?;
                    off += len;
                }
                EXT_FRAGMENT => {
                    let nh = u8_at(pkt, off)?;
                    let field = u16_at(pkt, off + 2)?;
                    is_fragment = true;
                    fragment_offset = field >> 3;
                    next = nh;
                    off += 8;
                    if fragment_offset != 0 {
                        // What follows is the middle of the fragmentable part, not headers.
                        break;
                    }
                }
                _ => break,
            }
            if off > pkt.len() {
                return Err(WireError::Truncated);
            }
            walked += 1;
            if walked > MAX_EXT_HEADERS {
                return Err(WireError::BadHeader);
            }
        }
        if off > pkt.len() {
            return Err(WireError::Truncated);
        }
        Ok(IpView {
            buf: pkt,
            version: 6,
            protocol: next,
            header_len: off,
            total_len,
            is_fragment,
            fragment_offset,
            routing_pending,
        })
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The header's facts, to keep once the packet is to change.
    pub fn header(&self) -> IpHeader {
        IpHeader {
            version: self.version,
            src: self.src(),
            protocol: self.protocol,
            header_len: self.header_len,
            total_len: self.total_len,
            has_transport: self.has_transport_header(),
            routing_pending: self.routing_pending,
        }
    }

    pub fn src(&self) -> IpAddr {
        self.addr(true)
    }

    pub fn dst(&self) -> IpAddr {
        self.addr(false)
    }

    /// The destination of an IPv4 packet.
    pub fn dst_v4(&self) -> Option<Ipv4Addr> {
        match self.version {
            4 => array::<4>(self.buf, 16).ok().map(Ipv4Addr::from),
            _ => None,
        }
    }

    fn addr(&self, src: bool) -> IpAddr {
        // The header was checked to be present in `parse`, so these reads cannot fail; the
        // unspecified fallback only keeps this function total.
        if self.version == 4 {
            let off = if src { 12 } else { 16 };
            IpAddr::V4(array::<4>(self.buf, off).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from))
        } else {
            let off = if src { 8 } else { 24 };
            IpAddr::V6(array::<16>(self.buf, off).map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from))
        }
    }

    /// The upper-layer protocol: for IPv6, the next header after the extension headers.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Offset of the transport header (IPv4 options and IPv6 extension headers included).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Length of the packet as declared by its header.
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// The packet bytes from the IP header up to the declared total length (or fewer for a
    /// truncated quote).
    pub fn packet(&self) -> &'a [u8] {
        self.buf
    }

    /// From the transport header to the declared total length (only the bytes present for a
    /// truncated quote).
    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(self.header_len..).unwrap_or(&[])
    }

    /// Whether routers on the way may not fragment the packet: IPv4 with DF set, and every
    /// IPv6 packet (only its source fragments). Such a packet too big for a path gets an
    /// ICMP "too big" back instead.
    pub fn dont_fragment(&self) -> bool {
        match self.buf.first().map(|b| b >> 4) {
            Some(4) => self.buf.get(6).is_some_and(|b| b & 0x40 != 0),
            _ => true,
        }
    }

    /// True for any fragment of a fragmented datagram, first one included.
    pub fn is_fragment(&self) -> bool {
        self.is_fragment
    }

    /// False for non-first fragments: their payload continues someone else's transport
    /// segment and holds no transport header.
    pub fn has_transport_header(&self) -> bool {
        self.fragment_offset == 0
    }

    /// True for IPv6 with a routing header whose segments-left is non-zero: the header's
    /// destination is the next waypoint, and transport checksums use the final destination
    /// held in the routing header instead.
    pub fn routing_pending(&self) -> bool {
        self.routing_pending
    }

    /// True when the buffer holds fewer bytes than the header declares (quotes only).
    pub fn is_truncated(&self) -> bool {
        self.buf.len() < self.total_len
    }

    pub fn ttl_or_hop_limit(&self) -> u8 {
        let off = if self.version == 4 { 8 } else { 7 };
        u8_at(self.buf, off).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{build_ip, udp_segment};
    use proptest::prelude::*;

    fn v4(a: &str) -> IpAddr {
        IpAddr::V4(a.parse().unwrap())
    }
    fn v6(a: &str) -> IpAddr {
        IpAddr::V6(a.parse().unwrap())
    }

    #[test]
    fn ipv4_udp_with_padding() {
        let seg = udp_segment(1234, 53, b"hi");
        let mut p = build_ip(v4("10.0.0.1"), v4("10.0.0.2"), PROTO_UDP, &seg);
        p.extend_from_slice(&[0, 0, 0, 0]); // Ethernet-style padding
        let v = IpView::parse(&p).unwrap();
        assert_eq!(v.version(), 4);
        assert_eq!(v.src(), v4("10.0.0.1"));
        assert_eq!(v.dst(), v4("10.0.0.2"));
        assert_eq!(v.dst_v4(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(v.protocol(), PROTO_UDP);
        assert_eq!(v.header_len(), 20);
        assert_eq!(v.total_len(), 30);
        assert_eq!(v.payload(), &p[20..30]);
        assert_eq!(v.packet(), &p[..30]);
        assert!(!v.is_fragment());
        assert!(v.has_transport_header());
        assert_eq!(v.ttl_or_hop_limit(), 64);
    }

    #[test]
    fn ipv4_rejections() {
        let seg = udp_segment(1, 2, b"");
        let p = build_ip(v4("1.2.3.4"), v4("5.6.7.8"), PROTO_UDP, &seg);
        assert_eq!(IpView::parse(&p[..19]), Err(WireError::Truncated));
        assert_eq!(IpView::parse(&p[..27]), Err(WireError::Truncated));
        assert!(IpView::parse_quoted(&p[..21]).is_ok());
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(IpView::parse(&bad), Err(WireError::BadHeader));
        let mut bad = p.clone();
        bad[2] = 0;
        bad[3] = 19;
        assert_eq!(IpView::parse(&bad), Err(WireError::BadLength));
        let mut bad = p.clone();
        bad[0] = 0x55;
        assert_eq!(IpView::parse(&bad), Err(WireError::BadVersion));
        assert_eq!(IpView::parse(&[]), Err(WireError::Truncated));
    }

    #[test]
    fn ipv4_fragments() {
        let seg = udp_segment(1, 2, b"abcdefgh");
        let mut p = build_ip(v4("1.2.3.4"), v4("5.6.7.8"), PROTO_UDP, &seg);
        p[6] = 0x20; // MF, offset 0: first fragment
        let v = IpView::parse(&p).unwrap();
        assert!(v.is_fragment() && v.has_transport_header());
        p[6] = 0x00;
        p[7] = 0x03; // offset 24 bytes, last fragment
        let v = IpView::parse(&p).unwrap();
        assert!(v.is_fragment() && !v.has_transport_header());
    }

    #[test]
    fn ipv6_extension_walk() {
        let seg = udp_segment(1, 2, b"xyz");
        let mut p = build_ip(v6("2001:db8::1"), v6("2001:db8::2"), PROTO_UDP, &seg);
        // Insert hop-by-hop (8 bytes) then a first fragment header before UDP.
        let hbh = [EXT_FRAGMENT, 0, 1, 4, 0, 0, 0, 0];
        let frag = [PROTO_UDP, 0, 0x00, 0x01, 0, 0, 0, 7]; // offset 0, M=1
        p[6] = EXT_HOP_BY_HOP;
        let mut q = p[..40].to_vec();
        q.extend_from_slice(&hbh);
        q.extend_from_slice(&frag);
        q.extend_from_slice(&p[40..]);
        let plen = (q.len() - 40) as u16;
        q[4..6].copy_from_slice(&plen.to_be_bytes());
        let v = IpView::parse(&q).unwrap();
        assert_eq!(v.protocol(), PROTO_UDP);
        assert_eq!(v.header_len(), 56);
        assert_eq!(v.dst_v4(), None, "an IPv6 packet has no IPv4 destination");
        assert_eq!(v.payload(), &q[56..]);
        assert_eq!(v.payload().len(), seg.len());
        assert!(v.is_fragment() && v.has_transport_header());
        assert_eq!(v.ttl_or_hop_limit(), 64);
        assert_eq!(v.src(), v6("2001:db8::1"));
        // Non-first fragment: the walk stops at the fragment header.
        q[50] = 0x00;
        q[51] = 0x08;
        let v = IpView::parse(&q).unwrap();
        assert!(!v.has_transport_header());
        assert!(!v.routing_pending());
        assert_eq!(v.header_len(), 56);
        // An extension header running past the payload length is truncated.
        q[41] = 200;
        assert_eq!(IpView::parse(&q), Err(WireError::Truncated));
    }

    #[test]
    fn ipv6_routing_pending() {
        let seg = udp_segment(1, 2, b"");
        let p = build_ip(v6("2001:db8::1"), v6("2001:db8::2"), PROTO_UDP, &seg);
        for (left, pending) in [(0u8, false), (1, true)] {
            let mut q = p[..40].to_vec();
            q[6] = EXT_ROUTING;
            q.extend_from_slice(&[PROTO_UDP, 0, 4, left, 0, 0, 0, 0]);
            q.extend_from_slice(&p[40..]);
            q[5] += 8;
            let v = IpView::parse(&q).unwrap();
            assert_eq!(v.routing_pending(), pending);
            assert_eq!(v.protocol(), PROTO_UDP);
            // Its sum covers the final destination, held in the routing header: not left
            // partial while waypoints remain.
            let partial = crate::wire::checksum::PartialChecksum::of(&q);
            assert_eq!(partial.is_none(), pending);
        }
    }

    #[test]
    fn ipv6_walk_is_bounded() {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = EXT_DEST_OPTS;
        for _ in 0..20 {
            p.extend_from_slice(&[EXT_DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(IpView::parse(&p), Err(WireError::BadHeader));
    }

    #[test]
    fn ipv6_jumbo_unsupported() {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        assert_eq!(IpView::parse(&p), Err(WireError::Unsupported));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            for v in [IpView::parse(&data), IpView::parse_quoted(&data)].into_iter().flatten() {
                let _ = (v.src(), v.dst(), v.payload(), v.ttl_or_hop_limit());
                prop_assert!(v.header_len() <= v.packet().len());
            }
        }

        #[test]
        fn never_panics_v6_shaped(mut data in proptest::collection::vec(any::<u8>(), 40..160), nh in prop::sample::select(vec![0u8, 43, 44, 60, 6, 17])) {
            data[0] = 0x60;
            data[6] = nh;
            let plen = (data.len() - 40) as u16;
            data[4..6].copy_from_slice(&plen.to_be_bytes());
            if let Ok(v) = IpView::parse(&data) {
                prop_assert!(v.header_len() <= v.total_len());
                let _ = v.payload();
            }
        }
    }
}
