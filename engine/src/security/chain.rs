//! Middlebox delegation chains (paper §3.4).
//!
//! End-to-end security and middleboxes pull against each other: the middlebox application
//! must see plaintext, but the two ends trust only each other. The paper's answer is
//! delegation: the end point A that interposes a middlebox certifies the middlebox's public
//! key, and the other end B, given the chain, checks it *by A's name* and then runs its
//! handshake with its next hop, the middlebox. Each segment of the path gets its own keys, and
//! the middlebox decrypts and re-encrypts between them. ocala keeps the chain and its checks
//! but not the segments: A presents the chain in the end-to-end handshake, and the path's
//! keys are then granted to the middleboxes it certifies ([`super::grant`]), which read
//! without re-encrypting.
//!
//! Here A signs each [`Delegation`] with the Ed25519 identity key from its CA-issued
//! certificate, so B needs nothing but the CA's key. Delegations are listed from the
//! verifier's side: segment 0 is B's next hop, the last segment is next to A.
//!
//! Each delegation's signature covers, besides its own fields:
//! - the end point certificate's issuer and serial, so a delegation cannot be moved to
//!   another certificate that happens to share the identity key;
//! - the static key of its neighbour on A's side (the next delegation's middlebox, or A's own
//!   static key for the last one), so that delegations from different chains cannot be
//!   spliced together and a chain cannot be shortened from A's end;
//! - its segment index, so that reordering or dropping from B's end is caught.
//!
//! The byte layout is in the [module docs](super).

use ed25519_dalek::Signature;

use super::cert::{check_name, check_window, read_name, verifying_key, write_name};
use super::{CertError, Certificate, IdentityKey, Reader, TrustBundle};

/// The chain magic: "OCH", OCala cHain.
pub const CHAIN_MAGIC: [u8; 3] = *b"OCH";
/// The only chain version this code reads or writes.
pub const CHAIN_VERSION: u8 = 1;
/// Domain separation for delegation signatures (see [`super::cert::CERT_SIGNING_CONTEXT`]).
pub const DELEGATION_SIGNING_CONTEXT: &[u8] = b"ocala delegation v1\0";
/// At most this many middleboxes on one path: each adds a grant to the setup and a decrypt
/// per packet, and a bound keeps chain checking cheap.
pub const MAX_DELEGATIONS: usize = 4;

/// What an end point asks to delegate to one middlebox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationSpec {
    /// The middlebox's overlay name (lowercased when signed).
    pub middlebox_name: String,
    /// The middlebox's X25519 static public key, which the verifier will handshake with.
    pub middlebox_static_key: [u8; 32],
    /// Start of validity, Unix seconds, inclusive.
    pub not_before: u64,
    /// End of validity, Unix seconds, exclusive.
    pub not_after: u64,
}

/// An end point's signed statement that a middlebox may speak for it on one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The middlebox's overlay name, lowercase.
    pub middlebox_name: String,
    /// The middlebox's X25519 static public key.
    pub middlebox_static_key: [u8; 32],
    /// Start of validity, Unix seconds, inclusive.
    pub not_before: u64,
    /// End of validity, Unix seconds, exclusive.
    pub not_after: u64,
    /// Position in the chain, 0 being the verifier's next hop.
    pub segment: u8,
    /// Ed25519 signature by the end point's identity key.
    pub signature: [u8; 64],
}

impl Delegation {
    /// The delegation's bytes, without the signature.
    fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.segment);
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&self.middlebox_static_key);
        write_name(out, &self.middlebox_name);
    }

    /// What the end point signs: context, the end point certificate's identity (issuer,
    /// serial), the neighbour's key on the end point's side, and the body.
    fn signed_message(&self, endpoint: &Certificate, toward_key: &[u8; 32]) -> Vec<u8> {
        let mut msg = Vec::with_capacity(DELEGATION_SIGNING_CONTEXT.len() + 72 + 50 + 253);
        msg.extend_from_slice(DELEGATION_SIGNING_CONTEXT);
        msg.extend_from_slice(endpoint.issuer());
        msg.extend_from_slice(&endpoint.serial().to_be_bytes());
        msg.extend_from_slice(toward_key);
        self.encode_body(&mut msg);
        msg
    }

    fn read(r: &mut Reader<'_>) -> Result<Delegation, CertError> {
        let segment = r.u8("delegation segment")?;
        let not_before = r.u64("delegation not_before")?;
        let not_after = r.u64("delegation not_after")?;
        let middlebox_static_key = r.array::<32>("middlebox static key")?;
        let middlebox_name = read_name(r, "middlebox name")?;
        check_window(not_before, not_after)?;
        let signature = r.array::<64>("delegation signature")?;
        Ok(Delegation {
            middlebox_name,
            middlebox_static_key,
            not_before,
            not_after,
            segment,
            signature,
        })
    }
}

/// An end point's certificate plus its delegations to the middleboxes on the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The end point's CA-issued certificate.
    pub endpoint: Certificate,
    /// Delegations from the verifier's side: index `i` has segment `i`.
    pub delegations: Vec<Delegation>,
}

impl Chain {
    /// Builds and signs a chain: `middleboxes` are listed from the verifier's side (the
    /// verifier's next hop first). `identity` must be the private half of the certificate's
    /// identity key.
    pub fn build(
        endpoint: Certificate,
        identity: &IdentityKey,
        middleboxes: &[DelegationSpec],
    ) -> Result<Chain, CertError> {
        if identity.public() != *endpoint.identity_key() {
            return Err(CertError::IdentityMismatch);
        }
        if middleboxes.len() > MAX_DELEGATIONS {
            return Err(CertError::TooManyDelegations);
        }
        let mut delegations = Vec::with_capacity(middleboxes.len());
        for (i, spec) in middleboxes.iter().enumerate() {
            let middlebox_name = spec.middlebox_name.to_ascii_lowercase();
            check_name(&middlebox_name)?;
            check_window(spec.not_before, spec.not_after)?;
            delegations.push(Delegation {
                middlebox_name,
                middlebox_static_key: spec.middlebox_static_key,
                not_before: spec.not_before,
                not_after: spec.not_after,
                segment: u8::try_from(i).map_err(|_| CertError::TooManyDelegations)?,
                signature: [0; 64],
            });
        }
        for i in 0..delegations.len() {
            let toward = toward_key(&endpoint, &delegations, i);
            let msg = delegations[i].signed_message(&endpoint, &toward);
            delegations[i].signature = identity.sign(&msg);
        }
        Ok(Chain {
            endpoint,
            delegations,
        })
    }

    /// The chain's bytes (layout in the [module docs](super)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 300 + self.delegations.len() * 120);
        out.extend_from_slice(&CHAIN_MAGIC);
        out.push(CHAIN_VERSION);
        out.extend_from_slice(&self.endpoint.encode());
        out.push(u8::try_from(self.delegations.len()).unwrap_or(u8::MAX));
        for d in &self.delegations {
            d.encode_body(&mut out);
            out.extend_from_slice(&d.signature);
        }
        out
    }

    /// Parses a chain, refusing anything but the exact canonical encoding. This checks the
    /// format only; [`TrustBundle::verify_chain`] checks the signatures.
    pub fn decode(bytes: &[u8]) -> Result<Chain, CertError> {
        let mut r = Reader::new(bytes);
        let magic = r.array::<3>("chain magic")?;
        if magic != CHAIN_MAGIC {
            return Err(CertError::Malformed("chain magic"));
        }
        let version = r.u8("chain version")?;
        if version != CHAIN_VERSION {
            return Err(CertError::BadVersion(version));
        }
        let endpoint = Certificate::read(&mut r)?;
        let n = usize::from(r.u8("delegation count")?);
        if n > MAX_DELEGATIONS {
            return Err(CertError::TooManyDelegations);
        }
        let mut delegations = Vec::with_capacity(n);
        for _ in 0..n {
            delegations.push(Delegation::read(&mut r)?);
        }
        if !r.is_empty() {
            return Err(CertError::Malformed("trailing bytes after chain"));
        }
        Ok(Chain {
            endpoint,
            delegations,
        })
    }
}

/// The static key of the hop next to delegation `i` on the end point's side.
fn toward_key(endpoint: &Certificate, delegations: &[Delegation], i: usize) -> [u8; 32] {
    match delegations.get(i + 1) {
        Some(next) => next.middlebox_static_key,
        None => *endpoint.static_key(),
    }
}

impl TrustBundle {
    /// Checks a chain for `endpoint_name` at `now_unix` and returns the static key the
    /// verifier should handshake with: the first middlebox's (its next hop), or the end
    /// point's own when there is no delegation.
    ///
    /// Order: the end point certificate as in [`TrustBundle::verify`]; then the delegation
    /// count and the identity key; then, delegation by delegation from the verifier's side,
    /// segment index, signature, validity window.
    pub fn verify_chain<'c>(
        &self,
        chain: &'c Chain,
        endpoint_name: &str,
        now_unix: u64,
    ) -> Result<&'c [u8; 32], CertError> {
        self.verify(&chain.endpoint, endpoint_name, now_unix)?;
        let Some(first) = chain.delegations.first() else {
            return Ok(chain.endpoint.static_key());
        };
        // `Chain`'s fields are public, so a chain built in memory may exceed the bound that
        // `decode` enforces.
        if chain.delegations.len() > MAX_DELEGATIONS {
            return Err(CertError::TooManyDelegations);
        }
        let identity =
            verifying_key(chain.endpoint.identity_key()).ok_or(CertError::BadIdentityKey)?;
        for (i, d) in chain.delegations.iter().enumerate() {
            let expected = u8::try_from(i).map_err(|_| CertError::TooManyDelegations)?;
            if d.segment != expected {
                return Err(CertError::SegmentOutOfOrder {
                    expected,
                    got: d.segment,
                });
            }
            let toward = toward_key(&chain.endpoint, &chain.delegations, i);
            let msg = d.signed_message(&chain.endpoint, &toward);
            identity
                .verify_strict(&msg, &Signature::from_bytes(&d.signature))
                .map_err(|_| CertError::BadDelegationSignature { segment: d.segment })?;
            if now_unix < d.not_before {
                return Err(CertError::DelegationNotYetValid {
                    middlebox: d.middlebox_name.clone(),
                    not_before: d.not_before,
                });
            }
            if now_unix >= d.not_after {
                return Err(CertError::DelegationExpired {
                    middlebox: d.middlebox_name.clone(),
                    not_after: d.not_after,
                });
            }
        }
        Ok(&first.middlebox_static_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::{CaKey, CertSpec};

    const NOW: u64 = 1_767_225_600;

    struct Fixture {
        bundle: TrustBundle,
        cert: Certificate,
        identity: IdentityKey,
    }

    fn fixture() -> Fixture {
        let ca = CaKey::from_seed([1; 32]);
        let identity = IdentityKey::from_seed([3; 32]);
        let cert = ca
            .issue(&CertSpec {
                serial: 42,
                names: vec!["alice.udp".into()],
                static_key: [0xa1; 32],
                identity_key: identity.public(),
                not_before: NOW - 1000,
                not_after: NOW + 1000,
            })
            .unwrap();
        Fixture {
            bundle: TrustBundle::new(&[ca.public()]).unwrap(),
            cert,
            identity,
        }
    }

    fn mb(name: &str, key: u8) -> DelegationSpec {
        DelegationSpec {
            middlebox_name: name.into(),
            middlebox_static_key: [key; 32],
            not_before: NOW - 10,
            not_after: NOW + 10,
        }
    }

    #[test]
    fn no_delegation_returns_endpoint_key() {
        let f = fixture();
        let chain = Chain::build(f.cert.clone(), &f.identity, &[]).unwrap();
        let bytes = chain.encode();
        let back = Chain::decode(&bytes).unwrap();
        assert_eq!(back, chain);
        assert_eq!(
            f.bundle.verify_chain(&back, "alice.udp", NOW),
            Ok(&[0xa1; 32])
        );
    }

    #[test]
    fn delegations_round_trip_and_verify() {
        let f = fixture();
        let chain = Chain::build(
            f.cert,
            &f.identity,
            &[mb("Filter.udp", 0xb1), mb("cache.udp", 0xb2)],
        )
        .unwrap();
        assert_eq!(chain.delegations[0].middlebox_name, "filter.udp");
        let back = Chain::decode(&chain.encode()).unwrap();
        assert_eq!(back, chain);
        assert_eq!(back.encode(), chain.encode());
        assert_eq!(
            f.bundle.verify_chain(&back, "alice.udp", NOW),
            Ok(&[0xb1; 32])
        );
        // The end point certificate is checked first, by name.
        assert!(matches!(
            f.bundle.verify_chain(&back, "bob.udp", NOW),
            Err(CertError::NameMismatch { .. })
        ));
    }

    #[test]
    fn tampering_is_caught() {
        let f = fixture();
        let chain = Chain::build(
            f.cert,
            &f.identity,
            &[mb("filter.udp", 0xb1), mb("cache.udp", 0xb2)],
        )
        .unwrap();
        let mut swapped = chain.clone();
        swapped.delegations.swap(0, 1);
        assert_eq!(
            f.bundle.verify_chain(&swapped, "alice.udp", NOW),
            Err(CertError::SegmentOutOfOrder {
                expected: 0,
                got: 1
            })
        );
        let mut key = chain.clone();
        key.delegations[1].middlebox_static_key[0] ^= 1;
        // Changing segment 1's key breaks segment 0 (bound to it as its neighbour) first.
        assert_eq!(
            f.bundle.verify_chain(&key, "alice.udp", NOW),
            Err(CertError::BadDelegationSignature { segment: 0 })
        );
        let mut sig = chain.clone();
        sig.delegations[1].signature[10] ^= 1;
        assert_eq!(
            f.bundle.verify_chain(&sig, "alice.udp", NOW),
            Err(CertError::BadDelegationSignature { segment: 1 })
        );
        // Dropping the delegation next to the end point breaks the neighbour binding.
        let mut short = chain.clone();
        short.delegations.pop();
        assert_eq!(
            f.bundle.verify_chain(&short, "alice.udp", NOW),
            Err(CertError::BadDelegationSignature { segment: 0 })
        );
        // Dropping the verifier's side renumbers, which the index catches.
        let mut front = chain;
        front.delegations.remove(0);
        assert_eq!(
            f.bundle.verify_chain(&front, "alice.udp", NOW),
            Err(CertError::SegmentOutOfOrder {
                expected: 0,
                got: 1
            })
        );
    }

    #[test]
    fn delegation_from_another_certificate_is_refused() {
        let f = fixture();
        let ca = CaKey::from_seed([1; 32]);
        // Same identity key and static key, different serial: a renewed certificate.
        let renewed = ca
            .issue(&CertSpec {
                serial: 43,
                names: vec!["alice.udp".into()],
                static_key: [0xa1; 32],
                identity_key: f.identity.public(),
                not_before: NOW - 1000,
                not_after: NOW + 1000,
            })
            .unwrap();
        let chain = Chain::build(f.cert, &f.identity, &[mb("filter.udp", 0xb1)]).unwrap();
        let moved = Chain {
            endpoint: renewed,
            delegations: chain.delegations,
        };
        assert_eq!(
            f.bundle.verify_chain(&moved, "alice.udp", NOW),
            Err(CertError::BadDelegationSignature { segment: 0 })
        );
    }

    #[test]
    fn delegation_window() {
        let f = fixture();
        let chain = Chain::build(f.cert, &f.identity, &[mb("filter.udp", 0xb1)]).unwrap();
        assert_eq!(
            f.bundle.verify_chain(&chain, "alice.udp", NOW + 10),
            Err(CertError::DelegationExpired {
                middlebox: "filter.udp".into(),
                not_after: NOW + 10
            })
        );
        assert_eq!(
            f.bundle.verify_chain(&chain, "alice.udp", NOW - 11),
            Err(CertError::DelegationNotYetValid {
                middlebox: "filter.udp".into(),
                not_before: NOW - 10
            })
        );
        assert_eq!(
            CertError::DelegationExpired {
                middlebox: "filter.udp".into(),
                not_after: NOW
            }
            .to_string(),
            "delegation to middlebox filter.udp expired at 2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn build_checks_its_input() {
        let f = fixture();
        let stranger = IdentityKey::from_seed([4; 32]);
        assert_eq!(
            Chain::build(f.cert.clone(), &stranger, &[]),
            Err(CertError::IdentityMismatch)
        );
        let five: Vec<_> = (0..5).map(|i| mb("m.udp", i)).collect();
        assert_eq!(
            Chain::build(f.cert.clone(), &f.identity, &five),
            Err(CertError::TooManyDelegations)
        );
        assert_eq!(
            Chain::build(f.cert.clone(), &f.identity, &[mb("bad name", 1)]),
            Err(CertError::BadName)
        );
        let mut empty = mb("m.udp", 1);
        empty.not_after = empty.not_before;
        assert!(matches!(
            Chain::build(f.cert, &f.identity, &[empty]),
            Err(CertError::BadValidity { .. })
        ));
    }

    #[test]
    fn decode_rejects_bad_input() {
        let f = fixture();
        let chain = Chain::build(f.cert, &f.identity, &[mb("filter.udp", 0xb1)]).unwrap();
        let bytes = chain.encode();
        for len in 0..bytes.len() {
            assert!(Chain::decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Chain::decode(&long),
            Err(CertError::Malformed("trailing bytes after chain"))
        );
        let mut v = bytes.clone();
        v[3] = 9;
        assert_eq!(Chain::decode(&v), Err(CertError::BadVersion(9)));
        let cert_len = chain.endpoint.encode().len();
        let mut n = bytes;
        n[4 + cert_len] = 5;
        assert_eq!(Chain::decode(&n), Err(CertError::TooManyDelegations));
        // Too many in memory is refused by verify_chain as well.
        let f = fixture();
        let mut big = Chain::build(
            f.cert,
            &f.identity,
            &[
                mb("a.udp", 1),
                mb("b.udp", 2),
                mb("c.udp", 3),
                mb("d.udp", 4),
            ],
        )
        .unwrap();
        assert!(f.bundle.verify_chain(&big, "alice.udp", NOW).is_ok());
        big.delegations.push(big.delegations[0].clone());
        assert_eq!(
            f.bundle.verify_chain(&big, "alice.udp", NOW),
            Err(CertError::TooManyDelegations)
        );
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Ok(chain) = Chain::decode(&bytes) {
                    prop_assert_eq!(chain.encode(), bytes);
                }
            }

            /// Mutating a valid chain (a byte changed, the tail cut) never panics the decoder
            /// or the verifier, and never yields a chain that verifies with different bytes.
            #[test]
            fn mutated_chain(at in 0usize..600, xor in 1u8..=255, cut in any::<bool>()) {
                let f = super::fixture();
                let chain = Chain::build(
                    f.cert,
                    &f.identity,
                    &[super::mb("filter.udp", 0xb1), super::mb("cache.udp", 0xb2)],
                ).unwrap();
                let mut bytes = chain.encode();
                let at = at % bytes.len();
                if cut {
                    bytes.truncate(at);
                } else {
                    bytes[at] ^= xor;
                }
                if let Ok(decoded) = Chain::decode(&bytes) {
                    prop_assert_eq!(decoded.encode(), bytes.clone());
                    let verified = f.bundle.verify_chain(&decoded, "alice.udp", super::NOW);
                    prop_assert!(verified.is_err(), "mutated chain verified");
                }
            }
        }
    }
}
