//! Wire formats: zero-copy views of IP/TCP/UDP/ICMP packets, internet checksums,
//! in-place address rewriting, and the OCALA messages exchanged between OC-I nodes.
//!
//! Everything here is a pure function of its input bytes. Parsers never panic and never
//! allocate: malformed input is reported as a [`WireError`] so that the engine can count it
//! and drop the packet (design §2, "bad input is data").

mod build;
pub(crate) mod bytes;
pub mod checksum;
pub mod ecn;
pub mod ip;
pub mod message;
pub mod rewrite;
pub mod transport;

#[cfg(test)]
pub(crate) mod testutil;

use std::fmt;

/// Why a packet or message could not be parsed or built.
///
/// `Copy` and payload-free (apart from the offending type byte) so that it can be stored in
/// drop counters and events without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireError {
    /// The input ends before a field or a declared length does.
    Truncated,
    /// The version nibble is not one we speak.
    BadVersion,
    /// An OCALA message type byte we do not know.
    UnknownType(u8),
    /// A length field is inconsistent (too small, or trailing bytes remain).
    BadLength,
    /// A header field holds a value that makes the header meaningless.
    BadHeader,
    /// Valid but outside what this implementation handles (e.g. jumbograms).
    Unsupported,
    /// A name or text field is not in the allowed alphabet or is too long.
    BadName,
    /// IPv4 and IPv6 addresses were mixed.
    FamilyMismatch,
    /// The output would not fit its length field.
    TooLarge,
    /// A transport checksum that does not verify.
    BadChecksum,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated"),
            WireError::BadVersion => f.write_str("bad version"),
            WireError::UnknownType(t) => write!(f, "unknown type {t:#x}"),
            WireError::BadLength => f.write_str("bad length"),
            WireError::BadHeader => f.write_str("bad header"),
            WireError::Unsupported => f.write_str("unsupported"),
            WireError::BadName => f.write_str("bad name"),
            WireError::FamilyMismatch => f.write_str("address family mismatch"),
            WireError::TooLarge => f.write_str("too large"),
            WireError::BadChecksum => f.write_str("bad checksum"),
        }
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::WireError;

    #[test]
    fn display_is_short_lowercase() {
        assert_eq!(WireError::Truncated.to_string(), "truncated");
        assert_eq!(WireError::UnknownType(0xf).to_string(), "unknown type 0xf");
        assert_eq!(
            WireError::FamilyMismatch.to_string(),
            "address family mismatch"
        );
    }
}
