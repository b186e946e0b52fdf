//! Explicit Congestion Notification (RFC 3168) in an inner packet's IP header. A node whose
//! receive queue stays long marks an ECN-capable packet Congestion Experienced instead of
//! dropping it: its TCP slows down just the same, without losing a segment.

use super::bytes::{put_u16, u16_at, u8_at};
use super::checksum::update;
use super::WireError;

/// The ECN field's codepoint for Congestion Experienced; 0 is Not-ECT.
const CE: u8 = 0b11;

/// Marks `packet` Congestion Experienced if its sender declared it ECN-capable: whether it
/// did (a packet already marked counts). A Not-ECT packet is left as it is; the caller drops
/// it instead. The IPv4 header checksum is updated incrementally.
pub fn mark_congestion(packet: &mut [u8]) -> Result<bool, WireError> {
    match u8_at(packet, 0)? >> 4 {
        4 => {
            let ecn = u8_at(packet, 1)? & CE;
            let (word, checksum) = (u16_at(packet, 0)?, u16_at(packet, 10)?);
            if ecn == 0 {
                return Ok(false);
            }
            let marked = word | u16::from(CE);
            put_u16(packet, 0, marked)?;
            put_u16(
                packet,
                10,
                update(checksum, &word.to_be_bytes(), &marked.to_be_bytes()),
            )?;
            Ok(true)
        }
        6 => {
            // Traffic class straddles bytes 0 and 1; its ECN bits are bits 4-5 of byte 1.
            let word = u16_at(packet, 0)?;
            if (word >> 4) & u16::from(CE) == 0 {
                return Ok(false);
            }
            put_u16(packet, 0, word | u16::from(CE) << 4)?;
            Ok(true)
        }
        _ => Err(WireError::BadVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::verify;
    use crate::wire::ip::PROTO_UDP;
    use crate::wire::testutil::{build_ip, udp_segment};
    use std::net::IpAddr;

    fn packet(v6: bool, ecn: u8) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        let mut p = build_ip(src, dst, PROTO_UDP, &udp_segment(1, 2, b"payload"));
        if v6 {
            p[1] |= ecn << 4;
        } else {
            // The DSCP stays; only the ECN bits are set, with the checksum recomputed.
            p[1] = 0b1011_1000 | ecn;
            p[10..12].fill(0);
            let ck = crate::wire::checksum::internet_checksum(&p[..20]);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
        }
        p
    }

    #[test]
    fn ect_packets_are_marked_with_a_valid_header_and_not_ect_ones_are_left() {
        for v6 in [false, true] {
            for ecn in [0b01, 0b10, 0b11] {
                let mut p = packet(v6, ecn);
                let before = p.clone();
                assert_eq!(mark_congestion(&mut p), Ok(true), "v6 {v6} ecn {ecn}");
                if v6 {
                    assert_eq!((p[1] >> 4) & 3, CE);
                    assert_eq!(p[0], before[0], "version and DSCP keep");
                } else {
                    assert_eq!(p[1], 0b1011_1000 | CE, "DSCP keeps");
                    assert!(verify(&p[..20]), "header checksum");
                }
                // Nothing else moves but the IPv4 header checksum.
                let checksum = if v6 { 0..0 } else { 10..12 };
                let rest = |q: &[u8]| -> Vec<u8> {
                    (2..q.len())
                        .filter(|i| !checksum.contains(i))
                        .map(|i| q[i])
                        .collect()
                };
                assert_eq!(rest(&p), rest(&before));
            }
            let mut p = packet(v6, 0);
            let before = p.clone();
            assert_eq!(mark_congestion(&mut p), Ok(false));
            assert_eq!(p, before);
        }
    }

    #[test]
    fn short_or_foreign_packets_are_errors_not_panics() {
        assert_eq!(mark_congestion(&mut []), Err(WireError::Truncated));
        assert_eq!(
            mark_congestion(&mut [0x45, 1, 0]),
            Err(WireError::Truncated)
        );
        assert_eq!(mark_congestion(&mut [0x60]), Err(WireError::Truncated));
        assert_eq!(mark_congestion(&mut [0x50; 20]), Err(WireError::BadVersion));
    }
}
