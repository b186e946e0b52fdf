//! Explicit Congestion Notification (RFC 3168) across the tunnel, as RFC 6040 has tunnels do
//! it. A data datagram's outer ECN field starts as a copy of its inner packet's, so a queue
//! on the way (a router's, or a node's own receive queue) can mark it instead of dropping
//! it; the end that opens the packet carries a mark into the inner header, where the flow's
//! TCP sees it and slows down without losing a segment.

use super::bytes::{put_u16, u16_at};
use super::checksum::update;
use super::WireError;

/// An ECN codepoint: the low two bits of IPv4's TOS or IPv6's traffic class (the
/// discriminants are those bits, so converting costs nothing on the data path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Ecn {
    /// The sender's transport does not take part: congestion means a drop.
    #[default]
    NotEct = 0b00,
    /// ECN-capable transport, codepoint 1 (used by L4S).
    Ect1 = 0b01,
    /// ECN-capable transport, codepoint 0 (classic ECN).
    Ect0 = 0b10,
    /// Congestion Experienced: a queue on the way marked it.
    Ce = 0b11,
}

impl Ecn {
    /// The codepoint in the low two bits of `bits`.
    #[inline]
    pub fn from_bits(bits: u8) -> Ecn {
        match bits & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// The two bits.
    #[inline]
    pub fn bits(self) -> u8 {
        self as u8
    }

    /// What a queue that must signal congestion does to a packet carrying `self`: marks it
    /// CE, or — when its transport would not understand a mark — drops it (`None`).
    pub fn congested(self) -> Option<Ecn> {
        (self != Ecn::NotEct).then_some(Ecn::Ce)
    }

    /// RFC 6040's decapsulation (its Figure 4): the inner packet's field given the inner and
    /// outer ones, or `None` where the packet must be dropped — the outer header says
    /// congestion and the inner transport cannot be told.
    #[inline]
    pub fn decapsulate(inner: Ecn, outer: Ecn) -> Option<Ecn> {
        match (inner, outer) {
            (Ecn::NotEct, Ecn::Ce) => None,
            (Ecn::NotEct, _) | (_, Ecn::NotEct) => Some(inner),
            (_, Ecn::Ce) | (Ecn::Ce, _) => Some(Ecn::Ce),
            (_, Ecn::Ect1) => Some(Ecn::Ect1),
            (_, Ecn::Ect0) => Some(inner),
        }
    }
}

/// The ECN field of an IP packet.
#[inline]
pub fn ecn_of(packet: &[u8]) -> Result<Ecn, WireError> {
    let [first, second, ..] = *packet else {
        return Err(WireError::Truncated);
    };
    match first >> 4 {
        4 => Ok(Ecn::from_bits(second)),
        // Traffic class straddles bytes 0 and 1; its ECN bits are bits 4-5 of byte 1.
        6 => Ok(Ecn::from_bits(second >> 4)),
        _ => Err(WireError::BadVersion),
    }
}

/// Sets the ECN field of an IP packet, updating the IPv4 header checksum incrementally.
pub fn set_ecn(packet: &mut [u8], ecn: Ecn) -> Result<(), WireError> {
    let word = u16_at(packet, 0)?;
    match word >> 12 {
        4 => {
            let checksum = u16_at(packet, 10)?;
            let new = (word & !0b11) | u16::from(ecn.bits());
            put_u16(packet, 0, new)?;
            put_u16(
                packet,
                10,
                update(checksum, &word.to_be_bytes(), &new.to_be_bytes()),
            )
        }
        6 => put_u16(packet, 0, (word & !0x30) | u16::from(ecn.bits()) << 4),
        _ => Err(WireError::BadVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{internet_checksum, verify};
    use crate::wire::ip::PROTO_UDP;
    use crate::wire::testutil::{build_ip, udp_segment};
    use std::net::IpAddr;

    const ALL: [Ecn; 4] = [Ecn::NotEct, Ecn::Ect1, Ecn::Ect0, Ecn::Ce];

    fn packet(v6: bool, ecn: Ecn) -> Vec<u8> {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap())
        } else {
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
        };
        let mut p = build_ip(src, dst, PROTO_UDP, &udp_segment(1, 2, b"payload"));
        if v6 {
            p[0] |= 0x0b; // a DSCP in the traffic class's high bits
            p[1] |= 0x80 | ecn.bits() << 4;
        } else {
            p[1] = 0b1011_1000 | ecn.bits();
            p[10..12].fill(0);
            let ck = internet_checksum(&p[..20]);
            p[10..12].copy_from_slice(&ck.to_be_bytes());
        }
        p
    }

    #[test]
    fn setting_the_field_keeps_the_rest_of_the_header_and_a_valid_checksum() {
        for v6 in [false, true] {
            for from in ALL {
                for to in ALL {
                    let mut p = packet(v6, from);
                    assert_eq!(ecn_of(&p), Ok(from));
                    set_ecn(&mut p, to).unwrap();
                    assert_eq!(ecn_of(&p), Ok(to), "v6 {v6}: {from:?} -> {to:?}");
                    let mut expected = packet(v6, to);
                    if !v6 {
                        assert!(verify(&p[..20]), "header checksum");
                        // The checksum may differ only in its representation of zero.
                        expected[10..12].copy_from_slice(&p[10..12]);
                    }
                    assert_eq!(p, expected, "only the ECN bits move");
                }
            }
        }
    }

    #[test]
    fn decapsulation_follows_rfc_6040() {
        use Ecn::*;
        // Rows: inner; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            (NotEct, [Some(NotEct), Some(NotEct), Some(NotEct), None]),
            (Ect0, [Some(Ect0), Some(Ect0), Some(Ect1), Some(Ce)]),
            (Ect1, [Some(Ect1), Some(Ect1), Some(Ect1), Some(Ce)]),
            (Ce, [Some(Ce), Some(Ce), Some(Ce), Some(Ce)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NotEct, Ect0, Ect1, Ce].into_iter().zip(row) {
                assert_eq!(
                    Ecn::decapsulate(inner, outer),
                    want,
                    "{inner:?} in {outer:?}"
                );
            }
        }
        assert_eq!(NotEct.congested(), None);
        for e in [Ect0, Ect1, Ce] {
            assert_eq!(e.congested(), Some(Ce));
        }
        for e in ALL {
            assert_eq!(Ecn::from_bits(e.bits()), e);
        }
    }

    #[test]
    fn short_or_foreign_packets_are_errors_not_panics() {
        assert_eq!(ecn_of(&[]), Err(WireError::Truncated));
        assert_eq!(ecn_of(&[0x45]), Err(WireError::Truncated));
        assert_eq!(ecn_of(&[0x50, 0]), Err(WireError::BadVersion));
        assert_eq!(
            set_ecn(&mut [0x45, 1, 0], Ecn::Ce),
            Err(WireError::Truncated)
        );
        assert_eq!(set_ecn(&mut [0x60], Ecn::Ce), Err(WireError::Truncated));
        assert_eq!(
            set_ecn(&mut [0x50; 20], Ecn::Ce),
            Err(WireError::BadVersion)
        );
    }
}
