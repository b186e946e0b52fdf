//! Key grants: how a middlebox that an end point certified comes to read a secure path
//! (paper §3.3.1, §3.4).
//!
//! An end point certifies a middlebox with a signed [`Delegation`](super::Delegation) in the
//! chain it presents in the handshake instead of a bare certificate. The far end checks the
//! chain by the end point's name, so both ends know, before any data flows, which
//! middleboxes will read the path, and either may refuse (`security.accept_readers`).
//!
//! The paper has the middlebox terminate a handshake on each side and re-encrypt. We keep
//! the one end-to-end handshake and hand the middlebox the path's keys instead: the
//! initiator, which by then has checked both ends' chains, seals the two directions' keys
//! to each certified middlebox's static key (Noise `N`: only that middlebox can open it) and
//! sends the grant beside its confirm, which passes every middlebox on the path — as a
//! gateway hop (sender-imposed) or as the id stack in front of a guarded receiver
//! (receiver-imposed), where only traffic toward the receiver passes it. So no extra round
//! trip, no second handshake at the middlebox, nothing changes at the ends' data path, and
//! an uncertified middlebox never holds a key: it sees ciphertext.
//!
//! A granted middlebox opens what it sees to judge it and passes the original ciphertext on
//! unchanged; it holds the keys as it would hold its own segment's in the paper's scheme, so
//! the trust the end point gives it is the same.

use super::cipher::{DataCipher, DataKey};
use super::noise::SeededResolver;

/// The one-way Noise pattern a grant is sealed with: an ephemeral key and the recipient's
/// static key, nothing from the sender.
pub const GRANT_PATTERN: &str = "Noise_N_25519_ChaChaPoly_BLAKE2s";
/// What a grant carries: two labels and two 32-byte keys, then the keys' cipher id unless it
/// is ChaCha20-Poly1305 (so such grants stay what middleboxes without AES-GCM read).
pub const GRANT_PLAIN_LEN: usize = 4 + 4 + 32 + 32;
/// A sealed grant: ephemeral key, grant, tag (one byte more with a cipher id).
pub const GRANT_LEN: usize = 32 + GRANT_PLAIN_LEN + 16;

/// A path's keys as a middlebox needs them to read both directions.
#[derive(Clone, PartialEq, Eq)]
pub struct ReadKeys {
    /// The label that data toward the responder carries as seen from the initiator (the
    /// responder's label, or the first gateway's).
    pub responder_label: u32,
    /// The initiator's own label: data toward the initiator carries it on the last segment.
    pub initiator_label: u32,
    /// Opens data the initiator sends.
    pub to_responder: DataKey,
    /// Opens data the responder sends (always of the same cipher).
    pub to_initiator: DataKey,
}

impl std::fmt::Debug for ReadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        write!(
            f,
            "ReadKeys(labels {:#x} / {:#x})",
            self.responder_label, self.initiator_label
        )
    }
}

/// What both sides mix into the grant: the purpose and the path, so a grant cannot be
/// replayed onto another path.
fn prologue(path_id: u64) -> [u8; 22] {
    let mut p = [0u8; 22];
    p[..14].copy_from_slice(b"ocala grant v1");
    p[14..].copy_from_slice(&path_id.to_be_bytes());
    p
}

/// Seals `keys` for the middlebox whose static public key is `reader`.
pub fn seal(
    reader: &[u8; 32],
    path_id: u64,
    keys: &ReadKeys,
    seed: [u8; 32],
) -> Result<Vec<u8>, snow::Error> {
    let params = GRANT_PATTERN.parse()?;
    let mut hs = snow::Builder::with_resolver(params, Box::new(SeededResolver::new(seed)))
        .remote_public_key(reader)?
        .prologue(&prologue(path_id))?
        .build_initiator()?;
    let mut plain = Vec::with_capacity(GRANT_PLAIN_LEN + 1);
    plain.extend_from_slice(&keys.responder_label.to_be_bytes());
    plain.extend_from_slice(&keys.initiator_label.to_be_bytes());
    plain.extend_from_slice(&keys.to_responder.bytes);
    plain.extend_from_slice(&keys.to_initiator.bytes);
    let cipher = keys.to_responder.cipher;
    if cipher != DataCipher::ChaCha20Poly1305 {
        plain.push(cipher as u8);
    }
    let mut out = vec![0u8; GRANT_LEN + 1];
    let n = hs.write_message(&plain, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Opens a grant with this node's static private key; `None` when it is not sealed to this
/// node, was altered, or belongs to another path.
pub fn open(static_private: &[u8; 32], path_id: u64, sealed: &[u8]) -> Option<ReadKeys> {
    if sealed.len() != GRANT_LEN && sealed.len() != GRANT_LEN + 1 {
        return None;
    }
    let params = GRANT_PATTERN.parse().ok()?;
    // Opening draws no randomness; the resolver's seed is never used.
    let mut hs = snow::Builder::with_resolver(params, Box::new(SeededResolver::new([0; 32])))
        .local_private_key(static_private)
        .ok()?
        .prologue(&prologue(path_id))
        .ok()?
        .build_responder()
        .ok()?;
    let mut plain = [0u8; GRANT_LEN + 1];
    let n = hs.read_message(sealed, &mut plain).ok()?;
    let cipher = match plain.get(GRANT_PLAIN_LEN..n)? {
        [] => DataCipher::ChaCha20Poly1305,
        [id] => DataCipher::from_id(*id).filter(|c| *c != DataCipher::ChaCha20Poly1305)?,
        _ => return None,
    };
    let label = |i: usize| u32::from_be_bytes([plain[i], plain[i + 1], plain[i + 2], plain[i + 3]]);
    let key = |i: usize| -> Option<DataKey> {
        Some(DataKey {
            cipher,
            bytes: plain.get(i..i + 32)?.try_into().ok()?,
        })
    };
    Some(ReadKeys {
        responder_label: label(0),
        initiator_label: label(4),
        to_responder: key(8)?,
        to_initiator: key(40)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::noise::public_key;

    fn keys_for(cipher: DataCipher) -> ReadKeys {
        let key = |byte| DataKey {
            cipher,
            bytes: [byte; 32],
        };
        ReadKeys {
            responder_label: 0x0102_0304,
            initiator_label: 0x0a0b_0c0d,
            to_responder: key(0x11),
            to_initiator: key(0x22),
        }
    }

    fn keys() -> ReadKeys {
        keys_for(DataCipher::ChaCha20Poly1305)
    }

    #[test]
    fn a_grant_carries_its_cipher_and_chacha_grants_keep_their_length() {
        let fw = [5u8; 32];
        let aes = keys_for(DataCipher::Aes256Gcm);
        let sealed = seal(&public_key(&fw), 42, &aes, [9; 32]).unwrap();
        assert_eq!(sealed.len(), GRANT_LEN + 1);
        assert_eq!(open(&fw, 42, &sealed), Some(aes));
        let sealed = seal(&public_key(&fw), 42, &keys(), [9; 32]).unwrap();
        assert_eq!(sealed.len(), GRANT_LEN);
    }

    #[test]
    fn only_the_middlebox_it_is_sealed_to_opens_it_and_only_for_its_path() {
        let (fw, other) = ([5u8; 32], [6u8; 32]);
        let sealed = seal(&public_key(&fw), 42, &keys(), [9; 32]).unwrap();
        assert_eq!(sealed.len(), GRANT_LEN);
        assert_eq!(open(&fw, 42, &sealed), Some(keys()));
        assert_eq!(open(&other, 42, &sealed), None, "another node's key");
        assert_eq!(open(&fw, 43, &sealed), None, "moved to another path");
        for i in [0, 40, GRANT_LEN - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(open(&fw, 42, &bad), None, "byte {i} altered");
        }
        assert_eq!(open(&fw, 42, &sealed[..GRANT_LEN - 1]), None);
        // The seed makes it repeatable (snapshots), and the keys never show in the clear.
        assert_eq!(
            seal(&public_key(&fw), 42, &keys(), [9; 32]).unwrap(),
            sealed
        );
        assert!(!sealed.windows(8).any(|w| w == [0x11; 8] || w == [0x22; 8]));
    }
}
