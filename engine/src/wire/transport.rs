//! Zero-copy views of UDP, TCP and ICMP/ICMPv6 headers.
//!
//! Each view takes the IP payload (see [`IpView::payload`](super::ip::IpView::payload)).
//! Checksums are not verified here: the engine decides whether a bad checksum matters
//! (a tunnel endpoint forwards packets it could not have corrupted).

use super::bytes::{slice, u16_at, u32_at, u8_at};
use super::WireError;

pub const UDP_HEADER_LEN: usize = 8;
pub const TCP_MIN_HEADER_LEN: usize = 20;
pub const ICMP_HEADER_LEN: usize = 8;

/// A UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView<'a> {
    buf: &'a [u8],
}

impl<'a> UdpView<'a> {
    /// Parses a UDP header. The length field must cover the header and fit in `buf`; bytes
    /// beyond it are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < UDP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(u16_at(buf, 4)?);
        if len < UDP_HEADER_LEN || len > buf.len() {
            return Err(WireError::BadLength);
        }
        Ok(UdpView {
            buf: slice(buf, 0, len)?,
        })
    }

    pub fn src_port(&self) -> u16 {
        u16_at(self.buf, 0).unwrap_or(0)
    }

    pub fn dst_port(&self) -> u16 {
        u16_at(self.buf, 2).unwrap_or(0)
    }

    /// The checksum field; 0 means "none" (allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        u16_at(self.buf, 6).unwrap_or(0)
    }

    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(UDP_HEADER_LEN..).unwrap_or(&[])
    }
}

/// TCP flag bits as found in byte 13 of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// A TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpView<'a> {
    buf: &'a [u8],
    header_len: usize,
}

impl<'a> TcpView<'a> {
    /// Parses a TCP header; the data offset must be at least 5 words and within `buf`.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < TCP_MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(u8_at(buf, 12)? >> 4) * 4;
        if header_len < TCP_MIN_HEADER_LEN {
            return Err(WireError::BadHeader);
        }
        if header_len > buf.len() {
            return Err(WireError::Truncated);
        }
        Ok(TcpView { buf, header_len })
    }

    pub fn src_port(&self) -> u16 {
        u16_at(self.buf, 0).unwrap_or(0)
    }

    pub fn dst_port(&self) -> u16 {
        u16_at(self.buf, 2).unwrap_or(0)
    }

    pub fn seq(&self) -> u32 {
        u32_at(self.buf, 4).unwrap_or(0)
    }

    pub fn ack(&self) -> u32 {
        u32_at(self.buf, 8).unwrap_or(0)
    }

    /// The flag byte; test with the constants in [`tcp_flags`].
    pub fn flags(&self) -> u8 {
        u8_at(self.buf, 13).unwrap_or(0)
    }

    pub fn window(&self) -> u16 {
        u16_at(self.buf, 14).unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.buf, 16).unwrap_or(0)
    }

    /// Header length in bytes, options included.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    pub fn payload(&self) -> &'a [u8] {
        self.buf.get(self.header_len..).unwrap_or(&[])
    }
}

/// ICMP for IPv4 or ICMPv6: the two share a header layout but not their type numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpView<'a> {
    buf: &'a [u8],
    v6: bool,
}

impl<'a> IcmpView<'a> {
    /// Parses an ICMPv4 message (carried in IPv4, protocol 1).
    pub fn parse_v4(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse(buf, false)
    }

    /// Parses an ICMPv6 message (carried in IPv6, next header 58).
    pub fn parse_v6(buf: &'a [u8]) -> Result<Self, WireError> {
        Self::parse(buf, true)
    }

    /// Every message we interpret has at least the 8-byte header (type, code, checksum and
    /// four type-specific bytes).
    pub fn parse(buf: &'a [u8], v6: bool) -> Result<Self, WireError> {
        if buf.len() < ICMP_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(IcmpView { buf, v6 })
    }

    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// The ICMP type.
    pub fn kind(&self) -> u8 {
        u8_at(self.buf, 0).unwrap_or(0)
    }

    pub fn code(&self) -> u8 {
        u8_at(self.buf, 1).unwrap_or(0)
    }

    pub fn checksum(&self) -> u16 {
        u16_at(self.buf, 2).unwrap_or(0)
    }

    /// Echo request or reply.
    pub fn is_echo(&self) -> bool {
        is_echo_type(self.v6, self.kind())
    }

    /// The identifier of an echo request/reply (what NATs and we key flows on).
    pub fn echo_id(&self) -> Option<u16> {
        self.is_echo().then(|| u16_at(self.buf, 4).unwrap_or(0))
    }

    pub fn echo_seq(&self) -> Option<u16> {
        self.is_echo().then(|| u16_at(self.buf, 6).unwrap_or(0))
    }

    /// Destination unreachable, time exceeded, packet too big (v6) or parameter problem:
    /// the messages that quote the packet that caused them.
    pub fn is_error(&self) -> bool {
        is_error_type(self.v6, self.kind())
    }

    /// The MTU announced by "fragmentation needed" (v4 type 3 code 4) or "packet too big"
    /// (v6 type 2).
    pub fn mtu(&self) -> Option<u32> {
        match (self.v6, self.kind(), self.code()) {
            (false, 3, 4) => u16_at(self.buf, 6).ok().map(u32::from),
            (true, 2, _) => u32_at(self.buf, 4).ok(),
            _ => None,
        }
    }

    /// The quoted original packet of an error message (often truncated); empty otherwise.
    pub fn quoted(&self) -> &'a [u8] {
        if self.is_error() {
            self.body()
        } else {
            &[]
        }
    }

    /// Everything after the 8-byte header (echo data, quoted packet, ...).
    pub fn body(&self) -> &'a [u8] {
        self.buf.get(ICMP_HEADER_LEN..).unwrap_or(&[])
    }
}

pub(crate) fn is_echo_type(v6: bool, kind: u8) -> bool {
    if v6 {
        kind == 128 || kind == 129
    } else {
        kind == 8 || kind == 0
    }
}

pub(crate) fn is_error_type(v6: bool, kind: u8) -> bool {
    if v6 {
        (1..=4).contains(&kind)
    } else {
        matches!(kind, 3 | 11 | 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{echo, icmp_error, tcp_segment, udp_segment};
    use proptest::prelude::*;

    #[test]
    fn udp_fields() {
        let s = udp_segment(5353, 53, b"query");
        let mut padded = s.clone();
        padded.push(0);
        let u = UdpView::parse(&padded).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (5353, 53));
        assert_eq!(u.payload(), b"query");
        assert_eq!(u.checksum(), 0xdead);
        assert_eq!(UdpView::parse(&s[..7]), Err(WireError::Truncated));
        assert_eq!(UdpView::parse(&s[..12]), Err(WireError::BadLength));
        let mut short = s.clone();
        short[5] = 7;
        assert_eq!(UdpView::parse(&short), Err(WireError::BadLength));
    }

    #[test]
    fn tcp_fields() {
        let s = tcp_segment(
            443,
            50000,
            0xdead_beef,
            tcp_flags::SYN | tcp_flags::ACK,
            b"x",
        );
        let t = TcpView::parse(&s).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (443, 50000));
        assert_eq!(t.seq(), 0xdead_beef);
        assert_eq!(t.ack(), 0x0102_0304);
        assert_eq!(t.flags(), 0x12);
        assert_eq!(t.window(), 0xffff);
        assert_eq!(t.header_len(), 24);
        assert_eq!(t.payload(), b"x");
        assert_eq!(TcpView::parse(&s[..23]), Err(WireError::Truncated));
        let mut bad = s.clone();
        bad[12] = 0x40;
        assert_eq!(TcpView::parse(&bad), Err(WireError::BadHeader));
    }

    #[test]
    fn icmp_echo_and_errors() {
        let e = echo(false, 0x1234, 7, b"ping");
        let v = IcmpView::parse_v4(&e).unwrap();
        assert_eq!(
            (v.kind(), v.echo_id(), v.echo_seq()),
            (8, Some(0x1234), Some(7))
        );
        assert!(!v.is_error());
        assert!(v.quoted().is_empty());
        assert_eq!(v.body(), b"ping");
        // The same bytes are not an echo in ICMPv6.
        assert_eq!(IcmpView::parse_v6(&e).unwrap().echo_id(), None);

        let err = icmp_error(3, 4, 1400, b"quoted!!");
        let v = IcmpView::parse_v4(&err).unwrap();
        assert!(v.is_error());
        assert_eq!(v.mtu(), Some(1400));
        assert_eq!(v.quoted(), b"quoted!!");
        assert_eq!(v.echo_id(), None);

        let err = icmp_error(2, 0, 1280, b"q");
        let v = IcmpView::parse_v6(&err).unwrap();
        assert!(v.is_error());
        assert_eq!(v.mtu(), Some(1280));
        assert_eq!(IcmpView::parse_v4(&err[..7]), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(u) = UdpView::parse(&data) {
                let _ = (u.src_port(), u.dst_port(), u.payload(), u.checksum());
            }
            if let Ok(t) = TcpView::parse(&data) {
                let _ = (t.seq(), t.flags(), t.payload());
                prop_assert!(t.header_len() <= data.len());
            }
            for v6 in [false, true] {
                if let Ok(i) = IcmpView::parse(&data, v6) {
                    let _ = (i.kind(), i.echo_id(), i.echo_seq(), i.quoted(), i.mtu(), i.is_error());
                }
            }
        }
    }
}
