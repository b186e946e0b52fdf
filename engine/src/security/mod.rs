//! Security building blocks (paper §3.4, §9 "Security matters"): certificates that bind
//! overlay names to keys, middlebox delegation chains, and the replay window for data packets.
//!
//! The paper's model is a certification and name allocation authority (a CA) from which users
//! obtain certificates associating their overlay name with their public key; any host that
//! knows the CA's public key can check them. Here:
//!
//! - [`cert`]: a CA ([`CaKey`], Ed25519) issues a [`Certificate`] binding up to eight overlay
//!   names to the holder's X25519 *static* key (used by the Noise handshake) and to the
//!   holder's Ed25519 *identity* key (used to sign delegations). A [`TrustBundle`] holds the CA
//!   keys a node trusts — several at once, so that a CA can be rolled over without downtime.
//! - [`chain`]: an end point that interposes middleboxes certifies their static keys
//!   ([`Delegation`]s signed with its identity key), and the other end checks the resulting
//!   [`Chain`] by the end point's name. A handshake presents the chain in place of the bare
//!   certificate.
//! - [`grant`]: how a certified middlebox gets to read: the path's initiator seals the
//!   path's keys to each certified middlebox's static key and sends them past it beside its
//!   confirm.
//! - [`replay`]: a 2048-packet sliding [`ReplayWindow`] for explicit-nonce data packets.
//! - [`noise`]: the Noise XX handshake that rides inside path setup, with randomness from the
//!   engine's seed; [`cipher`] is the data cipher the two ends agree on inside it
//!   (AES-256-GCM where both run AES in hardware, ChaCha20-Poly1305 otherwise); `session`
//!   holds a secure path's keys, nonces and replay window and seals and opens its data
//!   packets; `handshake` is the engine's side: answering, finishing and
//!   checking certificates against the trust bundle and the node's policy.
//!
//! Everything here is deterministic and sans-IO like the rest of the engine: keys come from
//! seeds the caller supplies, and the current time is passed in as Unix seconds (certificates
//! speak wall-clock time, unlike the engine's monotonic [`crate::Instant`]).
//!
//! # Byte layouts
//!
//! All integers are big-endian. Every encoding is canonical: a decoder accepts exactly the
//! bytes its encoder produces for the decoded value, and nothing after them, so a signature
//! over the re-encoded fields is a signature over the received bytes.
//!
//! Certificate (`magic "OCC"`, version 1):
//!
//! ```text
//! offset size  field
//!      0    3  magic "OCC"
//!      3    1  version = 1
//!      4    8  serial
//!     12    8  not_before (Unix seconds, inclusive)
//!     20    8  not_after  (Unix seconds, exclusive)
//!     28   32  static_key   (X25519 public key, for Noise)
//!     60   32  identity_key (Ed25519 public key, signs delegations)
//!     92   32  issuer       (the CA's Ed25519 public key)
//!    124    1  n_names (1..=8)
//!    125    …  n_names × (len u8 (1..=253), name bytes: lowercase overlay name)
//!      …   64  Ed25519 signature by the issuer over
//!              "ocala cert v1\0" ‖ every byte before the signature
//! ```
//!
//! Delegation (inside a chain; no magic of its own):
//!
//! ```text
//!      1  segment (0 = the verifier's next hop, counting towards the end point)
//!      8  not_before (inclusive)
//!      8  not_after  (exclusive)
//!     32  middlebox_static_key (X25519)
//!      1  name length (1..=253)
//!      …  middlebox_name (lowercase overlay name)
//!     64  Ed25519 signature by the end point's identity key over
//!         "ocala delegation v1\0" ‖ endpoint issuer [32] ‖ endpoint serial u64 ‖
//!         toward_key [32] ‖ every delegation byte before the signature
//! ```
//!
//! where `toward_key` is the static key of the neighbouring hop on the end point's side: the
//! next delegation's middlebox key, or the end point's own static key for the last one.
//!
//! Chain (`magic "OCH"`, version 1):
//!
//! ```text
//!      3  magic "OCH"
//!      1  version = 1
//!      …  the end point's certificate, encoded as above (self-delimiting)
//!      1  n_delegations (0..=4)
//!      …  n_delegations × delegation
//! ```

pub mod cert;
pub mod chain;
pub mod cipher;
pub mod grant;
pub(crate) mod handshake;
pub(crate) mod keycache;
pub mod noise;
pub(crate) mod parameters;
pub mod replay;
pub(crate) mod session;

pub use cert::{CaKey, CertError, CertSpec, Certificate, IdentityKey, TrustBundle};
pub use chain::{Chain, Delegation, DelegationSpec};
pub use replay::{ReplayError, ReplayWindow};

/// The most bytes a data message adds to the packet it carries: its header and, on a secure
/// path, the nonce and the tag or MAC. Drivers size their sends by it.
pub const MAX_DATA_OVERHEAD: usize = crate::wire::message::DATA_HEADER_LEN
    + session::NONCE_LEN
    + if noise::TAG_LEN > session::MAC_LEN {
        noise::TAG_LEN
    } else {
        session::MAC_LEN
    };

/// A bounds-checked cursor over untrusted bytes. Every read either returns the bytes or a
/// `Malformed` reason naming the field, so decoders never index out of range.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CertError> {
        let end = self.pos.checked_add(n).ok_or(CertError::Malformed(field))?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or(CertError::Malformed(field))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, CertError> {
        let b = self.take(1, field)?;
        b.first().copied().ok_or(CertError::Malformed(field))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CertError> {
        let b = self.array::<8>(field)?;
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], CertError> {
        let b = self.take(N, field)?;
        <[u8; N]>::try_from(b).map_err(|_| CertError::Malformed(field))
    }
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (`2026-01-01T00:00:00Z`).
///
/// Error texts end up in DNS Extended Errors read by people, so times are shown as dates
/// rather than raw seconds. Written out here (proleptic Gregorian calendar, days-to-civil
/// conversion) to avoid a date library for one function. Years past 9999 simply get more
/// digits.
pub(crate) fn format_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (hour, minute, second) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a 400-year era.
    // `days` is at most about 2.1e14, so none of this overflows a u64.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_utc_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(format_utc(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(format_utc(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(format_utc(1_234_567_890), "2009-02-13T23:31:30Z");
        // The largest value must not overflow or panic.
        assert!(format_utc(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn reader_is_bounds_checked() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(r.u64("b"), Err(CertError::Malformed("b")));
        assert_eq!(r.take(usize::MAX, "c"), Err(CertError::Malformed("c")));
        assert_eq!(r.array::<2>("d"), Ok([2, 3]));
        assert!(r.is_empty());
    }
}
