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
//! # On the wire
//!
//! The offer rides as the payload of the setup's handshake message (Noise XX's first, which
//! is plaintext but covered by the handshake hash), the choice at the front of the accept's
//! encrypted payload, before the certificate:
//!
//! ```text
//!      3  magic "OCP" (handshake parameters)
//!      1  length of what follows, n
//!      n  parameters: type u8, length u8, value; types this node does not know are skipped
//!         type 1: data ciphers, one id byte each (1 = ChaCha20-Poly1305, 2 = AES-256-GCM):
//!                 the ids offered in the setup, the one chosen in the accept
//! ```
//!
//! A node that offers only ChaCha20-Poly1305 sends no parameters at all, and a responder
//! answers with a choice only when offered one: handshakes stay byte for byte what nodes
//! without this negotiation send and expect, and such nodes keep talking to newer ones on
//! ChaCha20-Poly1305. Neither offer nor choice can be changed on the way: the offer is in
//! the handshake hash the accept is encrypted under, and the choice is encrypted.

use crate::config::CipherPolicy;
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

/// The ciphers a node offers, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    aes: bool,
}

impl Offer {
    /// What this node offers: ChaCha20-Poly1305 always, AES-256-GCM where the policy says so
    /// or, left to `auto`, where the CPU runs it in hardware.
    pub(crate) fn of(policy: CipherPolicy, hardware_aes: bool) -> Offer {
        let aes = match policy {
            CipherPolicy::Auto => hardware_aes,
            CipherPolicy::Aes256Gcm => true,
            CipherPolicy::ChaCha20Poly1305 => false,
        };
        Offer { aes }
    }

    /// The cipher a path between two offers uses: AES-256-GCM when both offer it.
    pub(crate) fn choose(self, theirs: Offer) -> DataCipher {
        match self.aes && theirs.aes {
            true => DataCipher::Aes256Gcm,
            false => DataCipher::ChaCha20Poly1305,
        }
    }

    fn has(self, c: DataCipher) -> bool {
        match c {
            DataCipher::ChaCha20Poly1305 => true,
            DataCipher::Aes256Gcm => self.aes,
        }
    }

    /// The setup's handshake payload: empty when only ChaCha20-Poly1305 is offered.
    pub(crate) fn payload(self) -> Vec<u8> {
        match self.aes {
            true => parameters(&[
                DataCipher::Aes256Gcm as u8,
                DataCipher::ChaCha20Poly1305 as u8,
            ]),
            false => Vec::new(),
        }
    }

    /// Reads a setup's handshake payload: `None` when it carries no offer (the peer offers
    /// only ChaCha20-Poly1305). Ids this node does not know are ignored.
    pub(crate) fn read(payload: &[u8]) -> Result<Option<Offer>, &'static str> {
        let (ids, _) = split(payload)?;
        Ok(ids.map(|ids| Offer {
            aes: ids.contains(&(DataCipher::Aes256Gcm as u8)),
        }))
    }
}

/// Puts the responder's choice in front of the accept's payload (its certificate).
pub(crate) fn with_choice(choice: DataCipher, certificate: &[u8]) -> Vec<u8> {
    let mut out = parameters(&[choice as u8]);
    out.extend_from_slice(certificate);
    out
}

/// Reads an accept's payload as the initiator that offered `ours`: the cipher the path uses
/// and the rest (the responder's certificate). No choice means ChaCha20-Poly1305; a choice
/// that names more than one cipher, or one this node did not offer, is refused.
pub(crate) fn read_choice(
    ours: Offer,
    payload: &[u8],
) -> Result<(DataCipher, &[u8]), &'static str> {
    let (ids, rest) = split(payload)?;
    let Some(ids) = ids else {
        return Ok((DataCipher::ChaCha20Poly1305, rest));
    };
    match ids {
        [id] => match DataCipher::from_id(*id).filter(|c| ours.has(*c)) {
            Some(c) => Ok((c, rest)),
            None => Err("the peer chose a data cipher this node did not offer"),
        },
        _ => Err("the peer's accept names more than one data cipher"),
    }
}

const MAGIC: [u8; 3] = *b"OCP";
/// Parameter type: data ciphers.
const CIPHERS: u8 = 1;

fn parameters(ids: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    // Both lengths are of a handful of ids, far below 255.
    out.push(2 + ids.len() as u8);
    out.push(CIPHERS);
    out.push(ids.len() as u8);
    out.extend_from_slice(ids);
    out
}

/// Splits a payload into the cipher ids of its parameters (if it starts with them) and the
/// rest.
fn split(payload: &[u8]) -> Result<(Option<&[u8]>, &[u8]), &'static str> {
    const MALFORMED: &str = "malformed handshake parameters";
    let Some(after) = payload.strip_prefix(&MAGIC) else {
        return Ok((None, payload));
    };
    let (&n, after) = after.split_first().ok_or(MALFORMED)?;
    let (mut params, rest) = after.split_at_checked(usize::from(n)).ok_or(MALFORMED)?;
    let mut ids = None;
    while let Some((&kind, after)) = params.split_first() {
        let (&len, after) = after.split_first().ok_or(MALFORMED)?;
        let (value, after) = after.split_at_checked(usize::from(len)).ok_or(MALFORMED)?;
        if kind == CIPHERS {
            ids = Some(value);
        }
        params = after;
    }
    Ok((
        Some(ids.ok_or("handshake parameters without data ciphers")?),
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Offer = Offer { aes: true };
    const CHACHA: Offer = Offer { aes: false };

    #[test]
    fn aes_only_when_both_ends_offer_it_and_auto_follows_the_hardware() {
        use CipherPolicy::*;
        assert_eq!(Offer::of(Auto, true), BOTH);
        assert_eq!(Offer::of(Auto, false), CHACHA);
        assert_eq!(Offer::of(Aes256Gcm, false), BOTH);
        assert_eq!(Offer::of(ChaCha20Poly1305, true), CHACHA);
        assert_eq!(BOTH.choose(BOTH), DataCipher::Aes256Gcm);
        for (a, b) in [(BOTH, CHACHA), (CHACHA, BOTH), (CHACHA, CHACHA)] {
            assert_eq!(a.choose(b), DataCipher::ChaCha20Poly1305);
        }
    }

    #[test]
    fn offer_and_choice_round_trip_and_chacha_only_sends_nothing() {
        assert!(
            CHACHA.payload().is_empty(),
            "what nodes without negotiation send"
        );
        assert_eq!(Offer::read(&[]), Ok(None));
        assert_eq!(Offer::read(&BOTH.payload()), Ok(Some(BOTH)));
        assert_eq!(BOTH.payload(), b"OCP\x04\x01\x02\x02\x01");
        let cert = b"OCC certificate bytes";
        let accept = with_choice(DataCipher::Aes256Gcm, cert);
        assert_eq!(
            read_choice(BOTH, &accept),
            Ok((DataCipher::Aes256Gcm, &cert[..]))
        );
        // An accept without a choice (a responder without negotiation) is ChaCha20-Poly1305.
        assert_eq!(
            read_choice(BOTH, cert),
            Ok((DataCipher::ChaCha20Poly1305, &cert[..]))
        );
    }

    #[test]
    fn unknown_parameters_and_ids_are_skipped() {
        // A future parameter (type 9) before the ciphers, and a future cipher id 7.
        let offer = b"OCP\x08\x09\x01\xff\x01\x03\x07\x02\x01";
        assert_eq!(Offer::read(offer), Ok(Some(BOTH)));
        let offer = b"OCP\x03\x01\x01\x07";
        assert_eq!(Offer::read(offer), Ok(Some(CHACHA)));
    }

    #[test]
    fn malformed_or_unoffered_choices_are_refused() {
        for bad in [
            &b"OCP"[..],
            b"OCP\x05\x01\x01\x02",
            b"OCP\x02\x01\x05",
            b"OCP\x02\x09\x00",
        ] {
            assert!(Offer::read(bad).is_err(), "{bad:?}");
            assert!(read_choice(BOTH, bad).is_err(), "{bad:?}");
        }
        let aes = with_choice(DataCipher::Aes256Gcm, b"cert");
        assert!(read_choice(CHACHA, &aes).is_err(), "not offered");
        assert!(
            read_choice(BOTH, b"OCP\x03\x01\x01\x07cert").is_err(),
            "unknown id"
        );
        assert!(
            read_choice(BOTH, b"OCP\x04\x01\x02\x02\x01cert").is_err(),
            "two ids"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_certificate_round_trips_behind_a_choice_and_any_bytes_read_safely(
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            aes in proptest::prelude::any::<bool>(),
        ) {
            let c = if aes { DataCipher::Aes256Gcm } else { DataCipher::ChaCha20Poly1305 };
            let accept = with_choice(c, &rest);
            proptest::prop_assert_eq!(read_choice(BOTH, &accept), Ok((c, &rest[..])));
            // Whatever a peer sends is an answer or an error, never a panic.
            let _ = (Offer::read(&rest), read_choice(CHACHA, &rest));
        }
    }
}
