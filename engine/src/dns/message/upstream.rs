//! Talking to the real resolver: relaying apps' queries for ordinary names under our own
//! transaction ids, and resolving host names for overlay modules (RON's DNS resolution,
//! the legacy server gateway's `cnn.com`, paper §3.1.1 and §3.2.2).

use std::fmt;
use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RData;

use super::wire::{encode_name, push_header, u16_at, HostError, FLAG_RD, HEADER_LEN};
use super::{CLASS_IN, OUR_PAYLOAD_SIZE, TYPE_A, TYPE_AAAA, TYPE_OPT};

/// Why an upstream answer to one of our address queries gave no addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Not a DNS message we can read.
    Malformed,
    /// A query, not a response.
    NotResponse,
    /// The transaction id is not the one we sent: a stale or forged answer.
    IdMismatch { expected: u16, got: u16 },
    /// The resolver answered with an error RCODE (NXDOMAIN = 3, SERVFAIL = 2, ...).
    Rcode(u16),
    /// The answer was truncated and carried no address; the caller may retry over TCP.
    Truncated,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Malformed => f.write_str("malformed DNS answer"),
            AnswerError::NotResponse => f.write_str("DNS message is not a response"),
            AnswerError::IdMismatch { expected, got } => {
                write!(f, "DNS answer id {got} does not match query id {expected}")
            }
            AnswerError::Rcode(code) => {
                write!(f, "DNS error {}", <ResponseCode as From<u16>>::from(*code))
            }
            AnswerError::Truncated => f.write_str("truncated DNS answer without addresses"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// Rewrites a message's transaction id in place (relaying under ids the engine chose, so
/// answers from upstream can be matched and ids from apps never collide). False if the
/// message is shorter than a header.
pub fn set_id(message: &mut [u8], id: u16) -> bool {
    if message.len() < HEADER_LEN {
        return false;
    }
    match message.get_mut(..2) {
        Some(field) => {
            field.copy_from_slice(&id.to_be_bytes());
            true
        }
        None => false,
    }
}

/// The transaction id of a message, if it has a header.
pub fn id_of(message: &[u8]) -> Option<u16> {
    if message.len() < HEADER_LEN {
        return None;
    }
    u16_at(message, 0)
}

/// An A (or AAAA when `ipv6`) query for `host` with RD=1 and an OPT record advertising
/// 1232 bytes, so answers with many addresses are not truncated.
pub fn build_address_query(id: u16, host: &str, ipv6: bool) -> Result<Vec<u8>, HostError> {
    if host.is_empty() || host == "." {
        return Err(HostError::Empty);
    }
    let name = encode_name(host)?;
    let qtype = if ipv6 { TYPE_AAAA } else { TYPE_A };
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4 + 11);
    push_header(&mut out, id, [FLAG_RD, 0], [1, 0, 0, 1]);
    out.extend_from_slice(&name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&OUR_PAYLOAD_SIZE.to_be_bytes());
    out.extend_from_slice(&[0; 6]); // TTL (extended RCODE, version, flags) and RDLENGTH
    Ok(out)
}

/// The addresses in an upstream answer to a query built by [`build_address_query`].
///
/// Every A and AAAA record of the answer section counts, whatever its owner, so CNAME
/// chains resolved by the upstream resolver work. An empty list means the name exists but
/// has no address of the asked family (NODATA).
pub fn parse_address_answer(bytes: &[u8], expect_id: u16) -> Result<Vec<IpAddr>, AnswerError> {
    let got = id_of(bytes).ok_or(AnswerError::Malformed)?;
    if got != expect_id {
        return Err(AnswerError::IdMismatch {
            expected: expect_id,
            got,
        });
    }
    let message = Message::from_vec(bytes).map_err(|_| AnswerError::Malformed)?;
    if message.metadata.message_type != MessageType::Response {
        return Err(AnswerError::NotResponse);
    }
    let rcode = message.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(AnswerError::Rcode(u16::from(rcode)));
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    for record in &message.answers {
        let addr = match &record.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() && message.metadata.truncation {
        return Err(AnswerError::Truncated);
    }
    Ok(addrs)
}
