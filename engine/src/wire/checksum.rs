//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept *unfolded* in a `u64` so that pieces (a pseudo-header, a header, a payload)
//! can be added together cheaply and folded once at the end. Because 2^16 ≡ 1 modulo
//! 0xFFFF, adding wider words and folding later gives the same one's-complement result as
//! adding 16-bit words one by one, and one's-complement sums are byte-order independent up
//! to a final byte swap — which lets [`sum`] add a payload's native 32-bit words into four
//! independent 64-bit accumulators, a loop without a carry chain.
//!
//! Pieces must start at even offsets of the checksummed data: an odd trailing byte is padded
//! with zero as if it ended the data.

use super::ip::{IpView, PROTO_TCP, PROTO_UDP};
use super::WireError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Unfolded one's-complement sum of `data` as big-endian 16-bit words.
///
/// The result can be folded with [`fold`] or added to other sums.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    // Payloads: whole 16-byte blocks in independent lanes. Headers and addresses, and the
    // tail, a big-endian word at a time (cheaper for a few bytes).
    if data.len() < 64 {
        return sum_words(data);
    }
    let (blocks, rest) = data.split_at(data.len() / 16 * 16);
    add(sum_blocks(blocks), sum_words(rest))
}

/// Sum of whole 16-byte blocks: little-endian 32-bit words into four u64 lanes (no carries
/// to propagate until 2^32 words, no dependency between lanes), folded, then swapped to
/// network order.
fn sum_blocks(blocks: &[u8]) -> u64 {
    let mut lanes = [0u64; 4];
    for b in blocks.chunks_exact(16) {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(4)) {
            *lane += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let le = lanes.iter().fold(0, |acc, l| add(acc, *l));
    u64::from(fold(le).swap_bytes())
}

/// Sum of big-endian 64-bit words with end-around carry, the last zero-padded on the right:
/// a lone last byte becomes the high half of a 16-bit word, exactly as RFC 1071 pads
/// odd-length data.
#[inline]
fn sum_words(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc = add(acc, u64::from_be_bytes(w));
    }
    // At most seven bytes: copied one by one, which costs less than a call to `memcpy`.
    let mut w = [0u8; 8];
    for (d, s) in w.iter_mut().zip(chunks.remainder()) {
        *d = *s;
    }
    add(acc, u64::from_be_bytes(w))
}

/// Adds two unfolded sums with end-around carry (never overflows).
#[inline]
pub fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // When it overflowed, `s <= u64::MAX - 1`, so adding the carry back cannot overflow.
    s + u64::from(carry)
}

/// Folds an unfolded sum to 16 bits (not complemented). A non-zero sum folds into
/// `1..=0xFFFF`, which is why checksums computed here are never the "negative zero" 0xFFFF
/// unless all data is zero.
pub fn fold(s: u64) -> u16 {
    // Without a loop: each step adds the high part to the low one, and a step on a sum that
    // already fits changes nothing. At most 2^33 - 2 after the first, 0x2FFFE after the
    // second, 0x10000 after the third, and within 16 bits after the fourth.
    let s = (s & 0xFFFF_FFFF) + (s >> 32);
    let s = (s & 0xFFFF) + (s >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    s as u16
}

/// The checksum to store for data whose unfolded sum (checksum field zeroed) is `s`.
pub fn finish(s: u64) -> u16 {
    !fold(s)
}

/// RFC 1071 checksum of `data` (with its checksum field zeroed).
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// True when `data`, checksum field included, sums to all ones — i.e. the checksum is valid.
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data)) == 0xFFFF
}

/// A transport checksum left partial by the sender's kernel (checksum offload, a TUN's
/// `NEEDS_CSUM`): the field at `start + offset` holds only the pseudo-header's sum, folded
/// and not complemented, and the bytes from `start` to the end are still to be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialChecksum {
    /// Where the summed bytes start: the transport header.
    pub start: u16,
    /// Where the field is, from `start`: 16 for TCP, 6 for UDP.
    pub offset: u16,
}

impl PartialChecksum {
    /// UDP's field: a sum of zero means "no checksum" there, so all ones is sent instead.
    const UDP_OFFSET: u16 = 6;

    /// Where the transport checksum of the IP packet `packet` is, if it has one the kernel
    /// can leave partial: TCP's or UDP's, in a packet that is not a fragment, nor an IPv6
    /// packet still on its way through a routing header's waypoints.
    pub fn of(packet: &[u8]) -> Option<PartialChecksum> {
        Self::at(&IpView::parse(packet).ok()?)
    }

    /// [`PartialChecksum::of`] the packet `ip` has already parsed.
    pub fn at(ip: &IpView<'_>) -> Option<PartialChecksum> {
        let offset = match ip.protocol() {
            PROTO_TCP => 16,
            PROTO_UDP => Self::UDP_OFFSET,
            _ => return None,
        };
        let c = PartialChecksum {
            start: u16::try_from(ip.header_len()).ok()?,
            offset,
        };
        // Behind a routing header with segments left, the sum covers an address this
        // header does not hold: such packets are left as they are.
        (!ip.is_fragment() && !ip.routing_pending() && c.fits(ip.packet().len())).then_some(c)
    }

    /// Whether the field lies inside a packet of `len` bytes.
    pub fn fits(self, len: usize) -> bool {
        usize::from(self.start) + usize::from(self.offset) + 2 <= len
    }

    /// Completes the checksum of `packet` in place; a field outside it is left alone
    /// (`false`).
    pub fn complete(self, packet: &mut [u8]) -> bool {
        let start = usize::from(self.start);
        let field = start + usize::from(self.offset);
        if !self.fits(packet.len()) {
            return false;
        }
        let mut c = finish(sum(&packet[start..]));
        if c == 0 && self.offset == Self::UDP_OFFSET {
            c = 0xFFFF;
        }
        packet[field..field + 2].copy_from_slice(&c.to_be_bytes());
        true
    }

    /// Checks the complete checksum of `packet`, this field's IP packet, and leaves it
    /// partial: the pseudo-header's sum in the field, as a kernel with offloads writes it.
    /// What a plain path carries to a peer that takes partial checksums, where every TCP and
    /// UDP packet travels so. A UDP checksum of zero ("none": optional over IPv4, and over
    /// IPv6 what tunnels such as VXLAN may send) is not checked, and becomes a real one at the
    /// receiving kernel. `BadChecksum` when it does not verify, or another error when the IP
    /// header does not parse; the packet is then unchanged. Bytes past the IP header's
    /// total length are padding, outside the sum as at the receiving kernel.
    pub fn leave_partial(self, packet: &mut [u8]) -> Result<(), WireError> {
        let ip = IpView::parse(packet)?;
        let start = usize::from(self.start);
        let field = start + usize::from(self.offset);
        let transport = packet
            .get(start..ip.total_len())
            .ok_or(WireError::Truncated)?;
        let stored = transport
            .get(usize::from(self.offset)..usize::from(self.offset) + 2)
            .ok_or(WireError::Truncated)?;
        let pseudo = match (ip.src(), ip.dst()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let len = u16::try_from(transport.len()).map_err(|_| WireError::TooLarge)?;
                pseudo_header_v4(s, d, ip.protocol(), len)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let len = u32::try_from(transport.len()).map_err(|_| WireError::TooLarge)?;
                pseudo_header_v6(&s, &d, ip.protocol(), len)
            }
            _ => return Err(WireError::FamilyMismatch),
        };
        let none = self.offset == Self::UDP_OFFSET && stored == [0, 0];
        if !none && fold(add(pseudo, sum(transport))) != 0xFFFF {
            return Err(WireError::BadChecksum);
        }
        packet[field..field + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
        Ok(())
    }
}

/// Unfolded sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793, RFC 768).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    let s = u64::from(u32::from(src)) + u64::from(u32::from(dst));
    s + u64::from(protocol) + u64::from(len)
}

/// Unfolded sum of the IPv6 pseudo-header used by TCP, UDP and ICMPv6 (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u64 {
    let s = add(sum(&src.octets()), sum(&dst.octets()));
    add(s, u64::from(next_header) + u64::from(len))
}

/// RFC 1624 incremental update: the checksum after the bytes `old` (at an even offset of the
/// covered data, or in its pseudo-header) were replaced by `new`.
///
/// Uses eqn. 3, HC' = ~(~HC + ~m + m'), which — unlike eqn. 2 — never turns a valid checksum
/// into the 0x0000/0xFFFF ambiguity: for any data that is not all zeros the result equals a
/// full recomputation. `old` and `new` are normally equal-length even byte strings (an
/// address); other lengths are still handled as zero-padded word strings.
pub fn update(old_checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    update_sums(old_checksum, sum(old), sum(new))
}

/// [`update`] with the old and new contents given as unfolded sums, so that several changed
/// regions can be accumulated and applied at once.
pub fn update_sums(old_checksum: u16, old_sum: u64, new_sum: u64) -> u16 {
    // ~HC + ~m + m', with each term a 16-bit one's-complement value; `new_sum` may take all
    // 64 bits, so it is added with its carry.
    let acc = add(
        u64::from(!old_checksum) + u64::from(!fold(old_sum)),
        new_sum,
    );
    !fold(acc)
}

/// Running record of replaced regions, applied to a checksum in one go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    old: u64,
    new: u64,
}

impl Delta {
    /// Records that data summing to `old` became data summing to `new` (both unfolded sums
    /// of data at an even offset of the covered data).
    pub(crate) fn replace_sums(&mut self, old: u64, new: u64) {
        self.old = add(self.old, old);
        self.new = add(self.new, new);
    }

    /// Records that the 16-bit word `old` became `new` (a checksum field, say).
    pub(crate) fn replace_word(&mut self, old: u16, new: u16) {
        self.replace_sums(u64::from(old), u64::from(new));
    }

    /// Merges another delta into this one.
    pub(crate) fn merge(&mut self, other: Delta) {
        self.old = add(self.old, other.old);
        self.new = add(self.new, other.new);
    }

    #[inline]
    pub(crate) fn apply(&self, checksum: u16) -> u16 {
        update_sums(checksum, self.old, self.new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Textbook RFC 1071 loop, 16 bits at a time, as an independent reference.
    fn naive(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            s += hi | lo;
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn a_partial_checksum_completes_to_the_full_one_and_stays_inside_the_packet() {
        use crate::wire::testutil::{tcp_segment, udp_segment};
        for seg in [
            tcp_segment(4000, 80, 7, 0x18, b"odd length!"),
            udp_segment(53, 9, b""),
        ] {
            // An IPv4 packet around the segment, its checksum what the kernel leaves partial.
            let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
            let offset: u16 = if seg.len() == 8 { 6 } else { 16 };
            let field = 20 + usize::from(offset);
            let mut packet = vec![0u8; 20];
            packet.extend_from_slice(&seg);
            packet[field..field + 2].fill(0);
            let pseudo =
                pseudo_header_v4(src, dst, if offset == 6 { 17 } else { 6 }, seg.len() as u16);
            let full = finish(add(pseudo, sum(&packet[20..])));
            packet[field..field + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
            let at = PartialChecksum { start: 20, offset };
            assert!(at.complete(&mut packet));
            let want = if full == 0 && offset == 6 {
                0xFFFF
            } else {
                full
            };
            assert_eq!(packet[field..field + 2], want.to_be_bytes());
        }
        let mut short = vec![0u8; 37];
        let tcp = PartialChecksum {
            start: 20,
            offset: 16,
        };
        assert!(!tcp.fits(short.len()) && !tcp.complete(&mut short));
        assert_eq!(short, [0; 37], "left alone");
        let far = PartialChecksum {
            start: u16::MAX,
            offset: u16::MAX,
        };
        assert!(!far.complete(&mut short));
    }

    #[test]
    fn leave_partial_checks_the_checksum_and_writes_what_a_kernel_leaves() {
        use crate::wire::testutil::{build_ip, tcp_segment, udp_segment, with_partial_checksum};
        let v4: [IpAddr; 2] = [[10, 0, 0, 1].into(), [10, 0, 0, 2].into()];
        let v6: [IpAddr; 2] = [
            "fd00::1".parse().expect("v6"),
            "fd00::2".parse().expect("v6"),
        ];
        for [src, dst] in [v4, v6] {
            for (proto, seg) in [
                (PROTO_TCP, tcp_segment(4000, 80, 7, 0x18, b"odd length!")),
                (PROTO_UDP, udp_segment(53, 9, b"some bytes")),
            ] {
                let full = build_ip(src, dst, proto, &seg);
                let at = PartialChecksum::of(&full).expect("a transport checksum");
                let mut packet = full.clone();
                assert_eq!(at.leave_partial(&mut packet), Ok(()));
                assert_eq!(packet, with_partial_checksum(&full).0, "{src} {proto}");
                assert!(at.complete(&mut packet));
                assert_eq!(packet, full, "completes to what it was");
                let mut bad = full.clone();
                *bad.last_mut().expect("a payload") ^= 1;
                let before = bad.clone();
                assert_eq!(at.leave_partial(&mut bad), Err(WireError::BadChecksum));
                assert_eq!(bad, before, "left alone");
            }
        }
        for [src, dst] in [v4, v6] {
            let checked = build_ip(src, dst, PROTO_UDP, &udp_segment(53, 9, b"unchecked"));
            let at = PartialChecksum::of(&checked).expect("UDP");
            let field = usize::from(at.start + at.offset);
            // UDP without a checksum has nothing to check, and completes to a real one.
            let mut partial = checked.clone();
            partial[field..field + 2].fill(0);
            assert_eq!(at.leave_partial(&mut partial), Ok(()));
            assert!(at.complete(&mut partial));
            assert_eq!(partial, checked, "{src}");
            // Link padding after the packet is outside the sum.
            let mut padded = checked.clone();
            padded.extend_from_slice(&[0xAB; 3]);
            assert_eq!(at.leave_partial(&mut padded), Ok(()));
            assert_eq!(padded[..checked.len()], with_partial_checksum(&checked).0);
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to 0xddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(internet_checksum(&d), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (Wikipedia "IPv4 header checksum"): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verify(&h));
    }

    #[test]
    fn odd_length_pads_last_byte() {
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03])), 0x0402);
        assert_eq!(internet_checksum(&[]), 0xFFFF);
    }

    #[test]
    fn pseudo_headers_match_byte_sums() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 1, 254));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&a.octets());
        bytes.extend_from_slice(&b.octets());
        bytes.extend_from_slice(&[0, 17, 0x12, 0x34]);
        assert_eq!(fold(pseudo_header_v4(a, b, 17, 0x1234)), fold(sum(&bytes)));

        let (a, b): (Ipv6Addr, Ipv6Addr) =
            ("fe80::1".parse().unwrap(), "2001:db8::ff".parse().unwrap());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&a.octets());
        bytes.extend_from_slice(&b.octets());
        bytes.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            fold(pseudo_header_v6(&a, &b, 58, 0x0001_0203)),
            fold(sum(&bytes))
        );
    }

    #[test]
    fn update_edge_cases() {
        // Data 0x0000 0x0001 (checksum 0xfffe); the second word becomes 0xffff so the data
        // sums to negative zero: the case where careless formulas disagree with a full
        // recomputation (RFC 1624 §3).
        let before = [0x00, 0x00, 0x00, 0x01];
        let after = [0x00, 0x00, 0xff, 0xff];
        let hc = internet_checksum(&before);
        let inc = update(hc, &before[2..], &after[2..]);
        // Data summing to 0xffff: both 0x0000 representations verify; eqn. 3 gives 0x0000.
        assert_eq!(inc, 0x0000);
        assert_eq!(inc, internet_checksum(&after));
        // Changing a word to itself leaves the checksum alone, including 0x0000 (data
        // summing to negative zero).
        assert_eq!(update(0x0000, &[0xff, 0xff], &[0xff, 0xff]), 0x0000);
        assert_eq!(update(0x1234, &[0xab, 0xcd], &[0xab, 0xcd]), 0x1234);
    }

    /// Folding sixteen bits at a time until the sum fits, as RFC 1071 describes it.
    fn textbook_fold(mut s: u64) -> u16 {
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn folding_without_a_loop_gives_the_textbook_fold_at_the_edges() {
        for s in [
            0,
            1,
            0xFFFF,
            0x1_0000,
            0x1_0001,
            0x1_FFFE,
            0x2_FFFE,
            0xFFFF_FFFF,
            0x1_FFFF_FFFE,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ] {
            assert_eq!(fold(s), textbook_fold(s), "{s:#x}");
        }
    }

    proptest! {
        #[test]
        fn folding_without_a_loop_gives_the_textbook_fold(s in any::<u64>()) {
            prop_assert_eq!(fold(s), textbook_fold(s));
        }

        #[test]
        fn fast_sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(internet_checksum(&data), naive(&data));
        }

        #[test]
        fn split_sums_add_up(data in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..100) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(finish(add(sum(a), sum(b))), internet_checksum(&data));
        }

        #[test]
        fn update_matches_full_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..100),
            at in 0usize..50,
            new in proptest::array::uniform4(any::<u8>()),
        ) {
            prop_assume!(data.iter().any(|&b| b != 0));
            let at = (at * 2) % (data.len() & !1).max(2);
            let end = (at + 4).min(data.len());
            let n = end - at;
            let hc = internet_checksum(&data);
            let old: Vec<u8> = data[at..end].to_vec();
            data[at..end].copy_from_slice(&new[..n]);
            prop_assume!(data.iter().any(|&b| b != 0));
            let inc = update(hc, &old, &new[..n]);
            prop_assert_eq!(inc, internet_checksum(&data));
        }
    }
}
