//! Reading applications' queries.
//!
//! Two paths, one meaning: a hand-written reader for the shape virtually every stub
//! resolver sends (header, one uncompressed question, at most an OPT record, nothing
//! else), and hickory-proto for everything the fast path declines. The fast path never
//! rejects anything itself, so what counts as a valid query is hickory's decision.

use arrayvec::ArrayVec;
use hickory_proto::op::Message;

use super::wire::{
    encode_name, push_label_text, u16_at, HostError, FLAG_QR, FLAG_RD, HEADER_LEN, MAX_NAME_WIRE,
};
use super::{Query, QueryError, MAX_QUERY_LEN, TYPE_OPT};

/// Parses a datagram an application sent to our resolver address.
///
/// Never panics; each error says what the caller should send back (see [`QueryError`]).
pub fn parse_query(bytes: &[u8]) -> Result<Query, QueryError> {
    let Some(&[id_hi, id_lo, flags, ..]) = bytes.get(..HEADER_LEN) else {
        return Err(QueryError::Unreadable);
    };
    let id = u16::from_be_bytes([id_hi, id_lo]);
    let recursion_desired = flags & FLAG_RD != 0;
    if flags & FLAG_QR != 0 {
        return Err(QueryError::NotQuery);
    }
    if bytes.len() > MAX_QUERY_LEN {
        return Err(QueryError::FormErr {
            id,
            recursion_desired,
        });
    }
    if (flags >> 3) & 0x0f != 0 {
        return Err(QueryError::NotImplemented {
            id,
            recursion_desired,
        });
    }
    fast(bytes, id, recursion_desired)
        .or_else(|| checked(bytes, id, recursion_desired))
        .ok_or(QueryError::FormErr {
            id,
            recursion_desired,
        })
}

impl Query {
    /// Builds a query as if it had been received, for callers and tests that start from a
    /// name rather than bytes. `name` is a plain dotted name (no `\DDD` escapes); a trailing
    /// dot is dropped from [`Query::name`] but allowed.
    pub fn new(
        id: u16,
        name: &str,
        qtype: u16,
        qclass: u16,
        recursion_desired: bool,
        edns: Option<u16>,
    ) -> Result<Query, HostError> {
        let wire = encode_name(name)?;
        let mut question = ArrayVec::new();
        // `wire` is at most MAX_NAME_WIRE bytes, so the four more always fit.
        question
            .try_extend_from_slice(&wire)
            .map_err(|_| HostError::TooLong)?;
        question
            .try_extend_from_slice(&qtype.to_be_bytes())
            .map_err(|_| HostError::TooLong)?;
        question
            .try_extend_from_slice(&qclass.to_be_bytes())
            .map_err(|_| HostError::TooLong)?;
        Ok(Query {
            id,
            name: name.strip_suffix('.').unwrap_or(name).to_owned(),
            qtype,
            qclass,
            recursion_desired,
            edns,
            question,
        })
    }

    /// The question section as it will be echoed in answers.
    pub(super) fn question(&self) -> &[u8] {
        &self.question
    }
}

/// The common shape, read without allocation beyond the name text. `None` means "not the
/// common shape" (not necessarily invalid).
pub(super) fn fast(bytes: &[u8], id: u16, recursion_desired: bool) -> Option<Query> {
    let counts = (
        u16_at(bytes, 4)?,
        u16_at(bytes, 6)?,
        u16_at(bytes, 8)?,
        u16_at(bytes, 10)?,
    );
    let has_opt = match counts {
        (1, 0, 0, 0) => false,
        (1, 0, 0, 1) => true,
        _ => return None,
    };

    let mut name = String::with_capacity(64);
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // Compression pointers and the obsolete extended label types are left to hickory.
        if len > 63 {
            return None;
        }
        let label = bytes.get(at + 1..at + 1 + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        push_label_text(label, &mut name);
        at += 1 + len;
        if at - HEADER_LEN >= MAX_NAME_WIRE {
            return None;
        }
    }
    let qtype = u16_at(bytes, at)?;
    let qclass = u16_at(bytes, at + 2)?;
    at += 4;
    let question = ArrayVec::try_from(bytes.get(HEADER_LEN..at)?).ok()?;

    let edns = if has_opt {
        Some(read_opt(bytes, at)?)
    } else if at == bytes.len() {
        None
    } else {
        return None;
    };
    Some(Query {
        id,
        name,
        qtype,
        qclass,
        recursion_desired,
        edns,
        question,
    })
}

/// Reads an OPT record at `at` that must end the message exactly; returns its payload size.
fn read_opt(bytes: &[u8], at: usize) -> Option<u16> {
    if *bytes.get(at)? != 0 || u16_at(bytes, at + 1)? != TYPE_OPT {
        return None;
    }
    let payload = u16_at(bytes, at + 3)?;
    let rdlen = usize::from(u16_at(bytes, at + 9)?);
    let start = at + 11;
    if bytes.len() != start + rdlen {
        return None;
    }
    // The options must tile the RDATA exactly.
    let mut option = start;
    while option < bytes.len() {
        option += 4 + usize::from(u16_at(bytes, option + 2)?);
    }
    // RFC 6891 §6.2.5: values below 512 are treated as 512 (hickory reads them so too).
    (option == bytes.len()).then_some(payload.max(512))
}

/// Full validation by hickory-proto for every shape the fast path declines.
pub(super) fn checked(bytes: &[u8], id: u16, recursion_desired: bool) -> Option<Query> {
    let message = Message::from_vec(bytes).ok()?;
    let [q] = message.queries.as_slice() else {
        return None;
    };
    let mut question = ArrayVec::new();
    let mut name = String::with_capacity(64);
    for label in q.name().iter() {
        let len = u8::try_from(label.len()).ok().filter(|l| *l <= 63)?;
        question.try_push(len).ok()?;
        question.try_extend_from_slice(label).ok()?;
        if !name.is_empty() {
            name.push('.');
        }
        push_label_text(label, &mut name);
    }
    question.try_push(0).ok()?;
    let qtype = u16::from(q.query_type());
    let qclass = u16::from(q.query_class());
    question.try_extend_from_slice(&qtype.to_be_bytes()).ok()?;
    question.try_extend_from_slice(&qclass.to_be_bytes()).ok()?;
    Some(Query {
        id,
        name,
        qtype,
        qclass,
        recursion_desired,
        edns: message.edns.as_ref().map(|e| e.max_payload()),
        question,
    })
}
