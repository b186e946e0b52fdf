//! The cipher an encrypted path seals its data with, and how the two ends agree on it inside
//! the Noise handshake without an extra message.
//!
//! ChaCha20-Poly1305 (Noise's and WireGuard's cipher) is fast in software and every node
//! speaks it. AES-256-GCM is much faster where the CPU runs AES and carry-less multiplication
//! in hardware — 466 against 1260 ns per 1400-byte packet with `ring` on this project's
//! 2-core test machine, which is most of an encrypted path's CPU at full speed. So a node
//! whose CPU has both (the driver says so: [`crate::config::SecurityConfig::hardware_aes`])
//! offers AES-256-GCM too, and a path uses it when both ends offer it.
//!
//! The offer and the choice ride inside the Noise handshake ([`super::parameters`]).

use ring::aead::{Algorithm, AES_256_GCM, CHACHA20_POLY1305};

/// The data ciphers, by their id on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DataCipher {
    ChaCha20Poly1305 = 1,
    Aes256Gcm = 2,
}

impl DataCipher {
    pub(crate) fn from_id(id: u8) -> Option<DataCipher> {
        match id {
            1 => Some(DataCipher::ChaCha20Poly1305),
            2 => Some(DataCipher::Aes256Gcm),
            _ => None,
        }
    }

    /// The name `ocala status` shows and the config file uses.
    pub fn name(self) -> &'static str {
        match self {
            DataCipher::ChaCha20Poly1305 => "chacha20-poly1305",
            DataCipher::Aes256Gcm => "aes-256-gcm",
        }
    }

    pub(crate) fn algorithm(self) -> &'static Algorithm {
        match self {
            DataCipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            DataCipher::Aes256Gcm => &AES_256_GCM,
        }
    }

    /// How much one key may seal, counted as 16-byte blocks plus one per packet, before the
    /// path must get fresh keys. AES-GCM's confidentiality bound grows with the square of that
    /// count ((blocks + packets)² / 2¹²⁹, draft-irtf-cfrg-aead-limits §5.1); at 2³⁵ the
    /// advantage stays below 2⁻⁵⁹, which is 512 GiB, more than 14 minutes at 5 Gbit/s, while
    /// the initiator's rekey gives fresh keys every `security.rekey_after_secs` (120 s).
    /// ChaCha20-Poly1305 has no such bound short of its nonce limit.
    pub(crate) fn block_limit(self) -> u64 {
        match self {
            DataCipher::ChaCha20Poly1305 => u64::MAX,
            DataCipher::Aes256Gcm => 1 << 35,
        }
    }
}

/// A data key: the 32 bytes from the handshake and the cipher they are for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DataKey {
    pub cipher: DataCipher,
    pub bytes: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        write!(f, "DataKey({})", self.cipher.name())
    }
}
