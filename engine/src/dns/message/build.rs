//! Building our own answers to applications' queries.
//!
//! Written by hand rather than through hickory-proto: every answer is the received question
//! echoed verbatim plus a few fixed-shape records, which is both faster and guarantees the
//! app sees its question byte for byte (same case). The tests read every builder's output
//! back with hickory-proto.

use std::net::IpAddr;

use super::wire::{
    encode_name, patch_u16, push_header, FLAG_AA, FLAG_QR, FLAG_RA, FLAG_RD, FLAG_TC, HEADER_LEN,
    MIN_PAYLOAD,
};
use super::{
    ErrorCode, Query, CLASS_IN, EDE_OTHER, OUR_PAYLOAD_SIZE, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_OPT,
    TYPE_PTR,
};

/// EDNS option code of Extended DNS Errors (RFC 8914).
const OPTION_EDE: u16 = 15;
/// Bytes of an OPT record without options: root name, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;
/// Bytes of an EDE option without its text: code, length, INFO-CODE.
const EDE_FIXED_LEN: usize = 6;
/// Compression pointer to the question name, which always starts right after the header.
const POINTER_TO_QNAME: [u8; 2] = [0xc0, HEADER_LEN as u8];
/// Header offsets of the flag byte holding TC and of ANCOUNT and ARCOUNT.
const FLAGS_AT: usize = 2;
const ANCOUNT_AT: usize = 6;
const ARCOUNT_AT: usize = 10;

/// A+AAAA answer with the handle(s) for an overlay name (AA=1, NOERROR).
///
/// Only addresses of the family the query asks for are included (both for ANY); the caller
/// passes the right family. Records that do not fit the client's payload size are left out
/// and TC is set.
pub fn answer_addresses(q: &Query, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let mut r = Response::new(q, 0, true);
    for addr in addrs {
        let fits = match addr {
            IpAddr::V4(a) if matches!(q.qtype, TYPE_A | TYPE_ANY) => {
                r.record(TYPE_A, ttl, &a.octets())
            }
            IpAddr::V6(a) if matches!(q.qtype, TYPE_AAAA | TYPE_ANY) => {
                r.record(TYPE_AAAA, ttl, &a.octets())
            }
            _ => true,
        };
        if !fits {
            break;
        }
    }
    r.finish(None)
}

/// PTR answer naming the overlay name behind a handle (AA=1, NOERROR). A target that is not
/// a valid DNS name gets SERVFAIL with an explanation instead.
pub fn answer_ptr(q: &Query, target: &str, ttl: u32) -> Vec<u8> {
    let Ok(wire) = encode_name(target) else {
        return answer_error(
            q,
            ErrorCode::ServFail,
            Some((EDE_OTHER, "PTR target is not a valid DNS name")),
        );
    };
    let mut r = Response::new(q, 0, true);
    r.record(TYPE_PTR, ttl, &wire);
    r.finish(None)
}

/// NOERROR without records (AA=1): the overlay name exists but has no data of this type
/// (HTTPS, SVCB, MX, ...), so apps fall back to A/AAAA at once instead of waiting.
pub fn answer_empty(q: &Query) -> Vec<u8> {
    Response::new(q, 0, true).finish(None)
}

/// An error answer echoing the question, with an optional Extended DNS Error
/// `(INFO-CODE, EXTRA-TEXT)` telling the user why (RFC 8914). The OPT record carrying it is
/// added even when the query had none, as RFC 8914 allows; a text too long for the
/// client's payload size is cut.
///
/// AA is set for NXDOMAIN only: that one asserts, with our authority over overlay names,
/// that the name cannot exist; the other codes report a failure, not data.
pub fn answer_error(q: &Query, rcode: ErrorCode, ede: Option<(u16, &str)>) -> Vec<u8> {
    Response::new(q, rcode.rcode(), rcode == ErrorCode::NxDomain).finish(ede)
}

/// FORMERR or NOTIMP for a message of which only the header could be trusted: no question
/// section, no OPT record.
pub fn error_for_header(id: u16, recursion_desired: bool, rcode: ErrorCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    let rd = if recursion_desired { FLAG_RD } else { 0 };
    push_header(
        &mut out,
        id,
        [FLAG_QR | rd, FLAG_RA | rcode.rcode()],
        [0, 0, 0, 0],
    );
    out
}

/// A response being written: header and question first, then answer records, then OPT.
struct Response<'q> {
    q: &'q Query,
    out: Vec<u8>,
    answers: u16,
    /// Largest message the client accepts.
    limit: usize,
}

impl<'q> Response<'q> {
    fn new(q: &'q Query, rcode: u8, authoritative: bool) -> Self {
        let question = q.question();
        let mut out = Vec::with_capacity(HEADER_LEN + question.len() + 96);
        let mut flags = FLAG_QR;
        if authoritative {
            flags |= FLAG_AA;
        }
        if q.recursion_desired {
            flags |= FLAG_RD;
        }
        push_header(&mut out, q.id, [flags, FLAG_RA | rcode], [1, 0, 0, 0]);
        out.extend_from_slice(question);
        // Stay within what the client said it accepts, and never above our own size so
        // answers are not fragmented.
        let limit = match q.edns {
            Some(size) => usize::from(size.min(OUR_PAYLOAD_SIZE)).max(MIN_PAYLOAD),
            None => MIN_PAYLOAD,
        };
        Response {
            q,
            out,
            answers: 0,
            limit,
        }
    }

    /// Bytes the OPT record will need when there is no EDE.
    fn opt_reserve(&self) -> usize {
        if self.q.edns.is_some() {
            OPT_LEN
        } else {
            0
        }
    }

    /// Appends an answer record owned by the question name, or sets TC and returns false
    /// when it would not fit.
    fn record(&mut self, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        let len = 2 + 10 + rdata.len();
        if self.out.len() + len + self.opt_reserve() > self.limit {
            if let Some(flags) = self.out.get_mut(FLAGS_AT) {
                *flags |= FLAG_TC;
            }
            return false;
        }
        // `rdata` is at most 255 bytes (a name) or 16 (an address), so it fits a u16.
        let rdlen = u16::try_from(rdata.len()).unwrap_or(u16::MAX);
        self.out.extend_from_slice(&POINTER_TO_QNAME);
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        self.out.extend_from_slice(&rdlen.to_be_bytes());
        self.out.extend_from_slice(rdata);
        self.answers += 1;
        patch_u16(&mut self.out, ANCOUNT_AT, self.answers);
        true
    }

    /// Appends the OPT record if the query had EDNS or there is an EDE to report.
    fn finish(mut self, ede: Option<(u16, &str)>) -> Vec<u8> {
        if self.q.edns.is_none() && ede.is_none() {
            return self.out;
        }
        let text = ede.map_or("", |(_, text)| {
            let room = self
                .limit
                .saturating_sub(self.out.len() + OPT_LEN + EDE_FIXED_LEN);
            cut(text, room)
        });
        let options_len = ede.map_or(0, |_| EDE_FIXED_LEN + text.len());
        let out = &mut self.out;
        out.push(0); // root owner name
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&OUR_PAYLOAD_SIZE.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // extended RCODE 0, version 0, no flags
                                                    // The text is cut to fit at most 1232 bytes of message, so the casts are exact.
        out.extend_from_slice(&(options_len as u16).to_be_bytes());
        if let Some((code, _)) = ede {
            out.extend_from_slice(&OPTION_EDE.to_be_bytes());
            out.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        patch_u16(out, ARCOUNT_AT, 1);
        self.out
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
