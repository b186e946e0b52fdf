//! Expanded AEAD keys for the paths in use. A path keeps its data keys as 32 bytes each
//! (and the cipher's id); `ring` needs them expanded into a `LessSafeKey`, sized for AES-GCM's key
//! schedule (544 bytes). Kept per path that would be most of an idle secure path's memory;
//! made per packet it measured 40 ns more per send. So the engine keeps a few expanded keys,
//! one slot per path index modulo the cache size, each tagged with the key it holds: a busy
//! path hits its slot every packet, idle paths cost 32 bytes per key.

use super::cipher::DataKey;
use super::noise::aead_key;
use ring::aead::LessSafeKey;

/// Slots; paths whose indexes share one evict each other only while both are busy.
const SLOTS: usize = 32;

struct Slot {
    raw: DataKey,
    key: LessSafeKey,
}

/// The cache. Sealing and opening keys of one path go to different slots.
pub(crate) struct KeyCache {
    slots: Vec<Option<Slot>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }
}

/// Which of a path's two keys.
#[derive(Clone, Copy)]
pub(crate) enum Use {
    Seal,
    Open,
}

impl KeyCache {
    /// The expanded form of `raw`, the `what` key of the path at index `path`.
    pub(crate) fn get(&mut self, path: usize, what: Use, raw: &DataKey) -> Option<&LessSafeKey> {
        let i = (path.wrapping_mul(2) + what as usize) % SLOTS;
        let slot = self.slots.get_mut(i)?;
        // The tag is the key itself (bytes and cipher), so a rekeyed or reused path index
        // never meets a stale expansion.
        if slot.as_ref().is_none_or(|s| s.raw != *raw) {
            *slot = Some(Slot {
                raw: *raw,
                key: aead_key(raw)?,
            });
        }
        slot.as_ref().map(|s| &s.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::cipher::DataCipher;
    use ring::aead::{Aad, Nonce};

    fn seal_with(key: &LessSafeKey) -> Vec<u8> {
        let mut b = b"probe".to_vec();
        let nonce = Nonce::assume_unique_for_key([0; 12]);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::empty(), &mut b)
            .unwrap();
        b.extend_from_slice(tag.as_ref());
        b
    }

    #[test]
    fn a_slot_always_holds_the_key_asked_for() {
        let mut c = KeyCache::default();
        let key = |cipher, byte| DataKey {
            cipher,
            bytes: [byte; 32],
        };
        let k1 = key(DataCipher::ChaCha20Poly1305, 1);
        let k2 = key(DataCipher::ChaCha20Poly1305, 2);
        // The same bytes for the other cipher are another key.
        let k3 = key(DataCipher::Aes256Gcm, 1);
        let direct = |raw: &DataKey| seal_with(&aead_key(raw).unwrap());
        assert_ne!(direct(&k1), direct(&k3));
        // Same slot, alternating keys (a rekey, or two paths SLOTS apart): never stale.
        for raw in [&k1, &k2, &k1, &k3, &k1] {
            assert_eq!(seal_with(c.get(3, Use::Seal, raw).unwrap()), direct(raw));
            assert_eq!(
                seal_with(c.get(3 + SLOTS, Use::Seal, raw).unwrap()),
                direct(raw)
            );
        }
        assert_eq!(seal_with(c.get(3, Use::Open, &k2).unwrap()), direct(&k2));
        assert_eq!(seal_with(c.get(3, Use::Seal, &k1).unwrap()), direct(&k1));
    }
}
