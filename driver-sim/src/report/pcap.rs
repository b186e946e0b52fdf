//! Classic pcap files (the libpcap format that Wireshark and tshark open) of what a link
//! carried. The simulator moves bare UDP payloads between socket addresses, so each is
//! wrapped in the IPv4 or IPv6 and UDP headers it would have on a real wire (by
//! `hoststack::udp`, checksums included) and stamped with the simulated time: a run starts
//! at the epoch, so the same run always writes the same bytes.

use crate::hoststack;
use crate::outcome::Frame;

/// Microsecond timestamps, written in this machine-independent (little-endian) order.
const MAGIC: u32 = 0xa1b2_c3d4;
/// LINKTYPE_RAW: each record is an IP packet, version in its first nibble (IPv4 or IPv6).
const LINKTYPE_RAW: u32 = 101;
/// Records are kept whole up to this length (any UDP datagram fits).
const SNAPLEN: u32 = 65_535;

/// A pcap file of `frames`, in order. A frame whose two addresses are of different
/// families, which no single IP header can carry, is left out.
pub fn file(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // time zone: UTC
    out.extend_from_slice(&0u32.to_le_bytes()); // timestamp accuracy
    out.extend_from_slice(&SNAPLEN.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    for f in frames {
        let packet = hoststack::udp(f.from, f.to, &f.payload);
        if packet.is_empty() {
            continue;
        }
        let nanos = f.at.as_nanos();
        let secs = u32::try_from(nanos / 1_000_000_000).unwrap_or(u32::MAX);
        let micros = (nanos % 1_000_000_000 / 1_000) as u32;
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let kept = len.min(SNAPLEN);
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&micros.to_le_bytes());
        out.extend_from_slice(&kept.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&packet[..kept as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocala_engine::Instant;

    #[test]
    fn a_frame_is_a_record_of_an_ipv4_udp_packet_at_its_simulated_time() {
        let frame = Frame {
            at: Instant::from_nanos(2_500_123_456),
            from: "10.0.0.1:4790".parse().expect("address"),
            to: "10.0.0.9:4791".parse().expect("address"),
            payload: b"hello".to_vec(),
        };
        let f = file(&[frame]);
        assert_eq!(f[..4], [0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(f[20..24], 101u32.to_le_bytes());
        let rec = &f[24..];
        assert_eq!(rec[..4], 2u32.to_le_bytes(), "seconds");
        assert_eq!(rec[4..8], 500_123u32.to_le_bytes(), "microseconds");
        assert_eq!(rec[8..12], 33u32.to_le_bytes(), "20 + 8 + 5 bytes kept");
        assert_eq!(rec[12..16], 33u32.to_le_bytes());
        let ip = &rec[16..];
        assert_eq!((ip.len(), ip[0], ip[9]), (33, 0x45, 17), "IPv4, UDP");
        assert_eq!(ip[2..4], 33u16.to_be_bytes(), "IP total length");
        assert_eq!(ip[12..20], [10, 0, 0, 1, 10, 0, 0, 9], "addresses");
        assert_eq!(ip[20..24], [0x12, 0xb6, 0x12, 0xb7], "ports 4790 and 4791");
        assert_eq!(ip[24..26], 13u16.to_be_bytes(), "UDP length");
        assert_eq!(&ip[28..], b"hello");
    }

    #[test]
    fn mixed_families_are_left_out_and_ipv6_is_carried() {
        let at = Instant::ZERO;
        let mixed = Frame {
            at,
            from: "10.0.0.1:1".parse().expect("address"),
            to: "[2001:db8::1]:2".parse().expect("address"),
            payload: vec![1],
        };
        let v6 = Frame {
            to: "[2001:db8::2]:2".parse().expect("address"),
            from: "[2001:db8::1]:1".parse().expect("address"),
            ..mixed.clone()
        };
        let f = file(&[mixed, v6]);
        assert_eq!(f.len(), 24 + 16 + 40 + 8 + 1, "one IPv6 record");
        assert_eq!(f[40] >> 4, 6);
    }
}
