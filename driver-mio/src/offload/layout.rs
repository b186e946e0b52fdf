//! Just enough of IPv4, IPv6, TCP and UDP headers to cut and join segments: where the
//! transport header and the payload start, the addresses for the pseudo-header, and the
//! fields that change from one segment to the next.

use ocala_engine::wire::checksum;
pub use ocala_engine::wire::transport::tcp_flags::*;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Where a TCP segment's or UDP datagram's parts sit in an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub v6: bool,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// Start of the transport header (the IP header's length).
    pub l4: usize,
    /// Start of the payload (IP plus transport header length).
    pub payload: usize,
}

/// The transport protocol an IP packet says it carries (IPv6: its first next header).
pub fn protocol(packet: &[u8]) -> Option<u8> {
    match packet.first()? >> 4 {
        4 => packet.get(9).copied(),
        6 => packet.get(6).copied(),
        _ => None,
    }
}

impl Layout {
    /// The layout of a `proto` packet (TCP or UDP): IPv4 without fragmentation, or IPv6
    /// whose transport header starts at `l4_hint` (the kernel's `csum_start`, which skips
    /// extension headers) or right after the fixed header. `None` for anything else or
    /// anything cut short.
    pub fn of(packet: &[u8], proto: u8, l4_hint: Option<usize>) -> Option<Layout> {
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return None;
        }
        let (v6, l4) = match packet.first()? >> 4 {
            4 => {
                let ihl = usize::from(packet.first()? & 0x0f) * 4;
                let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
                if ihl < 20 || *packet.get(9)? != proto || frag & 0x3fff != 0 {
                    return None;
                }
                (false, ihl)
            }
            6 => match l4_hint {
                Some(l4) if l4 >= 40 => (true, l4),
                _ if *packet.get(6)? == proto => (true, 40),
                _ => return None,
            },
            _ => return None,
        };
        let header = if proto == PROTO_TCP {
            let doff = usize::from(packet.get(l4 + 12)? >> 4) * 4;
            if doff < 20 {
                return None;
            }
            doff
        } else {
            8
        };
        let payload = l4 + header;
        (payload <= packet.len()).then_some(Layout {
            v6,
            proto,
            l4,
            payload,
        })
    }

    /// Where the transport checksum lies, from the transport header's start.
    pub fn checksum_offset(&self) -> usize {
        if self.proto == PROTO_TCP {
            16
        } else {
            6
        }
    }

    /// The unfolded pseudo-header sum for a transport segment of `len` bytes.
    pub fn pseudo(&self, packet: &[u8], len: usize) -> u64 {
        let at = |r: std::ops::Range<usize>| packet.get(r).unwrap_or(&[]);
        if self.v6 {
            let a =
                |b: &[u8]| <[u8; 16]>::try_from(b).map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from);
            checksum::pseudo_header_v6(&a(at(8..24)), &a(at(24..40)), self.proto, len as u32)
        } else {
            let a = |b: &[u8]| <[u8; 4]>::try_from(b).map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from);
            checksum::pseudo_header_v4(a(at(12..16)), a(at(16..20)), self.proto, len as u16)
        }
    }

    /// Sets the IP length fields for a packet of `total` bytes and, for IPv4, the header
    /// checksum; for UDP also the datagram's length. `packet` holds at least the headers.
    pub fn set_lengths(&self, packet: &mut [u8], total: usize) {
        if self.proto == PROTO_UDP {
            put16(packet, self.l4 + 4, (total - self.l4) as u16);
        }
        if self.v6 {
            put16(packet, 4, (total - 40) as u16);
            return;
        }
        put16(packet, 2, total as u16);
        put16(packet, 10, 0);
        let c = checksum::internet_checksum(packet.get(..self.l4).unwrap_or(&[]));
        put16(packet, 10, c);
    }

    /// Whether the transport checksum (and for IPv4 the header checksum) of `packet` holds.
    /// A UDP datagram sent without a checksum (zero, IPv4 only) has none that holds.
    pub fn checksums_hold(&self, packet: &[u8]) -> bool {
        let seg = packet.get(self.l4..).unwrap_or(&[]);
        let transport = checksum::add(self.pseudo(packet, seg.len()), checksum::sum(seg));
        let ip = self.v6 || checksum::verify(packet.get(..self.l4).unwrap_or(&[]));
        let unsummed = self.proto == PROTO_UDP && get16(seg, 6) == 0;
        checksum::fold(transport) == 0xffff && ip && !unsummed
    }
}

/// Reads the 16-bit big-endian field at `at`; 0 past the end.
#[inline]
pub fn get16(packet: &[u8], at: usize) -> u16 {
    packet
        .get(at..at + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

/// Reads the 32-bit big-endian field at `at`; 0 past the end.
#[inline]
pub fn get32(packet: &[u8], at: usize) -> u32 {
    packet
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Writes a 16-bit big-endian field; nothing past the end.
#[inline]
pub fn put16(packet: &mut [u8], at: usize, v: u16) {
    if let Some(b) = packet.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes a 32-bit big-endian field; nothing past the end.
#[inline]
pub fn put32(packet: &mut [u8], at: usize, v: u32) {
    if let Some(b) = packet.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}
