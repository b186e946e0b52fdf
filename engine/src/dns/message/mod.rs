//! DNS wire handling for interception (DESIGN §5).
//!
//! The engine answers applications' queries for overlay names itself, relays everything
//! else upstream, and resolves plain host names for overlay modules. Answering must be
//! cheap — every connection an app opens starts with a lookup — so the common case (header,
//! one question, optional OPT record) is read and written by hand; hickory-proto checks
//! every query the fast path declines and reads upstream answers, where speed matters less
//! than completeness.

mod build;
mod parse;
mod ptr;
mod upstream;
mod wire;

pub use build::{answer_addresses, answer_empty, answer_error, answer_ptr, error_for_header};
pub use parse::parse_query;
pub use ptr::ptr_target;
pub use upstream::{build_address_query, id_of, parse_address_answer, set_id, AnswerError};
pub use wire::HostError;

use arrayvec::ArrayVec;

/// Record type A (RFC 1035).
pub const TYPE_A: u16 = 1;
/// Record type PTR (RFC 1035).
pub const TYPE_PTR: u16 = 12;
/// Record type AAAA (RFC 3596).
pub const TYPE_AAAA: u16 = 28;
/// Record type OPT (RFC 6891).
pub const TYPE_OPT: u16 = 41;
/// Query type ANY (RFC 1035 QTYPE `*`).
pub const TYPE_ANY: u16 = 255;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// UDP payload size we advertise in OPT records: the DNS Flag Day 2020 value, small enough
/// never to fragment.
pub const OUR_PAYLOAD_SIZE: u16 = 1232;
/// Largest query we read. Real queries are a few hundred bytes; anything bigger is either
/// broken or an attempt to make us work.
pub const MAX_QUERY_LEN: usize = 4096;

/// Extended DNS Error info codes (RFC 8914 §4) the engine uses.
pub const EDE_OTHER: u16 = 0;
/// The resolver is not ready yet (e.g. the path is still being set up).
pub const EDE_NOT_READY: u16 = 14;
/// Blocked by local policy.
pub const EDE_BLOCKED: u16 = 15;
/// Prohibited (e.g. a name our configuration does not allow).
pub const EDE_PROHIBITED: u16 = 18;
/// No gateway or peer could be reached.
pub const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
/// A network error while setting up the path.
pub const EDE_NETWORK_ERROR: u16 = 23;
/// The name or data is invalid (bad overlay name grammar).
pub const EDE_INVALID_DATA: u16 = 24;

/// A standard query with exactly one question, as an application sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Transaction id, copied into the answer.
    pub id: u16,
    /// The question name as asked (case preserved), without the trailing dot; the root is
    /// the empty string. Bytes outside printable ASCII, and `.` or `\` inside a label, are
    /// written `\DDD` (decimal), so such names never pass the overlay grammar.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// RD, copied into the answer.
    pub recursion_desired: bool,
    /// The advertised UDP payload size when the query carried an OPT record (values below
    /// 512 read as 512, RFC 6891 §6.2.5).
    pub edns: Option<u16>,
    /// The question section exactly as received (name uncompressed, type, class), echoed
    /// verbatim so the app sees its own case and bytes.
    question: ArrayVec<u8, { wire::MAX_QUESTION_LEN }>,
}

/// Why a datagram sent to our resolver cannot be answered normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Shorter than a header: nobody to answer; drop and count.
    Unreadable,
    /// The header is readable but the rest is not one valid standard query with exactly one
    /// question (or the message is over [`MAX_QUERY_LEN`]): answer FORMERR.
    FormErr { id: u16, recursion_desired: bool },
    /// The QR bit is set: a response, never answered (answering could loop); drop.
    NotQuery,
    /// The opcode is not QUERY: answer NOTIMP.
    NotImplemented { id: u16, recursion_desired: bool },
}

/// The response codes we send for failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The name cannot exist (bad overlay grammar, `use-application-dns.net`).
    NxDomain,
    /// The name is fine but the path could not be set up.
    ServFail,
    /// Refused by policy.
    Refused,
    /// The query was malformed.
    FormErr,
    /// The opcode is not supported.
    NotImp,
}

impl ErrorCode {
    /// The 4-bit RCODE.
    pub fn rcode(self) -> u8 {
        match self {
            ErrorCode::FormErr => 1,
            ErrorCode::ServFail => 2,
            ErrorCode::NxDomain => 3,
            ErrorCode::NotImp => 4,
            ErrorCode::Refused => 5,
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_prop;
