//! Hash maps whose hash is keyed from the node's seed. Where peers choose the keys (i3 trigger
//! ids), a secret key keeps them from piling entries into one bucket (SipHash-1-3, as std's own
//! maps use); and unlike std's `RandomState` the key comes from the seed, not from the OS, so the
//! engine stays sans-IO. Maps built on it are for lookups: nothing iterates them into an output.

use siphasher::sip::SipHasher13;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// The hasher factory of a [`KeyedMap`].
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    k0: u64,
    k1: u64,
}

impl Keyed {
    /// A key for one table, derived from a seed and the table's purpose so tables differ.
    pub fn derive(seed: &[u8; 32], purpose: &str) -> Keyed {
        use blake2::digest::{FixedOutput, KeyInit, Update};
        let mut mac = blake2::Blake2sMac256::new(seed.into());
        mac.update(b"ocala hash key\0");
        mac.update(purpose.as_bytes());
        let out: [u8; 32] = mac.finalize_fixed().into();
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&out[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Keyed {
            k0: word(0),
            k1: word(8),
        }
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A `HashMap` hashed with a [`Keyed`] key.
pub type KeyedMap<K, V> = HashMap<K, V, Keyed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed_and_the_purpose() {
        let h = |k: Keyed| k.hash_one(42u32);
        let a = Keyed::derive(&[1; 32], "triggers");
        assert_eq!(h(a), h(Keyed::derive(&[1; 32], "triggers")), "reproducible");
        assert_ne!(h(a), h(Keyed::derive(&[2; 32], "triggers")));
        assert_ne!(h(a), h(Keyed::derive(&[1; 32], "handles")));
    }
}
