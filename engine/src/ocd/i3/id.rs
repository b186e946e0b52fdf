//! i3 identifiers (Stoica et al., SIGCOMM 2002): 256 bits. A packet's id matches a trigger's
//! when their first 128 bits are equal; among those, the trigger sharing the longest prefix of
//! the remaining bits wins. A host's public id is the BLAKE2s hash of its overlay name (the
//! paper's implicit mapping, §4.3), so reaching `bob.i3` needs no resolution service.

use blake2::{Blake2s256, Digest};

/// Length of an id in bytes.
pub const ID_LEN: usize = 32;
/// Bytes that must match exactly.
pub const EXACT_LEN: usize = 16;

/// A 256-bit i3 identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// The public trigger id of an overlay name (`bob.i3`), case-insensitive.
    pub fn of_name(name: &str) -> Id {
        let mut h = Blake2s256::new();
        h.update(b"ocala i3 public trigger v1\0");
        h.update(name.to_ascii_lowercase().as_bytes());
        Id(h.finalize().into())
    }

    /// The first 128 bits, which a match must share.
    pub fn exact_part(&self) -> [u8; EXACT_LEN] {
        let mut p = [0u8; EXACT_LEN];
        p.copy_from_slice(&self.0[..EXACT_LEN]);
        p
    }

    /// How many leading bits of the last 128 this id shares with `other`.
    pub fn suffix_match(&self, other: &Id) -> u32 {
        let mut bits = 0;
        for (a, b) in self.0[EXACT_LEN..].iter().zip(&other.0[EXACT_LEN..]) {
            let x = a ^ b;
            if x != 0 {
                return bits + x.leading_zeros();
            }
            bits += 8;
        }
        bits
    }

    /// The top 64 bits, the id's point on the consistent-hashing ring.
    pub fn ring_point(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }

    /// An id from bytes read off the wire.
    pub fn from_slice(b: &[u8]) -> Option<Id> {
        Some(Id(b.get(..ID_LEN)?.try_into().ok()?))
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Id {
    /// The first 8 bytes in hex: enough to tell ids apart in logs and status.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hash_case_insensitively_to_distinct_ids() {
        assert_eq!(Id::of_name("Bob.I3"), Id::of_name("bob.i3"));
        assert_ne!(Id::of_name("bob.i3"), Id::of_name("alice.i3"));
    }

    #[test]
    fn suffix_match_counts_leading_equal_bits_after_the_exact_part() {
        let a = Id([0u8; 32]);
        let mut b = a;
        assert_eq!(a.suffix_match(&b), 128);
        b.0[16] = 0b0001_0000;
        assert_eq!(a.suffix_match(&b), 3);
        b.0[16] = 0;
        b.0[31] = 1;
        assert_eq!(a.suffix_match(&b), 127);
        // The exact part does not count here: matching decides on it separately.
        b.0[0] = 0xff;
        assert_eq!(a.suffix_match(&b), 127);
    }
}
