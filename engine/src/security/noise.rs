//! The Noise handshake that rides inside path setup (Noise_XX_25519_ChaChaPoly_BLAKE2s).
//!
//! Setup carries XX's first message, Accept the second (with the responder's certificate as
//! its encrypted payload), and Confirm the third (with the initiator's certificate). The
//! initiator knows who answered once Accept arrives, so a secure path is up after the same
//! single round trip as a plain one. The path's options and id are the Noise prologue: a
//! gateway that rewrites either breaks the handshake instead of downgrading it.
//!
//! All randomness (ephemeral keys) comes from the engine's seed through [`SeededResolver`],
//! so handshakes are byte-identical run to run.

use super::cipher::{DataCipher, DataKey};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use ring::aead::{LessSafeKey, Nonce, UnboundKey};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::HandshakeState;

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Bytes Noise adds to a transport message (the AEAD tag).
pub const TAG_LEN: usize = 16;
/// Largest handshake message (the second, with a certificate inside).
pub const MAX_HANDSHAKE: usize = 1024;

/// snow's primitives with randomness from a seed instead of the OS.
pub struct SeededResolver {
    seed: [u8; 32],
}

impl SeededResolver {
    pub fn new(seed: [u8; 32]) -> SeededResolver {
        SeededResolver { seed }
    }
}

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// The X25519 public key of a static private key.
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(private);
        out.copy_from_slice(dh.pubkey());
    }
    out
}

/// The prologue both ends mix in: what a gateway must not change.
pub fn prologue(options: u8, path_id: u64) -> [u8; 17] {
    let mut p = [0u8; 17];
    p[..8].copy_from_slice(b"ocala v1");
    p[8] = options;
    p[9..].copy_from_slice(&path_id.to_be_bytes());
    p
}

/// Starts a handshake as initiator or responder.
pub fn start(
    initiator: bool,
    static_private: &[u8; 32],
    options: u8,
    path_id: u64,
    seed: [u8; 32],
) -> Result<HandshakeState, snow::Error> {
    let params = PATTERN.parse()?;
    let pro = prologue(options, path_id);
    let b = snow::Builder::with_resolver(params, Box::new(SeededResolver::new(seed)))
        .local_private_key(static_private)?
        .prologue(&pro)?;
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
}

/// The keys of an established path, from the handshake's split: data keys for `encrypt`, for
/// the cipher the handshake agreed on (run by `ring`, whose assembly is what keeps the data
/// path as fast as WireGuard's — snow's portable cipher measured 3× slower), and MAC keys
/// for `auth`.
///
/// The AEAD keys are kept as their 32 bytes; the engine expands them into `ring` keys in a
/// small cache of the paths in use (`keycache`), since an expanded key is 544 bytes.
pub struct Keys {
    /// Seals packets this end sends, and opens packets it receives.
    pub seal: DataKey,
    pub open: DataKey,
    /// Key for MACs on packets this end sends, and on packets it receives.
    pub mac_send: [u8; 32],
    pub mac_recv: [u8; 32],
}

/// The AEAD nonce for a packet counter, laid out as Noise's ChaChaPoly does (32 zero bits,
/// then the counter little-endian), so packets stay what Noise's transport would produce.
pub fn aead_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The expanded `ring` key for a data key.
pub fn aead_key(k: &DataKey) -> Option<LessSafeKey> {
    UnboundKey::new(k.cipher.algorithm(), &k.bytes)
        .ok()
        .map(LessSafeKey::new)
}

/// Finishes a handshake into keys for `cipher`.
pub fn finish(mut hs: HandshakeState, cipher: DataCipher) -> Result<Keys, snow::Error> {
    if !hs.is_handshake_finished() {
        return Err(snow::Error::State(
            snow::error::StateProblem::HandshakeNotFinished,
        ));
    }
    let (k1, k2) = hs.dangerously_get_raw_split();
    let initiator = hs.is_initiator();
    // Derived, not reused: the AEAD keys stay for encryption only.
    let derive = |k: &[u8; 32]| -> [u8; 32] {
        use blake2::digest::{FixedOutput, KeyInit, Update};
        let mut mac = blake2::Blake2sMac256::new(k.into());
        mac.update(b"ocala auth key");
        mac.finalize_fixed().into()
    };
    let (seal, open) = if initiator { (&k1, &k2) } else { (&k2, &k1) };
    let data = |bytes: &[u8; 32]| DataKey {
        cipher,
        bytes: *bytes,
    };
    Ok(Keys {
        seal: data(seal),
        open: data(open),
        mac_send: derive(seal),
        mac_recv: derive(open),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xx_completes_and_keys_match_and_seeds_make_it_repeatable() {
        let run = || {
            let (a, b) = ([1u8; 32], [2u8; 32]);
            let mut i = start(true, &a, 1, 42, [3; 32]).unwrap();
            let mut r = start(false, &b, 1, 42, [4; 32]).unwrap();
            let mut m1 = [0u8; 1024];
            let mut m2 = [0u8; 1024];
            let mut m3 = [0u8; 1024];
            let mut p = [0u8; 1024];
            let n1 = i.write_message(&[], &mut m1).unwrap();
            r.read_message(&m1[..n1], &mut p).unwrap();
            let n2 = r.write_message(b"cert-b", &mut m2).unwrap();
            let got = i.read_message(&m2[..n2], &mut p).unwrap();
            assert_eq!(&p[..got], b"cert-b");
            assert_eq!(i.get_remote_static().unwrap(), &public_key(&b));
            let n3 = i.write_message(b"cert-a", &mut m3).unwrap();
            let got = r.read_message(&m3[..n3], &mut p).unwrap();
            assert_eq!(&p[..got], b"cert-a");
            let aes = DataCipher::Aes256Gcm;
            let (ki, kr) = (finish(i, aes).unwrap(), finish(r, aes).unwrap());
            assert_eq!(ki.mac_send, kr.mac_recv);
            let mut buf = b"hello".to_vec();
            let tag = aead_key(&ki.seal)
                .unwrap()
                .seal_in_place_separate_tag(aead_nonce(7), ring::aead::Aad::empty(), &mut buf)
                .unwrap();
            buf.extend_from_slice(tag.as_ref());
            let plain = aead_key(&kr.open)
                .unwrap()
                .open_in_place(aead_nonce(7), ring::aead::Aad::empty(), &mut buf)
                .unwrap();
            assert_eq!(plain, b"hello");
            [m1[..n1].to_vec(), m2[..n2].to_vec(), m3[..n3].to_vec()]
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn a_changed_prologue_breaks_the_handshake() {
        let mut i = start(true, &[1; 32], 1, 42, [3; 32]).unwrap();
        let mut r = start(false, &[2; 32], 4, 42, [4; 32]).unwrap(); // options rewritten to plain
        let mut m = [0u8; 1024];
        let mut p = [0u8; 1024];
        let n1 = i.write_message(&[], &mut m).unwrap();
        r.read_message(&m[..n1], &mut p).unwrap();
        let n2 = r.write_message(b"x", &mut m).unwrap();
        assert!(i.read_message(&m[..n2], &mut p).is_err());
    }
}
