//! Handshake parameters: what the two ends of a secure path offer each other inside the
//! Noise handshake, without an extra message — the data cipher ([`super::cipher`]) and
//! whether a node takes packets whose transport checksum was left partial.
//!
//! # Partial checksums
//!
//! A TUN with offloads hands ocalad TCP segments (and UDP packets) whose checksum the kernel
//! left for the device to complete: the field holds the pseudo-header's sum only. A sender
//! completes it by summing every payload byte, about 5 % of a sending daemon at full speed.
//! A secure path needs no checksum to protect its packets — the tag or MAC does, and more —
//! so a node whose TUN takes partial checksums says so, and its peers send such packets as
//! they are, flagged in the data message ([`super::session`]); the receiving kernel, told
//! the checksum is partial, trusts it for local delivery and completes it only when the
//! packet is forwarded. Peers that do not say so, and plain paths, get complete checksums.
//!
//! # On the wire
//!
//! The offer rides as the payload of the setup's handshake message (Noise XX's first, which
//! is plaintext but covered by the handshake hash), the answer at the front of the accept's
//! encrypted payload, before the certificate:
//!
//! ```text
//!      3  magic "OCP" (handshake parameters)
//!      1  length of what follows, n
//!      n  parameters: type u8, length u8, value; types this node does not know are skipped
//!         type 1: data ciphers, one id byte each (1 = ChaCha20-Poly1305, 2 = AES-256-GCM):
//!                 the ids offered in the setup, the one chosen in the accept (required)
//!         type 2: empty: this node takes partial checksums
//! ```
//!
//! # Plain paths
//!
//! A plain path has no tag to protect its packets, and no nonce to flag one; what it has is
//! each hop's UDP checksum, which covers the whole data message. So plain paths settle the
//! question once per path instead of per packet: an initiator that takes partial checksums
//! sets [`PARTIAL_BIT`] in its setup's options, and a responder that understands answers
//! with parameters in the accept's handshake field, otherwise empty on a plain path (type 2
//! present when it takes them too; [`plain_answer`]). From then on every TCP and UDP packet
//! ([`crate::PartialChecksum::of`]) goes towards an end that takes them in *partial form*,
//! the pseudo-header's sum in its field: left so by the sender's kernel, or checked and put
//! so by the sending engine ([`crate::PartialChecksum::leave_partial`]), so that a corrupt
//! packet is dropped where it enters, as its receiver would have. Gateways relay the
//! option, the answer and the packets unchanged, so ones that predate this do too; a
//! responder that predates it ignores the bit and answers nothing, and both directions stay
//! complete.
//!
//! A node that offers only ChaCha20-Poly1305 and takes no partial checksums sends no
//! parameters at all, and a responder answers only when offered parameters: handshakes stay
//! byte for byte what nodes without this negotiation send and expect, and such nodes keep
//! talking to newer ones on ChaCha20-Poly1305 with complete checksums. Neither offer nor
//! answer can be changed on the way: the offer is in the handshake hash the accept is
//! encrypted under, and the answer is encrypted.

use super::cipher::DataCipher;
use crate::config::CipherPolicy;

/// What a node offers: the data ciphers, as a set, and whether it takes partial checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    pub(crate) aes: bool,
    pub(crate) partial: bool,
}

/// The responder's answer to an offer: the cipher the path uses, and whether the responder
/// takes partial checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) cipher: DataCipher,
    pub(crate) partial: bool,
}

impl Offer {
    /// What this node offers: ChaCha20-Poly1305 always, AES-256-GCM where the policy says so
    /// or, left to `auto`, where the CPU runs it in hardware; partial checksums where its
    /// driver's TUN takes them.
    pub(crate) fn of(policy: CipherPolicy, hardware_aes: bool, partial: bool) -> Offer {
        let aes = match policy {
            CipherPolicy::Auto => hardware_aes,
            CipherPolicy::Aes256Gcm => true,
            CipherPolicy::ChaCha20Poly1305 => false,
        };
        Offer { aes, partial }
    }

    /// The responder's answer to `theirs`: AES-256-GCM when both offer it.
    pub(crate) fn answer(self, theirs: Offer) -> Answer {
        let cipher = match self.aes && theirs.aes {
            true => DataCipher::Aes256Gcm,
            false => DataCipher::ChaCha20Poly1305,
        };
        Answer {
            cipher,
            partial: self.partial,
        }
    }

    fn has(self, c: DataCipher) -> bool {
        match c {
            DataCipher::ChaCha20Poly1305 => true,
            DataCipher::Aes256Gcm => self.aes,
        }
    }

    /// The setup's handshake payload: empty when only ChaCha20-Poly1305 is offered and no
    /// partial checksums are taken.
    pub(crate) fn payload(self) -> Vec<u8> {
        let ids: &[u8] = match self.aes {
            true => &[
                DataCipher::Aes256Gcm as u8,
                DataCipher::ChaCha20Poly1305 as u8,
            ],
            false => &[DataCipher::ChaCha20Poly1305 as u8],
        };
        match self.aes || self.partial {
            true => parameters(Some(ids), self.partial),
            false => Vec::new(),
        }
    }

    /// Reads a setup's handshake payload: `None` when it carries no parameters (the peer
    /// offers only ChaCha20-Poly1305 and takes no partial checksums). Ids this node does not
    /// know are ignored.
    pub(crate) fn read(payload: &[u8]) -> Result<Option<Offer>, &'static str> {
        let (params, _) = split(payload)?;
        let Some(p) = params else { return Ok(None) };
        Ok(Some(Offer {
            aes: p.ciphers()?.contains(&(DataCipher::Aes256Gcm as u8)),
            partial: p.partial,
        }))
    }
}

impl Answer {
    /// The accept's payload: the answer in front of the certificate.
    pub(crate) fn with_certificate(self, certificate: &[u8]) -> Vec<u8> {
        let mut out = parameters(Some(&[self.cipher as u8]), self.partial);
        out.extend_from_slice(certificate);
        out
    }

    /// Reads an accept's payload as the initiator that offered `ours`: the answer and the
    /// rest (the responder's certificate). No answer means ChaCha20-Poly1305 and complete
    /// checksums; one that names more than one cipher, or one this node did not offer, is
    /// refused.
    pub(crate) fn read(ours: Offer, payload: &[u8]) -> Result<(Answer, &[u8]), &'static str> {
        let (params, rest) = split(payload)?;
        let Some(params) = params else {
            let plain = Answer {
                cipher: DataCipher::ChaCha20Poly1305,
                partial: false,
            };
            return Ok((plain, rest));
        };
        match params.ciphers()? {
            [id] => match DataCipher::from_id(*id).filter(|c| ours.has(*c)) {
                Some(cipher) => Ok((
                    Answer {
                        cipher,
                        partial: params.partial,
                    },
                    rest,
                )),
                None => Err("the peer chose a data cipher this node did not offer"),
            },
            _ => Err("the peer's accept names more than one data cipher"),
        }
    }
}

/// Setup option bit of a plain path: the initiator takes partial checksums, and its packets
/// come in the partial form if the responder answers.
pub(crate) const PARTIAL_BIT: u8 = 0x08;

const MAGIC: [u8; 3] = *b"OCP";
/// Parameter type: data ciphers.
const CIPHERS: u8 = 1;
/// Parameter type: takes partial checksums.
const PARTIAL_CHECKSUMS: u8 = 2;

/// A plain path's answer in the accept's handshake field, to an initiator whose setup
/// carried [`PARTIAL_BIT`]: the responder sends the partial form, and says whether it takes
/// it.
pub(crate) fn plain_answer(partial: bool) -> Vec<u8> {
    parameters(None, partial)
}

/// Reads a plain path's answer: whether the responder takes the partial form. Anything but
/// parameters without ciphers is refused.
pub(crate) fn read_plain_answer(payload: &[u8]) -> Result<bool, &'static str> {
    match split(payload)? {
        (Some(p), []) if p.ids.is_none() => Ok(p.partial),
        _ => Err("not a plain path's answer"),
    }
}

fn parameters(ids: Option<&[u8]>, partial: bool) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    // Both lengths are of a handful of ids, far below 255.
    let ciphers = ids.map_or(0, |ids| 2 + ids.len() as u8);
    out.push(ciphers + if partial { 2 } else { 0 });
    if let Some(ids) = ids {
        out.push(CIPHERS);
        out.push(ids.len() as u8);
        out.extend_from_slice(ids);
    }
    if partial {
        out.extend_from_slice(&[PARTIAL_CHECKSUMS, 0]);
    }
    out
}

/// The parameters a payload starts with.
struct Parameters<'a> {
    ids: Option<&'a [u8]>,
    partial: bool,
}

impl Parameters<'_> {
    /// The data ciphers, which a secure path's parameters must name.
    fn ciphers(&self) -> Result<&[u8], &'static str> {
        self.ids.ok_or("handshake parameters without data ciphers")
    }
}

/// Splits a payload into its parameters (if it starts with them) and the rest.
fn split(payload: &[u8]) -> Result<(Option<Parameters<'_>>, &[u8]), &'static str> {
    const MALFORMED: &str = "malformed handshake parameters";
    let Some(after) = payload.strip_prefix(&MAGIC) else {
        return Ok((None, payload));
    };
    let (&n, after) = after.split_first().ok_or(MALFORMED)?;
    let (mut params, rest) = after.split_at_checked(usize::from(n)).ok_or(MALFORMED)?;
    let (mut ids, mut partial) = (None, false);
    while let Some((&kind, after)) = params.split_first() {
        let (&len, after) = after.split_first().ok_or(MALFORMED)?;
        let (value, after) = after.split_at_checked(usize::from(len)).ok_or(MALFORMED)?;
        match kind {
            CIPHERS => ids = Some(value),
            PARTIAL_CHECKSUMS => partial = true,
            _ => {}
        }
        params = after;
    }
    Ok((Some(Parameters { ids, partial }), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Offer = Offer {
        aes: true,
        partial: false,
    };
    const CHACHA: Offer = Offer {
        aes: false,
        partial: false,
    };

    fn answer(cipher: DataCipher, partial: bool) -> Answer {
        Answer { cipher, partial }
    }

    #[test]
    fn aes_only_when_both_ends_offer_it_and_auto_follows_the_hardware() {
        use CipherPolicy::*;
        assert_eq!(Offer::of(Auto, true, false), BOTH);
        assert_eq!(Offer::of(Auto, false, false), CHACHA);
        assert_eq!(Offer::of(Aes256Gcm, false, false), BOTH);
        assert_eq!(Offer::of(ChaCha20Poly1305, true, false), CHACHA);
        assert_eq!(BOTH.answer(BOTH).cipher, DataCipher::Aes256Gcm);
        for (a, b) in [(BOTH, CHACHA), (CHACHA, BOTH), (CHACHA, CHACHA)] {
            assert_eq!(a.answer(b).cipher, DataCipher::ChaCha20Poly1305);
        }
        let takes = Offer::of(Auto, false, true);
        assert!(takes.answer(BOTH).partial && !BOTH.answer(takes).partial);
    }

    #[test]
    fn offer_and_answer_round_trip_and_a_node_without_either_sends_nothing() {
        assert!(
            CHACHA.payload().is_empty(),
            "what nodes without negotiation send"
        );
        assert_eq!(Offer::read(&[]), Ok(None));
        assert_eq!(Offer::read(&BOTH.payload()), Ok(Some(BOTH)));
        assert_eq!(BOTH.payload(), b"OCP\x04\x01\x02\x02\x01");
        let partial = Offer {
            aes: false,
            partial: true,
        };
        assert_eq!(partial.payload(), b"OCP\x05\x01\x01\x01\x02\x00");
        assert_eq!(Offer::read(&partial.payload()), Ok(Some(partial)));
        let cert = b"OCC certificate bytes";
        for a in [
            answer(DataCipher::Aes256Gcm, false),
            answer(DataCipher::ChaCha20Poly1305, true),
        ] {
            assert_eq!(
                Answer::read(BOTH, &a.with_certificate(cert)),
                Ok((a, &cert[..]))
            );
        }
        // An accept without an answer (a responder without negotiation) is
        // ChaCha20-Poly1305 with complete checksums.
        assert_eq!(
            Answer::read(BOTH, cert),
            Ok((answer(DataCipher::ChaCha20Poly1305, false), &cert[..]))
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
    fn malformed_or_unoffered_answers_are_refused() {
        for bad in [
            &b"OCP"[..],
            b"OCP\x05\x01\x01\x02",
            b"OCP\x02\x01\x05",
            b"OCP\x02\x09\x00",
            b"OCP\x02\x02\x00",
        ] {
            assert!(Offer::read(bad).is_err(), "{bad:?}");
            assert!(Answer::read(BOTH, bad).is_err(), "{bad:?}");
        }
        let aes = answer(DataCipher::Aes256Gcm, false).with_certificate(b"cert");
        assert!(Answer::read(CHACHA, &aes).is_err(), "not offered");
        assert!(
            Answer::read(BOTH, b"OCP\x03\x01\x01\x07cert").is_err(),
            "unknown id"
        );
        assert!(
            Answer::read(BOTH, b"OCP\x04\x01\x02\x02\x01cert").is_err(),
            "two ids"
        );
    }

    #[test]
    fn a_plain_answer_round_trips_and_is_no_secure_one() {
        assert_eq!(plain_answer(false), b"OCP\x00");
        assert_eq!(plain_answer(true), b"OCP\x02\x02\x00");
        for takes in [false, true] {
            assert_eq!(read_plain_answer(&plain_answer(takes)), Ok(takes));
            assert!(Offer::read(&plain_answer(takes)).is_err());
            assert!(Answer::read(BOTH, &plain_answer(takes)).is_err());
        }
        // Nothing, cut short, followed by more, naming a cipher, not parameters at all.
        let bad: [&[u8]; 5] = [b"", b"OCP", b"OCP\x00more", b"OCP\x03\x01\x01\x01", b"cert"];
        let refused = bad.map(|b| read_plain_answer(b).is_err());
        assert_eq!(refused, [true; 5]);
    }

    proptest::proptest! {
        #[test]
        fn any_certificate_round_trips_behind_an_answer_and_any_bytes_read_safely(
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            aes in proptest::prelude::any::<bool>(),
            partial in proptest::prelude::any::<bool>(),
        ) {
            let c = if aes { DataCipher::Aes256Gcm } else { DataCipher::ChaCha20Poly1305 };
            let a = answer(c, partial);
            let accept = a.with_certificate(&rest);
            proptest::prop_assert_eq!(Answer::read(BOTH, &accept), Ok((a, &rest[..])));
            // Whatever a peer sends is an answer or an error, never a panic.
            let _ = (Offer::read(&rest), Answer::read(CHACHA, &rest), read_plain_answer(&rest));
        }
    }
}
