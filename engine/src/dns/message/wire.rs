//! Byte-level pieces shared by the parser and the builders: header fields, name encoding,
//! and the textual form of wire names.

use std::fmt;

use arrayvec::ArrayVec;

/// Fixed DNS header size (RFC 1035 §4.1.1).
pub(super) const HEADER_LEN: usize = 12;
/// Longest encoded name, length bytes and root included (RFC 1035 §2.3.4).
pub(super) const MAX_NAME_WIRE: usize = 255;
/// Longest question section: a name plus QTYPE and QCLASS.
pub(super) const MAX_QUESTION_LEN: usize = MAX_NAME_WIRE + 4;
/// Longest label (RFC 1035).
const MAX_LABEL: usize = 63;
/// Payload size every DNS client must accept (RFC 1035 §4.2.1).
pub(super) const MIN_PAYLOAD: usize = 512;

/// Header byte 2: QR.
pub(super) const FLAG_QR: u8 = 0x80;
/// Header byte 2: AA.
pub(super) const FLAG_AA: u8 = 0x04;
/// Header byte 2: TC.
pub(super) const FLAG_TC: u8 = 0x02;
/// Header byte 2: RD.
pub(super) const FLAG_RD: u8 = 0x01;
/// Header byte 3: RA.
pub(super) const FLAG_RA: u8 = 0x80;

/// A host name we cannot put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No name at all.
    Empty,
    /// Two adjacent dots or a leading dot.
    EmptyLabel,
    /// A label longer than 63 bytes.
    LabelTooLong { len: usize },
    /// More than 255 bytes encoded.
    TooLong,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Empty => f.write_str("empty host name"),
            HostError::EmptyLabel => f.write_str("empty label in host name"),
            HostError::LabelTooLong { len } => {
                write!(f, "label too long in host name: {len} > {MAX_LABEL} bytes")
            }
            HostError::TooLong => write!(f, "host name longer than {MAX_NAME_WIRE} bytes"),
        }
    }
}

impl std::error::Error for HostError {}

/// Encodes a dotted name (one trailing dot allowed, no escapes) in uncompressed wire form.
/// The empty name and `.` are the root.
pub(super) fn encode_name(name: &str) -> Result<ArrayVec<u8, MAX_NAME_WIRE>, HostError> {
    let mut out = ArrayVec::new();
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_empty() {
        for label in name.split('.') {
            let len = label.len();
            if len == 0 {
                return Err(HostError::EmptyLabel);
            }
            if len > MAX_LABEL {
                return Err(HostError::LabelTooLong { len });
            }
            // `len <= 63` so the cast is exact.
            out.try_push(len as u8).map_err(|_| HostError::TooLong)?;
            out.try_extend_from_slice(label.as_bytes())
                .map_err(|_| HostError::TooLong)?;
        }
    }
    out.try_push(0).map_err(|_| HostError::TooLong)?;
    Ok(out)
}

/// Appends one label's text form: printable ASCII as is, everything else (and `.`/`\`,
/// which would change the name's structure) as `\DDD`.
pub(super) fn push_label_text(label: &[u8], out: &mut String) {
    for &b in label {
        if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push('\\');
            out.push(char::from(b'0' + b / 100));
            out.push(char::from(b'0' + (b / 10) % 10));
            out.push(char::from(b'0' + b % 10));
        }
    }
}

/// Reads a big-endian u16 at `at`, if the slice is long enough.
pub(super) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Appends a header with the given flag bytes and section counts.
pub(super) fn push_header(out: &mut Vec<u8>, id: u16, flags: [u8; 2], counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags);
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
}

/// Overwrites a 16-bit field in an already written message.
pub(super) fn patch_u16(out: &mut [u8], at: usize, value: u16) {
    if let Some(b) = out.get_mut(at..at + 2) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}
