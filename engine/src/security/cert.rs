//! Certificates: a CA binds overlay names to a holder's keys (paper §3.4).
//!
//! A [`Certificate`] says "the holder of these keys may use these names from `not_before`
//! until `not_after`". It names two keys because they do different jobs: the X25519
//! *static key* is what the Noise handshake authenticates, and the Ed25519 *identity key*
//! lets the holder sign [`Delegation`](super::Delegation)s for its middleboxes without
//! going back to the CA. The byte layout is in the [module docs](super).
//!
//! Verification ([`TrustBundle::verify`]) runs in a fixed order — issuer known, signature,
//! validity window, name — so that an attacker-controlled certificate never gets as far as
//! having its (unauthenticated) names or dates reported, and the error a user sees is the
//! most fundamental one.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{format_utc, Reader};

/// The certificate magic: "OCC", OCala Certificate.
pub const CERT_MAGIC: [u8; 3] = *b"OCC";
/// The only certificate version this code reads or writes.
pub const CERT_VERSION: u8 = 1;
/// Domain separation for certificate signatures, so that no other signed OCALA object (a
/// delegation, a future format) can be replayed as a certificate or the other way round.
pub const CERT_SIGNING_CONTEXT: &[u8] = b"ocala cert v1\0";
/// At most this many names per certificate: the name grammar allows 8 path elements, and a
/// small bound keeps decoding and matching cheap.
pub const MAX_NAMES: usize = 8;
/// The longest name, as for DNS names (the names are looked up through DNS).
pub const MAX_NAME_LEN: usize = 253;
/// At most this many CAs in a trust bundle: enough for a rollover between a few CAs, small
/// enough that checking every key is cheap.
pub const MAX_CAS: usize = 16;

/// Why a certificate, delegation or chain was refused.
///
/// The [`Display`](fmt::Display) texts are full sentences because they reach users inside
/// DNS Extended Errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertError {
    /// The bytes do not follow the layout; the text names the field that failed.
    Malformed(&'static str),
    /// A version this code does not know.
    BadVersion(u8),
    /// The certificate's validity window ended before now.
    Expired {
        /// The name that was being verified.
        name: String,
        /// The end of the window (exclusive), Unix seconds.
        not_after: u64,
    },
    /// The certificate's validity window starts after now.
    NotYetValid {
        /// The name that was being verified.
        name: String,
        /// The start of the window, Unix seconds.
        not_before: u64,
    },
    /// The issuer is not in the trust bundle.
    UnknownCa,
    /// The certificate is valid but for other names.
    NameMismatch {
        /// The name that was being verified (lowercased).
        expected: String,
        /// The names the certificate holds.
        got: Vec<String>,
    },
    /// The CA's signature does not verify.
    BadSignature,
    /// More than [`MAX_NAMES`] names.
    TooManyNames,
    /// A certificate must name at least one name.
    NoNames,
    /// A name is empty, too long, not lowercase ASCII, has an empty label, or is repeated.
    BadName,
    /// `not_before` is not before `not_after`, so the window is empty.
    BadValidity {
        /// The start of the window.
        not_before: u64,
        /// The end of the window.
        not_after: u64,
    },
    /// A CA public key is not a usable Ed25519 key (not a curve point, or of small order).
    BadCaKey,
    /// A trust bundle needs at least one CA.
    NoCas,
    /// More than [`MAX_CAS`] CAs in a trust bundle.
    TooManyCas,
    /// The certificate's identity key is not a usable Ed25519 key, so it cannot have signed
    /// delegations.
    BadIdentityKey,
    /// The identity key offered for signing delegations is not the one in the certificate.
    IdentityMismatch,
    /// More than [`MAX_DELEGATIONS`](super::chain::MAX_DELEGATIONS) delegations in a chain.
    TooManyDelegations,
    /// A delegation's segment index is not its position in the chain.
    SegmentOutOfOrder {
        /// The position in the chain.
        expected: u8,
        /// The segment index the delegation carries.
        got: u8,
    },
    /// A delegation's signature does not verify with the end point's identity key.
    BadDelegationSignature {
        /// The delegation's segment index.
        segment: u8,
    },
    /// A delegation's validity window ended before now.
    DelegationExpired {
        /// The middlebox the delegation names.
        middlebox: String,
        /// The end of the window (exclusive).
        not_after: u64,
    },
    /// A delegation's validity window starts after now.
    DelegationNotYetValid {
        /// The middlebox the delegation names.
        middlebox: String,
        /// The start of the window.
        not_before: u64,
    },
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Malformed(field) => write!(f, "malformed certificate ({field})"),
            CertError::BadVersion(v) => write!(f, "unsupported certificate format version {v}"),
            CertError::Expired { name, not_after } => write!(
                f,
                "certificate for {name} expired at {}",
                format_utc(*not_after)
            ),
            CertError::NotYetValid { name, not_before } => write!(
                f,
                "certificate for {name} is not valid before {}",
                format_utc(*not_before)
            ),
            CertError::UnknownCa => f.write_str("certificate signed by an unknown CA"),
            CertError::NameMismatch { expected, got } => {
                write!(f, "certificate names {}, not {expected}", got.join(", "))
            }
            CertError::BadSignature => f.write_str("bad certificate signature"),
            CertError::TooManyNames => {
                write!(f, "certificate has more than {MAX_NAMES} names")
            }
            CertError::NoNames => f.write_str("certificate has no names"),
            CertError::BadName => f.write_str("certificate holds an invalid overlay name"),
            CertError::BadValidity {
                not_before,
                not_after,
            } => write!(
                f,
                "certificate validity window from {} to {} is empty",
                format_utc(*not_before),
                format_utc(*not_after)
            ),
            CertError::BadCaKey => f.write_str("CA public key is not a valid Ed25519 key"),
            CertError::NoCas => f.write_str("trust bundle has no CA"),
            CertError::TooManyCas => write!(f, "trust bundle has more than {MAX_CAS} CAs"),
            CertError::BadIdentityKey => {
                f.write_str("certificate identity key is not a valid Ed25519 key")
            }
            CertError::IdentityMismatch => {
                f.write_str("identity key does not match the certificate")
            }
            CertError::TooManyDelegations => write!(
                f,
                "certificate chain has more than {} delegations",
                super::chain::MAX_DELEGATIONS
            ),
            CertError::SegmentOutOfOrder { expected, got } => write!(
                f,
                "delegation for segment {got} found where segment {expected} belongs"
            ),
            CertError::BadDelegationSignature { segment } => {
                write!(f, "bad delegation signature for segment {segment}")
            }
            CertError::DelegationExpired {
                middlebox,
                not_after,
            } => write!(
                f,
                "delegation to middlebox {middlebox} expired at {}",
                format_utc(*not_after)
            ),
            CertError::DelegationNotYetValid {
                middlebox,
                not_before,
            } => write!(
                f,
                "delegation to middlebox {middlebox} is not valid before {}",
                format_utc(*not_before)
            ),
        }
    }
}

impl std::error::Error for CertError {}

/// Checks one overlay name: 1..=253 bytes of lowercase ASCII letters, digits, `-`, `_` and
/// `.`, with no empty label. Certificates store names lowercase so that matching is a plain
/// byte comparison after lowercasing the query, and so that one name has one encoding.
pub(crate) fn check_name(name: &str) -> Result<(), CertError> {
    let ok_len = !name.is_empty() && name.len() <= MAX_NAME_LEN;
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'));
    let ok_labels = name.split('.').all(|label| !label.is_empty());
    if ok_len && ok_chars && ok_labels {
        Ok(())
    } else {
        Err(CertError::BadName)
    }
}

/// Reads a length-prefixed name and checks it.
pub(crate) fn read_name(r: &mut Reader<'_>, field: &'static str) -> Result<String, CertError> {
    let len = r.u8(field)?;
    let bytes = r.take(usize::from(len), field)?;
    let name = std::str::from_utf8(bytes).map_err(|_| CertError::BadName)?;
    check_name(name)?;
    Ok(name.to_owned())
}

/// Appends a length-prefixed name that has passed [`check_name`] (so its length fits a u8).
pub(crate) fn write_name(out: &mut Vec<u8>, name: &str) {
    // check_name bounds the length by 253, so the conversion cannot fail for checked names;
    // saturating keeps this total anyway.
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
}

/// Parses a 32-byte Ed25519 public key, refusing points of small order: with such a key a
/// single signature can verify for many messages.
pub(crate) fn verifying_key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|k| !k.is_weak())
}

/// A certificate authority's signing key (Ed25519).
///
/// Built from a seed so that the engine stays deterministic; keeping the seed secret is the
/// operator's job. The key is zeroized on drop, and `Debug` shows only the public key.
pub struct CaKey {
    key: SigningKey,
}

impl CaKey {
    /// The CA key whose Ed25519 secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> CaKey {
        CaKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key that goes into trust bundles and into the `issuer` field.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Issues a certificate for `spec`. Names are lowercased (ASCII) first; an invalid or
    /// repeated name, no names, more than [`MAX_NAMES`] or an empty validity window is
    /// refused, so that every issued certificate also decodes.
    pub fn issue(&self, spec: &CertSpec) -> Result<Certificate, CertError> {
        if spec.names.is_empty() {
            return Err(CertError::NoNames);
        }
        if spec.names.len() > MAX_NAMES {
            return Err(CertError::TooManyNames);
        }
        let names: Vec<String> = spec.names.iter().map(|n| n.to_ascii_lowercase()).collect();
        check_names(&names)?;
        check_window(spec.not_before, spec.not_after)?;
        if verifying_key(&spec.identity_key).is_none() {
            return Err(CertError::BadIdentityKey);
        }
        let mut cert = Certificate {
            serial: spec.serial,
            not_before: spec.not_before,
            not_after: spec.not_after,
            static_key: spec.static_key,
            identity_key: spec.identity_key,
            issuer: self.public(),
            names,
            signature: [0; 64],
        };
        let body = cert.encode_body();
        cert.signature = self.key.sign(&signed_message(&body)).to_bytes();
        Ok(cert)
    }
}

impl fmt::Debug for CaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// A holder's Ed25519 identity key: the private half of a certificate's `identity_key`,
/// used to sign delegations to middleboxes. Zeroized on drop; `Debug` shows only the public
/// key.
pub struct IdentityKey {
    key: SigningKey,
}

impl IdentityKey {
    /// The identity key whose Ed25519 secret seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> IdentityKey {
        IdentityKey {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key to put in the holder's certificate.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `msg` (deterministic Ed25519). Callers add their own domain separation.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// What a CA is asked to certify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Chosen by the CA; unique per CA, so that (issuer, serial) names one certificate.
    pub serial: u64,
    /// Overlay names such as `bob.udp`; lowercased on issue.
    pub names: Vec<String>,
    /// The holder's X25519 static public key (Noise).
    pub static_key: [u8; 32],
    /// The holder's Ed25519 identity public key (delegations).
    pub identity_key: [u8; 32],
    /// Start of validity, Unix seconds, inclusive.
    pub not_before: u64,
    /// End of validity, Unix seconds, exclusive.
    pub not_after: u64,
}

/// A CA-signed binding of overlay names to a holder's keys. Obtain one from
/// [`CaKey::issue`] or [`Certificate::decode`]; check it with [`TrustBundle::verify`].
/// Decoding alone proves nothing about who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    serial: u64,
    not_before: u64,
    not_after: u64,
    static_key: [u8; 32],
    identity_key: [u8; 32],
    issuer: [u8; 32],
    names: Vec<String>,
    signature: [u8; 64],
}

impl Certificate {
    /// The certificate's bytes (layout in the [module docs](super)).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses a certificate, refusing anything but the exact canonical encoding (no trailing
    /// bytes). This checks the format only, not the signature.
    pub fn decode(bytes: &[u8]) -> Result<Certificate, CertError> {
        let mut r = Reader::new(bytes);
        let cert = Certificate::read(&mut r)?;
        if !r.is_empty() {
            return Err(CertError::Malformed("trailing bytes after certificate"));
        }
        Ok(cert)
    }

    /// Parses one certificate from the front of `r`, leaving `r` just after it (chains embed
    /// certificates without a length prefix; the layout is self-delimiting).
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Certificate, CertError> {
        let magic = r.array::<3>("certificate magic")?;
        if magic != CERT_MAGIC {
            return Err(CertError::Malformed("certificate magic"));
        }
        let version = r.u8("certificate version")?;
        if version != CERT_VERSION {
            return Err(CertError::BadVersion(version));
        }
        let serial = r.u64("serial")?;
        let not_before = r.u64("not_before")?;
        let not_after = r.u64("not_after")?;
        let static_key = r.array::<32>("static_key")?;
        let identity_key = r.array::<32>("identity_key")?;
        let issuer = r.array::<32>("issuer")?;
        let n_names = usize::from(r.u8("name count")?);
        if n_names == 0 {
            return Err(CertError::NoNames);
        }
        if n_names > MAX_NAMES {
            return Err(CertError::TooManyNames);
        }
        let mut names = Vec::with_capacity(n_names);
        for _ in 0..n_names {
            names.push(read_name(r, "name")?);
        }
        check_names(&names)?;
        check_window(not_before, not_after)?;
        let signature = r.array::<64>("certificate signature")?;
        Ok(Certificate {
            serial,
            not_before,
            not_after,
            static_key,
            identity_key,
            issuer,
            names,
            signature,
        })
    }

    /// Everything the signature covers, without the domain-separation prefix.
    fn encode_body(&self) -> Vec<u8> {
        let names_len: usize = self.names.iter().map(|n| 1 + n.len()).sum();
        let mut out = Vec::with_capacity(125 + names_len + 64);
        out.extend_from_slice(&CERT_MAGIC);
        out.push(CERT_VERSION);
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.not_after.to_be_bytes());
        out.extend_from_slice(&self.static_key);
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.issuer);
        out.push(u8::try_from(self.names.len()).unwrap_or(u8::MAX));
        for name in &self.names {
            write_name(&mut out, name);
        }
        out
    }

    /// The names the certificate binds, lowercase.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The holder's X25519 static public key.
    pub fn static_key(&self) -> &[u8; 32] {
        &self.static_key
    }

    /// The holder's Ed25519 identity public key.
    pub fn identity_key(&self) -> &[u8; 32] {
        &self.identity_key
    }

    /// The CA-chosen serial number.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The issuing CA's Ed25519 public key.
    pub fn issuer(&self) -> &[u8; 32] {
        &self.issuer
    }

    /// Start of validity, Unix seconds, inclusive.
    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    /// End of validity, Unix seconds, exclusive.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The issuer's signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Whether the certificate holds `name`, compared case-insensitively.
    pub fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Every name valid and none repeated (a repeat would give one name two encodings).
fn check_names(names: &[String]) -> Result<(), CertError> {
    for (i, name) in names.iter().enumerate() {
        check_name(name)?;
        if names.iter().take(i).any(|earlier| earlier == name) {
            return Err(CertError::BadName);
        }
    }
    Ok(())
}

/// Validity windows are half-open `[not_before, not_after)` and must not be empty.
pub(crate) fn check_window(not_before: u64, not_after: u64) -> Result<(), CertError> {
    if not_before < not_after {
        Ok(())
    } else {
        Err(CertError::BadValidity {
            not_before,
            not_after,
        })
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(CERT_SIGNING_CONTEXT.len() + body.len());
    msg.extend_from_slice(CERT_SIGNING_CONTEXT);
    msg.extend_from_slice(body);
    msg
}

/// The CA keys a node trusts. Several at once, so that a new CA can be added before the old
/// one's certificates expire (rollover without downtime).
#[derive(Clone)]
pub struct TrustBundle {
    cas: Vec<VerifyingKey>,
}

impl fmt::Debug for TrustBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.cas.iter().map(|k| k.to_bytes()))
            .finish()
    }
}

impl TrustBundle {
    /// A bundle of 1..=[`MAX_CAS`] CA public keys. Duplicates are kept once; a key that is
    /// not a valid, non-weak Ed25519 point is refused rather than skipped, so that a typo in
    /// a configuration is noticed.
    pub fn new(cas: &[[u8; 32]]) -> Result<TrustBundle, CertError> {
        if cas.is_empty() {
            return Err(CertError::NoCas);
        }
        if cas.len() > MAX_CAS {
            return Err(CertError::TooManyCas);
        }
        let mut keys: Vec<VerifyingKey> = Vec::with_capacity(cas.len());
        for bytes in cas {
            let key = verifying_key(bytes).ok_or(CertError::BadCaKey)?;
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(TrustBundle { cas: keys })
    }

    /// The CA public keys, in the order given (without duplicates).
    pub fn cas(&self) -> Vec<[u8; 32]> {
        self.cas.iter().map(|k| k.to_bytes()).collect()
    }

    /// Checks that `cert` was issued by a CA in this bundle, is valid at `now_unix`
    /// (`not_before <= now < not_after`) and holds `name` (case-insensitively).
    ///
    /// Checks run in the order issuer, signature, validity window, name, so that nothing a
    /// forger controls is reported before the signature has been verified.
    pub fn verify(&self, cert: &Certificate, name: &str, now_unix: u64) -> Result<(), CertError> {
        let ca = self
            .cas
            .iter()
            .find(|k| k.as_bytes() == cert.issuer())
            .ok_or(CertError::UnknownCa)?;
        let signature = Signature::from_bytes(cert.signature());
        // verify_strict also refuses non-canonical signature encodings, so one certificate
        // has exactly one valid signature bytes.
        ca.verify_strict(&signed_message(&cert.encode_body()), &signature)
            .map_err(|_| CertError::BadSignature)?;
        let name = name.to_ascii_lowercase();
        if now_unix < cert.not_before() {
            return Err(CertError::NotYetValid {
                name,
                not_before: cert.not_before(),
            });
        }
        if now_unix >= cert.not_after() {
            return Err(CertError::Expired {
                name,
                not_after: cert.not_after(),
            });
        }
        if !cert.has_name(&name) {
            return Err(CertError::NameMismatch {
                expected: name,
                got: cert.names().to_vec(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    fn ca() -> CaKey {
        CaKey::from_seed([1; 32])
    }

    fn spec() -> CertSpec {
        CertSpec {
            serial: 7,
            names: vec!["bob.udp".into()],
            static_key: [0x22; 32],
            identity_key: IdentityKey::from_seed([3; 32]).public(),
            not_before: NOW - 86_400,
            not_after: NOW + 86_400,
        }
    }

    fn bundle() -> TrustBundle {
        TrustBundle::new(&[ca().public()]).unwrap()
    }

    #[test]
    fn issue_encode_decode_verify() {
        let cert = ca().issue(&spec()).unwrap();
        let bytes = cert.encode();
        assert_eq!(&bytes[..4], b"OCC\x01");
        assert_eq!(bytes.len(), 125 + 1 + 7 + 64);
        let back = Certificate::decode(&bytes).unwrap();
        assert_eq!(back, cert);
        assert_eq!(back.encode(), bytes);
        bundle().verify(&back, "bob.udp", NOW).unwrap();
        bundle().verify(&back, "BOB.Udp", NOW).unwrap();
        assert_eq!(back.serial(), 7);
        assert_eq!(back.issuer(), &ca().public());
        assert_eq!(back.static_key(), &[0x22; 32]);
    }

    #[test]
    fn issue_lowercases_and_rejects_bad_names() {
        let mut s = spec();
        s.names = vec!["Bob.UDP".into(), "bob2.udp".into()];
        let cert = ca().issue(&s).unwrap();
        assert_eq!(cert.names(), ["bob.udp", "bob2.udp"]);
        for bad in [
            "", ".udp", "bob..udp", "bob.udp.", "bób.udp", "bob udp", "a/b",
        ] {
            s.names = vec![bad.into()];
            assert_eq!(ca().issue(&s), Err(CertError::BadName), "{bad:?}");
        }
        s.names = vec!["a".repeat(254)];
        assert_eq!(ca().issue(&s), Err(CertError::BadName));
        s.names = vec!["a".repeat(253)];
        assert!(ca().issue(&s).is_ok());
        s.names = vec!["bob.udp".into(), "BOB.udp".into()];
        assert_eq!(ca().issue(&s), Err(CertError::BadName));
        s.names = (0..9).map(|i| format!("n{i}.udp")).collect();
        assert_eq!(ca().issue(&s), Err(CertError::TooManyNames));
        s.names = (0..8).map(|i| format!("n{i}.udp")).collect();
        let eight = ca().issue(&s).unwrap();
        assert_eq!(Certificate::decode(&eight.encode()), Ok(eight));
        s.names = vec![];
        assert_eq!(ca().issue(&s), Err(CertError::NoNames));
    }

    #[test]
    fn issue_rejects_empty_window_and_bad_identity() {
        let mut s = spec();
        s.not_after = s.not_before;
        assert!(matches!(ca().issue(&s), Err(CertError::BadValidity { .. })));
        let mut s = spec();
        s.identity_key = [0; 32]; // small order point
        assert_eq!(ca().issue(&s), Err(CertError::BadIdentityKey));
    }

    #[test]
    fn verify_window_is_half_open() {
        let cert = ca().issue(&spec()).unwrap();
        let s = spec();
        assert!(bundle().verify(&cert, "bob.udp", s.not_before).is_ok());
        assert!(bundle().verify(&cert, "bob.udp", s.not_after - 1).is_ok());
        assert_eq!(
            bundle().verify(&cert, "bob.udp", s.not_after),
            Err(CertError::Expired {
                name: "bob.udp".into(),
                not_after: s.not_after
            })
        );
        assert_eq!(
            bundle().verify(&cert, "Bob.udp", s.not_before - 1),
            Err(CertError::NotYetValid {
                name: "bob.udp".into(),
                not_before: s.not_before
            })
        );
    }

    #[test]
    fn verify_order_and_errors() {
        let cert = ca().issue(&spec()).unwrap();
        // Unknown CA comes first, even when the name and time are also wrong.
        let other = TrustBundle::new(&[CaKey::from_seed([9; 32]).public()]).unwrap();
        assert_eq!(other.verify(&cert, "x.udp", 0), Err(CertError::UnknownCa));
        // A tampered certificate fails on the signature before the window or the name.
        let mut bytes = cert.encode();
        bytes[20] ^= 0x80; // not_after
        let tampered = Certificate::decode(&bytes).unwrap();
        assert_eq!(
            bundle().verify(&tampered, "x.udp", 0),
            Err(CertError::BadSignature)
        );
        // Window before name.
        assert!(matches!(
            bundle().verify(&cert, "x.udp", 0),
            Err(CertError::NotYetValid { .. })
        ));
        assert_eq!(
            bundle().verify(&cert, "alice.udp", NOW),
            Err(CertError::NameMismatch {
                expected: "alice.udp".into(),
                got: vec!["bob.udp".into()]
            })
        );
    }

    #[test]
    fn bundle_holds_several_cas() {
        let old = CaKey::from_seed([1; 32]);
        let new = CaKey::from_seed([2; 32]);
        let b = TrustBundle::new(&[old.public(), new.public(), old.public()]).unwrap();
        assert_eq!(b.cas(), vec![old.public(), new.public()]);
        for ca in [&old, &new] {
            let cert = ca.issue(&spec()).unwrap();
            b.verify(&cert, "bob.udp", NOW).unwrap();
        }
        assert_eq!(TrustBundle::new(&[]).err(), Some(CertError::NoCas));
        assert_eq!(
            TrustBundle::new(&[[0; 32]]).err(),
            Some(CertError::BadCaKey)
        );
        let many: Vec<[u8; 32]> = (0..17u8)
            .map(|i| CaKey::from_seed([i; 32]).public())
            .collect();
        assert_eq!(TrustBundle::new(&many).err(), Some(CertError::TooManyCas));
    }

    #[test]
    fn decode_rejects_bad_input() {
        let bytes = ca().issue(&spec()).unwrap().encode();
        for len in 0..bytes.len() {
            assert!(
                Certificate::decode(&bytes[..len]).is_err(),
                "truncated to {len}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Certificate::decode(&long),
            Err(CertError::Malformed("trailing bytes after certificate"))
        );
        let mut v = bytes.clone();
        v[3] = 2;
        assert_eq!(Certificate::decode(&v), Err(CertError::BadVersion(2)));
        let mut m = bytes.clone();
        m[0] = b'X';
        assert_eq!(
            Certificate::decode(&m),
            Err(CertError::Malformed("certificate magic"))
        );
        let mut upper = bytes.clone();
        upper[126] = b'B'; // first byte of "bob.udp"
        assert_eq!(Certificate::decode(&upper), Err(CertError::BadName));
        let mut zero = bytes.clone();
        zero[124] = 0;
        assert_eq!(Certificate::decode(&zero), Err(CertError::NoNames));
        let mut nine = bytes;
        nine[124] = 9;
        assert_eq!(Certificate::decode(&nine), Err(CertError::TooManyNames));
    }

    #[test]
    fn display_texts_are_sentences() {
        let expired = CertError::Expired {
            name: "bob.udp".into(),
            not_after: NOW,
        };
        assert_eq!(
            expired.to_string(),
            "certificate for bob.udp expired at 2026-01-01T00:00:00Z"
        );
        let mismatch = CertError::NameMismatch {
            expected: "bob.udp".into(),
            got: vec!["alice.udp".into()],
        };
        assert_eq!(
            mismatch.to_string(),
            "certificate names alice.udp, not bob.udp"
        );
        assert_eq!(
            CertError::UnknownCa.to_string(),
            "certificate signed by an unknown CA"
        );
        assert_eq!(
            CertError::BadSignature.to_string(),
            "bad certificate signature"
        );
        assert_eq!(
            CertError::NotYetValid {
                name: "bob.udp".into(),
                not_before: 0
            }
            .to_string(),
            "certificate for bob.udp is not valid before 1970-01-01T00:00:00Z"
        );
    }

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    /// RFC 8032 §7.1 test 1: the seed-to-key and signing conventions are plain Ed25519.
    #[test]
    fn identity_key_is_rfc8032_ed25519() {
        let id = IdentityKey::from_seed(unhex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        let public: [u8; 32] =
            unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(id.public(), public);
        let sig: [u8; 64] = unhex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065\
             224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        );
        assert_eq!(id.sign(b""), sig);
    }

    #[test]
    fn debug_does_not_leak_secrets() {
        let text = format!("{:?} {:?}", ca(), IdentityKey::from_seed([3; 32]));
        assert!(text.contains("public"));
        assert!(!text.contains("secret"));
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// The decoder never panics on arbitrary bytes, and whatever it accepts
            /// re-encodes to the same bytes (the encoding is canonical).
            #[test]
            fn decode_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                if let Ok(cert) = Certificate::decode(&bytes) {
                    prop_assert_eq!(cert.encode(), bytes);
                }
            }

            /// Flipping any bit of a valid certificate makes it fail to decode or verify.
            #[test]
            fn any_bit_flip_is_caught(bit in 0usize..(197 * 8)) {
                let ca = CaKey::from_seed([1; 32]);
                let cert = ca.issue(&CertSpec {
                    serial: 1,
                    names: vec!["bob.udp".into()],
                    static_key: [5; 32],
                    identity_key: IdentityKey::from_seed([3; 32]).public(),
                    not_before: 0,
                    not_after: u64::MAX,
                }).unwrap();
                let mut bytes = cert.encode();
                prop_assert_eq!(bytes.len(), 197);
                bytes[bit / 8] ^= 1 << (bit % 8);
                let bundle = TrustBundle::new(&[ca.public()]).unwrap();
                let ok = Certificate::decode(&bytes)
                    .and_then(|c| bundle.verify(&c, "bob.udp", 1_000));
                prop_assert!(ok.is_err());
            }
        }
    }
}
