//! Test vectors for OCALA, kept apart from the code they check.
//!
//! This crate has almost no code of its own. Its value is in the data next to it:
//!
//! - `wire/messages.toml`: every OCALA message type as fields and the exact bytes they encode
//!   to, written by hand from the layout in `ocala_engine::wire::message`, plus invalid
//!   datagrams and the error each must produce;
//! - `wire/rewrite.toml`: IP packets before and after `rewrite_addresses`, with the expected
//!   output computed independently by full checksum recomputation;
//! - `security/certificates.toml`: certificates and middlebox delegation chains with their
//!   exact encodings, and refused ones with the error each must give;
//! - `tests/snapshots/`: insta snapshots of the control messages exchanged in simulator
//!   scenarios (secure setup handshakes over one and two hops, and a refused relay).
//!
//! The tests under `tests/` compare the engine against these files byte for byte.

use serde::Deserialize;
use std::fmt;

/// An overlay packet vector: its name, the kind it must parse to, and its exact bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketVector {
    pub name: String,
    pub kind: String,
    pub hex: String,
}

/// Bytes that must be refused, and the start of the error text they must give.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidVector {
    pub name: String,
    pub hex: String,
    pub error: String,
}

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// A character that is neither a hex digit nor whitespace, and its byte offset.
    BadChar(char, usize),
    /// An odd number of hex digits.
    OddLength,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::BadChar(c, at) => write!(f, "bad hex character {c:?} at offset {at}"),
            HexError::OddLength => f.write_str("odd number of hex digits"),
        }
    }
}

impl std::error::Error for HexError {}

/// Decodes hex digits (either case) into bytes. ASCII whitespace is ignored anywhere, so
/// vectors can group bytes by field: `"12 00000005 0102030405060708"`.
pub fn from_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (at, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let nibble = c
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(HexError::BadChar(c, at))?;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push((h << 4) | nibble),
        }
    }
    if high.is_some() {
        return Err(HexError::OddLength);
    }
    Ok(out)
}

/// Encodes bytes as lowercase hex without separators, for failure messages.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(from_hex("00 ff\n1A2b"), Ok(vec![0x00, 0xff, 0x1a, 0x2b]));
        assert_eq!(from_hex(""), Ok(vec![]));
        assert_eq!(to_hex(&[0x00, 0xff, 0x1a, 0x2b]), "00ff1a2b");
        assert_eq!(from_hex("abc"), Err(HexError::OddLength));
        assert_eq!(from_hex("a b c"), Err(HexError::OddLength));
        assert_eq!(from_hex("0g"), Err(HexError::BadChar('g', 1)));
        assert_eq!(from_hex("00 é"), Err(HexError::BadChar('é', 3)));
    }
}
pub mod fuzz;
