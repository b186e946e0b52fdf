//! OCALA messages exchanged between OC-I nodes inside UDP datagrams (design §6).
//!
//! Byte 0 is `(VERSION << 4) | type`; all integers are big-endian. Data messages are the
//! hot path, so their 5-byte header can be written and relabelled in place without going
//! through [`Message`]. Control messages are parsed strictly — trailing bytes, reserved bits
//! and malformed names are errors — so that `encode(parse(x)) == x` for every accepted `x`.

use std::fmt;

use super::bytes::{slice, u16_at, u32_at, u64_at, u8_at};
use super::WireError;

/// Protocol version carried in the high nibble of byte 0.
pub const VERSION: u8 = 1;

pub const TYPE_DATA: u8 = 0x1;
pub const TYPE_SETUP: u8 = 0x2;
pub const TYPE_ACCEPT: u8 = 0x3;
pub const TYPE_REJECT: u8 = 0x4;
pub const TYPE_CLOSE: u8 = 0x5;
pub const TYPE_KEEPALIVE: u8 = 0x6;
pub const TYPE_CONFIRM: u8 = 0x7;
pub const TYPE_COOKIE: u8 = 0x8;
pub const TYPE_GRANT: u8 = 0x9;
/// Length of a responder's stateless cookie.
pub const COOKIE_LEN: usize = 16;
/// The first byte of a keepalive, so an overlay module can spot one without a full parse.
pub const KEEPALIVE_TYPE_BYTE: u8 = (VERSION << 4) | TYPE_KEEPALIVE;
/// First byte of a setup message.
pub const SETUP_TYPE_BYTE: u8 = (VERSION << 4) | TYPE_SETUP;

/// Type byte and receiver label.
pub const DATA_HEADER_LEN: usize = 5;

/// Longest name on the wire: a DNS name's limit (RFC 1035), which overlay names share.
pub const MAX_NAME_LEN: usize = 253;

const KEEPALIVE_REPLY_REQUESTED: u8 = 0x01;
const KEEPALIVE_IS_REPLY: u8 = 0x02;

/// Writes the header of a data message; the caller puts the payload right after it. Taking
/// an array makes the length a compile-time fact, so this cannot fail.
pub fn write_data_header(out: &mut [u8; DATA_HEADER_LEN], label: u32) {
    let [a, b, c, d] = label.to_be_bytes();
    *out = [(VERSION << 4) | TYPE_DATA, a, b, c, d];
}

/// Replaces the label of a data message in place: what a gateway does to every packet it
/// relays (design §3, MPLS-like label swapping), without touching the payload.
pub fn set_data_label(datagram: &mut [u8], label: u32) -> Result<(), WireError> {
    let kind = type_of(datagram)?;
    if kind != TYPE_DATA {
        return Err(if known_type(kind) {
            WireError::BadHeader
        } else {
            WireError::UnknownType(kind)
        });
    }
    let field = datagram
        .get_mut(1..DATA_HEADER_LEN)
        .ok_or(WireError::Truncated)?;
    field.copy_from_slice(&label.to_be_bytes());
    Ok(())
}

/// Checks the version and returns the type nibble.
fn type_of(datagram: &[u8]) -> Result<u8, WireError> {
    let first = u8_at(datagram, 0)?;
    if first >> 4 != VERSION {
        return Err(WireError::BadVersion);
    }
    Ok(first & 0x0f)
}

fn known_type(kind: u8) -> bool {
    (TYPE_DATA..=TYPE_GRANT).contains(&kind)
}

/// Why a path setup was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    NotAGateway,
    UnknownOverlay,
    Unreachable,
    HopLimit,
    Loop,
    NoResources,
    BadName,
    Refused,
    UnknownHost,
    /// A code from a newer peer; kept so that it can be relayed unchanged.
    Unknown(u8),
}

impl RejectReason {
    pub fn as_u8(self) -> u8 {
        match self {
            RejectReason::NotAGateway => 1,
            RejectReason::UnknownOverlay => 2,
            RejectReason::Unreachable => 3,
            RejectReason::HopLimit => 4,
            RejectReason::Loop => 5,
            RejectReason::NoResources => 6,
            RejectReason::BadName => 7,
            RejectReason::Refused => 8,
            RejectReason::UnknownHost => 9,
            RejectReason::Unknown(c) => c,
        }
    }

    pub fn from_u8(code: u8) -> Self {
        match code {
            1 => RejectReason::NotAGateway,
            2 => RejectReason::UnknownOverlay,
            3 => RejectReason::Unreachable,
            4 => RejectReason::HopLimit,
            5 => RejectReason::Loop,
            6 => RejectReason::NoResources,
            7 => RejectReason::BadName,
            8 => RejectReason::Refused,
            9 => RejectReason::UnknownHost,
            c => RejectReason::Unknown(c),
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            RejectReason::NotAGateway => "not a gateway",
            RejectReason::UnknownOverlay => "unknown overlay",
            RejectReason::Unreachable => "unreachable",
            RejectReason::HopLimit => "hop limit exceeded",
            RejectReason::Loop => "loop detected",
            RejectReason::NoResources => "no resources",
            RejectReason::BadName => "bad name",
            RejectReason::Refused => "refused",
            RejectReason::UnknownHost => "unknown host",
            RejectReason::Unknown(c) => return write!(f, "unknown reason {c}"),
        };
        f.write_str(text)
    }
}

/// Why a path was torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    Idle,
    UnknownLabel,
    Shutdown,
    PeerClosed,
    /// A code from a newer peer; kept so that it can be relayed unchanged.
    Unknown(u8),
}

impl CloseReason {
    pub fn as_u8(self) -> u8 {
        match self {
            CloseReason::Idle => 1,
            CloseReason::UnknownLabel => 2,
            CloseReason::Shutdown => 3,
            CloseReason::PeerClosed => 4,
            CloseReason::Unknown(c) => c,
        }
    }

    pub fn from_u8(code: u8) -> Self {
        match code {
            1 => CloseReason::Idle,
            2 => CloseReason::UnknownLabel,
            3 => CloseReason::Shutdown,
            4 => CloseReason::PeerClosed,
            c => CloseReason::Unknown(c),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            CloseReason::Idle => "idle timeout",
            CloseReason::UnknownLabel => "unknown label",
            CloseReason::Shutdown => "shutting down",
            CloseReason::PeerClosed => "closed by peer",
            CloseReason::Unknown(c) => return write!(f, "unknown reason {c}"),
        };
        f.write_str(text)
    }
}

/// Path setup, sent hop by hop towards the destination (paper §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup<'a> {
    /// The label the sender wants to receive this path's data under.
    pub sender_label: u32,
    /// End-to-end identifier of the path, chosen by its initiator.
    pub path_id: u64,
    /// Hops travelled so far; gateways refuse beyond a limit to stop loops.
    pub hop_count: u8,
    /// Path option bits (encryption, authentication, ...), interpreted by the engine.
    pub options: u8,
    /// Overlay name under which the initiator can be reached back.
    pub return_name: &'a str,
    /// The hops still to go, in name grammar; empty at the last hop.
    pub remaining: &'a str,
    /// Opaque end-to-end security handshake bytes.
    pub handshake: &'a [u8],
    /// The addresses the initiator's apps send from, proposed as the handle the far end
    /// gives it (address negotiation).
    pub sources: Sources,
}

/// Address negotiation (paper §6.1.2): the addresses an initiator's apps send from. When the
/// far end can bind its handle for the initiator at the same addresses, its apps see the
/// initiator's own address, and protocols that carry addresses in their payload (FTP's
/// PORT) work unchanged; otherwise it falls back to rewriting. On the wire the addresses
/// trail a setup, IPv4 (4 bytes) then IPv6 (16 bytes), each present only when proposed, so
/// the trailing length (0, 4, 16 or 20) says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources {
    pub v4: Option<std::net::Ipv4Addr>,
    pub v6: Option<std::net::Ipv6Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept<'a> {
    pub sender_label: u32,
    /// The label the receiver of this accept gave in its setup.
    pub receiver_label: u32,
    pub path_id: u64,
    pub handshake: &'a [u8],
    /// The address families the path's far end takes packets in.
    pub families: Families,
}

/// Which IP versions a path's far end takes: both, unless it is a legacy server gateway
/// whose server has addresses in one family only. The initiator then answers DNS for the
/// other family with no address, so apps do not try a family that would go nowhere. On the
/// wire it is one trailing byte of an accept, present only when it is not both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families(u8);

impl Families {
    pub const V4: Families = Families(1);
    pub const V6: Families = Families(2);
    pub const BOTH: Families = Families(3);

    /// Whether IPv6 (`v6`) or IPv4 packets go anywhere.
    pub fn has(self, v6: bool) -> bool {
        self.0 & if v6 { 2 } else { 1 } != 0
    }

    /// The families of these addresses (`v4`, `v6` present).
    pub fn of(v4: bool, v6: bool) -> Families {
        Families(u8::from(v4) | (u8::from(v6) << 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject<'a> {
    pub receiver_label: u32,
    pub path_id: u64,
    pub reason: RejectReason,
    /// Human-readable detail for logs and DNS extended errors.
    pub text: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub receiver_label: u32,
    pub path_id: u64,
    pub reason: CloseReason,
}

/// The initiator's last handshake message (Noise XX's third), carried end to end like data:
/// gateways swap `receiver_label` and pass `handshake` on untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm<'a> {
    pub receiver_label: u32,
    pub path_id: u64,
    pub handshake: &'a [u8],
}

/// A busy responder's stateless answer to a setup: echo `cookie` in a new setup to show the
/// source address is real (WireGuard's cookie reply, in spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieReply {
    /// The setup's sender label.
    pub receiver_label: u32,
    pub path_id: u64,
    pub cookie: [u8; COOKIE_LEN],
}

/// A secure path's keys for one middlebox the path's end points certified, sealed to that
/// middlebox's static key (`security::grant`). The initiator sends one per certified
/// middlebox beside each confirm; it travels like the confirm, and the middlebox it is
/// sealed to keeps it instead of passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    pub receiver_label: u32,
    pub path_id: u64,
    pub sealed: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub reply_requested: bool,
    pub is_reply: bool,
    pub seq: u32,
}

/// One OCALA message, borrowing the datagram it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Data { label: u32, payload: &'a [u8] },
    Setup(Setup<'a>),
    Accept(Accept<'a>),
    Reject(Reject<'a>),
    Close(Close),
    Keepalive(Keepalive),
    Confirm(Confirm<'a>),
    Cookie(CookieReply),
    Grant(Grant<'a>),
}

/// Sequential reader over a control message; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let v = u8_at(self.buf, self.pos)?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let v = u16_at(self.buf, self.pos)?;
        self.pos += 2;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let v = u32_at(self.buf, self.pos)?;
        self.pos += 4;
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let v = u64_at(self.buf, self.pos)?;
        self.pos += 8;
        Ok(v)
    }
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        let v = slice(self.buf, self.pos, len)?;
        self.pos += len;
        Ok(v)
    }
    fn name(&mut self) -> Result<&'a str, WireError> {
        let len = usize::from(self.u8()?);
        let raw = self.bytes(len)?;
        check_name(raw)?;
        std::str::from_utf8(raw).map_err(|_| WireError::BadName)
    }
    fn text(&mut self) -> Result<&'a str, WireError> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.bytes(len)?).map_err(|_| WireError::BadName)
    }
    fn blob16(&mut self) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u16()?);
        self.bytes(len)
    }
    /// A last optional byte: present when bytes remain.
    /// A setup's trailing proposed sources: nothing, IPv4, IPv6, or both.
    fn sources(&mut self) -> Result<Sources, WireError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let (v4, v6) = match rest.len() {
            0 => (None, None),
            4 => (Some(&rest[..4]), None),
            16 => (None, Some(rest)),
            20 => (Some(&rest[..4]), Some(&rest[4..])),
            _ => return Err(WireError::BadLength),
        };
        self.pos = self.buf.len();
        let v4 = v4.and_then(|b| <[u8; 4]>::try_from(b).ok()).map(Into::into);
        let v6 = v6
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(Into::into);
        Ok(Sources { v4, v6 })
    }

    fn optional_u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    /// Control messages have no extension area: leftovers mean a framing disagreement.
    fn finish(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(WireError::BadLength)
        }
    }
}

/// Names are printable ASCII without spaces (overlay names, possibly `_`-joined hop lists),
/// at most [`MAX_NAME_LEN`] bytes. Empty is allowed at this layer; whether a field may be
/// empty is the message's rule.
fn check_name(raw: &[u8]) -> Result<(), WireError> {
    if raw.len() > MAX_NAME_LEN || !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(WireError::BadName);
    }
    Ok(())
}

fn push_name(out: &mut Vec<u8>, name: &str, allow_empty: bool) -> Result<(), WireError> {
    check_name(name.as_bytes())?;
    if name.is_empty() && !allow_empty {
        return Err(WireError::BadName);
    }
    push_u8_blob(out, name.as_bytes())
}

fn push_u8_blob(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), WireError> {
    let len = u8::try_from(bytes.len()).map_err(|_| WireError::TooLarge)?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

fn push_u16_blob(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), WireError> {
    let len = u16::try_from(bytes.len()).map_err(|_| WireError::TooLarge)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

impl<'a> Message<'a> {
    /// Parses one datagram. Data payloads are borrowed, never copied.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, WireError> {
        let kind = type_of(datagram)?;
        let mut r = Reader {
            buf: datagram,
            pos: 1,
        };
        let msg = match kind {
            TYPE_DATA => {
                let label = r.u32()?;
                let payload = datagram
                    .get(DATA_HEADER_LEN..)
                    .ok_or(WireError::Truncated)?;
                return Ok(Message::Data { label, payload });
            }
            TYPE_SETUP => {
                let sender_label = r.u32()?;
                let path_id = r.u64()?;
                let hop_count = r.u8()?;
                let options = r.u8()?;
                let return_name = r.name()?;
                if return_name.is_empty() {
                    return Err(WireError::BadName);
                }
                let remaining = r.name()?;
                let handshake = r.blob16()?;
                let sources = r.sources()?;
                Message::Setup(Setup {
                    sender_label,
                    path_id,
                    hop_count,
                    options,
                    return_name,
                    remaining,
                    handshake,
                    sources,
                })
            }
            TYPE_ACCEPT => Message::Accept(Accept {
                sender_label: r.u32()?,
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                handshake: r.blob16()?,
                families: match r.optional_u8() {
                    None => Families::BOTH,
                    // Both is written by leaving the byte out: one encoding per message.
                    Some(f @ (1 | 2)) => Families(f),
                    Some(_) => return Err(WireError::BadHeader),
                },
            }),
            TYPE_REJECT => Message::Reject(Reject {
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                reason: RejectReason::from_u8(r.u8()?),
                text: r.text()?,
            }),
            TYPE_CLOSE => Message::Close(Close {
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                reason: CloseReason::from_u8(r.u8()?),
            }),
            TYPE_KEEPALIVE => {
                let flags = r.u8()?;
                if flags & !(KEEPALIVE_REPLY_REQUESTED | KEEPALIVE_IS_REPLY) != 0 {
                    // Reserved bits: refuse rather than silently drop them on re-encode.
                    return Err(WireError::BadHeader);
                }
                Message::Keepalive(Keepalive {
                    reply_requested: flags & KEEPALIVE_REPLY_REQUESTED != 0,
                    is_reply: flags & KEEPALIVE_IS_REPLY != 0,
                    seq: r.u32()?,
                })
            }
            TYPE_CONFIRM => Message::Confirm(Confirm {
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                handshake: r.blob16()?,
            }),
            TYPE_COOKIE => Message::Cookie(CookieReply {
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                cookie: r
                    .bytes(COOKIE_LEN)?
                    .try_into()
                    .map_err(|_| WireError::Truncated)?,
            }),
            TYPE_GRANT => Message::Grant(Grant {
                receiver_label: r.u32()?,
                path_id: r.u64()?,
                sealed: r.blob16()?,
            }),
            other => return Err(WireError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// The type nibble of this message.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Data { .. } => TYPE_DATA,
            Message::Setup(_) => TYPE_SETUP,
            Message::Accept(_) => TYPE_ACCEPT,
            Message::Reject(_) => TYPE_REJECT,
            Message::Close(_) => TYPE_CLOSE,
            Message::Keepalive(_) => TYPE_KEEPALIVE,
            Message::Confirm(_) => TYPE_CONFIRM,
            Message::Cookie(_) => TYPE_COOKIE,
            Message::Grant(_) => TYPE_GRANT,
        }
    }

    /// Short lowercase name for logs and counters.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Message::Data { .. } => "data",
            Message::Setup(_) => "setup",
            Message::Accept(_) => "accept",
            Message::Reject(_) => "reject",
            Message::Close(_) => "close",
            Message::Keepalive(_) => "keepalive",
            Message::Confirm(_) => "confirm",
            Message::Cookie(_) => "cookie",
            Message::Grant(_) => "grant",
        }
    }

    /// Appends the encoded message to `out`. Fields that [`Message::parse`] would refuse are
    /// refused here too (`BadName`, `TooLarge`), and `out` is then restored to its length
    /// before the call, so nothing unparseable is ever sent.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let start = out.len();
        let result = self.encode_inner(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_inner(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        out.push((VERSION << 4) | self.kind());
        match self {
            Message::Data { label, payload } => {
                out.extend_from_slice(&label.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Message::Setup(s) => {
                out.extend_from_slice(&s.sender_label.to_be_bytes());
                out.extend_from_slice(&s.path_id.to_be_bytes());
                out.extend_from_slice(&[s.hop_count, s.options]);
                push_name(out, s.return_name, false)?;
                push_name(out, s.remaining, true)?;
                push_u16_blob(out, s.handshake)?;
                if let Some(v4) = s.sources.v4 {
                    out.extend_from_slice(&v4.octets());
                }
                if let Some(v6) = s.sources.v6 {
                    out.extend_from_slice(&v6.octets());
                }
            }
            Message::Accept(a) => {
                out.extend_from_slice(&a.sender_label.to_be_bytes());
                out.extend_from_slice(&a.receiver_label.to_be_bytes());
                out.extend_from_slice(&a.path_id.to_be_bytes());
                push_u16_blob(out, a.handshake)?;
                if a.families != Families::BOTH {
                    out.push(a.families.0);
                }
            }
            Message::Reject(r) => {
                out.extend_from_slice(&r.receiver_label.to_be_bytes());
                out.extend_from_slice(&r.path_id.to_be_bytes());
                out.push(r.reason.as_u8());
                push_u8_blob(out, r.text.as_bytes())?;
            }
            Message::Close(c) => {
                out.extend_from_slice(&c.receiver_label.to_be_bytes());
                out.extend_from_slice(&c.path_id.to_be_bytes());
                out.push(c.reason.as_u8());
            }
            Message::Keepalive(k) => {
                let mut flags = 0;
                if k.reply_requested {
                    flags |= KEEPALIVE_REPLY_REQUESTED;
                }
                if k.is_reply {
                    flags |= KEEPALIVE_IS_REPLY;
                }
                out.push(flags);
                out.extend_from_slice(&k.seq.to_be_bytes());
            }
            Message::Confirm(c) => {
                out.extend_from_slice(&c.receiver_label.to_be_bytes());
                out.extend_from_slice(&c.path_id.to_be_bytes());
                push_u16_blob(out, c.handshake)?;
            }
            Message::Cookie(c) => {
                out.extend_from_slice(&c.receiver_label.to_be_bytes());
                out.extend_from_slice(&c.path_id.to_be_bytes());
                out.extend_from_slice(&c.cookie);
            }
            Message::Grant(g) => {
                out.extend_from_slice(&g.receiver_label.to_be_bytes());
                out.extend_from_slice(&g.path_id.to_be_bytes());
                push_u16_blob(out, g.sealed)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(m: &Message<'_>, expected: &[u8]) {
        let mut out = vec![0xEE]; // encode appends
        m.encode(&mut out).unwrap();
        assert_eq!(&out[1..], expected);
        assert_eq!(&Message::parse(expected).unwrap(), m);
    }

    #[test]
    fn data_vector_and_helpers() {
        let m = Message::Data {
            label: 0x0102_0304,
            payload: b"\x45ip",
        };
        round_trip(&m, &[0x11, 1, 2, 3, 4, 0x45, b'i', b'p']);
        let mut hdr = [0u8; DATA_HEADER_LEN];
        write_data_header(&mut hdr, 0xdead_beef);
        assert_eq!(hdr, [0x11, 0xde, 0xad, 0xbe, 0xef]);
        let mut dg = [0x11, 0, 0, 0, 1, 9, 9];
        set_data_label(&mut dg, 7).unwrap();
        assert_eq!(dg, [0x11, 0, 0, 0, 7, 9, 9]);
        assert_eq!(
            Message::parse(&[0x11, 0, 0, 0, 1]).unwrap(),
            Message::Data {
                label: 1,
                payload: &[]
            }
        );
        assert_eq!(Message::parse(&[0x11, 0, 0, 0]), Err(WireError::Truncated));
        assert_eq!(
            set_data_label(&mut [0x11, 0, 0], 1),
            Err(WireError::Truncated)
        );
        assert_eq!(
            set_data_label(&mut [0x16, 0, 0, 0, 0, 0], 1),
            Err(WireError::BadHeader)
        );
        assert_eq!(
            set_data_label(&mut [0x1f, 0, 0, 0, 0], 1),
            Err(WireError::UnknownType(0xf))
        );
        assert_eq!(
            set_data_label(&mut [0x21, 0, 0, 0, 0], 1),
            Err(WireError::BadVersion)
        );
        assert_eq!(set_data_label(&mut [], 1), Err(WireError::Truncated));
    }

    #[test]
    fn setup_vector() {
        let m = Message::Setup(Setup {
            sender_label: 5,
            path_id: 0x0102_0304_0506_0708,
            hop_count: 2,
            options: 0x81,
            return_name: "alice.i3",
            remaining: "foo.ron",
            handshake: &[0xaa, 0xbb],
            sources: Sources::default(),
        });
        let mut v = vec![0x12, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0x81, 8];
        v.extend_from_slice(b"alice.i3");
        v.push(7);
        v.extend_from_slice(b"foo.ron");
        v.extend_from_slice(&[0, 2, 0xaa, 0xbb]);
        round_trip(&m, &v);
        // Trailing byte.
        let mut t = v.clone();
        t.push(0);
        assert_eq!(Message::parse(&t), Err(WireError::BadLength));
        // Every strict prefix is truncated.
        for n in 1..v.len() {
            assert_eq!(Message::parse(&v[..n]), Err(WireError::Truncated), "n={n}");
        }
        // A space in a name.
        let mut s = v.clone();
        s[16 + 5] = b' ';
        assert_eq!(Message::parse(&s), Err(WireError::BadName));
        // Proposed sources trail it: IPv4, IPv6, both; other lengths are framing errors.
        let v4 = std::net::Ipv4Addr::new(198, 18, 7, 1);
        let v6: std::net::Ipv6Addr = "fd6f:6361:6c61::7".parse().unwrap();
        let Message::Setup(plain) = Message::parse(&v).unwrap() else {
            panic!("a setup")
        };
        for (sources, tail) in [
            (
                Sources {
                    v4: Some(v4),
                    v6: None,
                },
                v4.octets().to_vec(),
            ),
            (
                Sources {
                    v4: None,
                    v6: Some(v6),
                },
                v6.octets().to_vec(),
            ),
            (
                Sources {
                    v4: Some(v4),
                    v6: Some(v6),
                },
                [&v4.octets()[..], &v6.octets()[..]].concat(),
            ),
        ] {
            let mut w = v.clone();
            w.extend_from_slice(&tail);
            round_trip(&Message::Setup(Setup { sources, ..plain }), &w);
        }
        for junk in [3usize, 5, 17, 21] {
            let mut w = v.clone();
            w.resize(v.len() + junk, 7);
            assert_eq!(Message::parse(&w), Err(WireError::BadLength), "{junk}");
        }
        // Empty return name.
        let empty = [
            0x12, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 2, 0x81, 0, 0, 0, 0,
        ];
        assert_eq!(Message::parse(&empty), Err(WireError::BadName));
    }

    #[test]
    fn setup_name_limits() {
        let long = "a".repeat(254);
        let ok = "a".repeat(253);
        let mut setup = Setup {
            sender_label: 0,
            path_id: 0,
            hop_count: 0,
            options: 0,
            return_name: &ok,
            remaining: "",
            handshake: &[],
            sources: Sources::default(),
        };
        let mut out = vec![1, 2];
        Message::Setup(setup).encode(&mut out).unwrap();
        assert_eq!(Message::parse(&out[2..]).unwrap(), Message::Setup(setup));
        setup.remaining = &long;
        assert_eq!(
            Message::Setup(setup).encode(&mut out),
            Err(WireError::BadName)
        );
        setup.remaining = "tab\there";
        assert_eq!(
            Message::Setup(setup).encode(&mut out),
            Err(WireError::BadName)
        );
        setup.remaining = "";
        setup.return_name = "";
        let before = out.clone();
        assert_eq!(
            Message::Setup(setup).encode(&mut out),
            Err(WireError::BadName)
        );
        assert_eq!(out, before, "a failed encode leaves the buffer as it was");
        setup.return_name = "ok";
        let big = vec![0u8; 65536];
        setup.handshake = &big;
        assert_eq!(
            Message::Setup(setup).encode(&mut out),
            Err(WireError::TooLarge)
        );
        // A 254-byte name on the wire is refused even though its length fits a byte.
        let mut raw = vec![0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 254];
        raw.extend(std::iter::repeat_n(b'a', 254));
        raw.extend_from_slice(&[0, 0, 0]);
        assert_eq!(Message::parse(&raw), Err(WireError::BadName));
    }

    #[test]
    fn accept_reject_close_keepalive_vectors() {
        round_trip(
            &Message::Accept(Accept {
                sender_label: 1,
                receiver_label: 2,
                path_id: 3,
                handshake: b"hs",
                families: Families::BOTH,
            }),
            &[
                0x13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, b'h', b's',
            ],
        );
        round_trip(
            &Message::Accept(Accept {
                sender_label: 1,
                receiver_label: 2,
                path_id: 3,
                handshake: b"",
                families: Families::V6,
            }),
            &[
                0x13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 2,
            ],
        );
        // Both is the byte left out; an explicit 3, a 0 or a second byte is refused.
        for tail in [&[3][..], &[0], &[1, 1]] {
            let mut raw = vec![0x13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0];
            raw.extend_from_slice(tail);
            assert!(Message::parse(&raw).is_err(), "{tail:?}");
        }
        round_trip(
            &Message::Reject(Reject {
                receiver_label: 9,
                path_id: 1,
                reason: RejectReason::HopLimit,
                text: "é",
            }),
            &[0x14, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 4, 2, 0xc3, 0xa9],
        );
        assert_eq!(
            Message::parse(&[0x14, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 4, 1, 0xc3]),
            Err(WireError::BadName)
        );
        round_trip(
            &Message::Reject(Reject {
                receiver_label: 0,
                path_id: 0,
                reason: RejectReason::Unknown(200),
                text: "",
            }),
            &[0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 0],
        );
        round_trip(
            &Message::Close(Close {
                receiver_label: 0xffff_ffff,
                path_id: u64::MAX,
                reason: CloseReason::Shutdown,
            }),
            &[
                0x15, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3,
            ],
        );
        round_trip(
            &Message::Keepalive(Keepalive {
                reply_requested: true,
                is_reply: false,
                seq: 258,
            }),
            &[0x16, 1, 0, 0, 1, 2],
        );
        round_trip(
            &Message::Keepalive(Keepalive {
                reply_requested: false,
                is_reply: true,
                seq: 0,
            }),
            &[0x16, 2, 0, 0, 0, 0],
        );
        assert_eq!(
            Message::parse(&[0x16, 4, 0, 0, 0, 0]),
            Err(WireError::BadHeader)
        );
        assert_eq!(
            Message::parse(&[0x16, 0, 0, 0, 0, 0, 0]),
            Err(WireError::BadLength)
        );
    }

    #[test]
    fn header_errors() {
        assert_eq!(Message::parse(&[]), Err(WireError::Truncated));
        assert_eq!(
            Message::parse(&[0x21, 0, 0, 0, 0]),
            Err(WireError::BadVersion)
        );
        assert_eq!(
            Message::parse(&[0x01, 0, 0, 0, 0]),
            Err(WireError::BadVersion)
        );
        assert_eq!(Message::parse(&[0x10]), Err(WireError::UnknownType(0)));
        assert_eq!(Message::parse(&[0x1a]), Err(WireError::UnknownType(10)));
    }

    #[test]
    fn reasons() {
        for c in 0..=255u8 {
            assert_eq!(RejectReason::from_u8(c).as_u8(), c);
            assert_eq!(CloseReason::from_u8(c).as_u8(), c);
        }
        assert_eq!(RejectReason::NotAGateway.to_string(), "not a gateway");
        assert_eq!(RejectReason::HopLimit.to_string(), "hop limit exceeded");
        assert_eq!(RejectReason::Unknown(77).to_string(), "unknown reason 77");
        assert_eq!(CloseReason::Idle.to_string(), "idle timeout");
        assert_eq!(CloseReason::from_u8(2), CloseReason::UnknownLabel);
    }

    #[test]
    fn kind_names() {
        let k = Message::Keepalive(Keepalive {
            reply_requested: false,
            is_reply: false,
            seq: 0,
        });
        assert_eq!(k.kind_name(), "keepalive");
        assert_eq!(
            Message::Data {
                label: 0,
                payload: &[]
            }
            .kind_name(),
            "data"
        );
    }

    /// Owned material from which a borrowed message is built inside the test body.
    #[derive(Debug, Clone)]
    struct Owned {
        kind: u8,
        a: u32,
        b: u32,
        id: u64,
        small: (u8, u8, bool, bool),
        name1: String,
        name2: String,
        text: String,
        blob: Vec<u8>,
    }

    impl Owned {
        fn message(&self) -> Message<'_> {
            match self.kind {
                0 => Message::Data {
                    label: self.a,
                    payload: &self.blob,
                },
                1 => Message::Setup(Setup {
                    sender_label: self.a,
                    path_id: self.id,
                    hop_count: self.small.0,
                    options: self.small.1,
                    return_name: &self.name1,
                    remaining: &self.name2,
                    handshake: &self.blob,
                    sources: Sources {
                        v4: (self.b & 1 == 1).then(|| self.a.into()),
                        v6: (self.b & 2 == 2).then(|| u128::from(self.id).into()),
                    },
                }),
                2 => Message::Accept(Accept {
                    sender_label: self.a,
                    receiver_label: self.b,
                    path_id: self.id,
                    handshake: &self.blob,
                    families: [Families::BOTH, Families::V4, Families::V6][self.a as usize % 3],
                }),
                3 => Message::Reject(Reject {
                    receiver_label: self.a,
                    path_id: self.id,
                    reason: RejectReason::from_u8(self.small.0),
                    text: &self.text,
                }),
                4 => Message::Close(Close {
                    receiver_label: self.a,
                    path_id: self.id,
                    reason: CloseReason::from_u8(self.small.1),
                }),
                _ => Message::Keepalive(Keepalive {
                    reply_requested: self.small.2,
                    is_reply: self.small.3,
                    seq: self.b,
                }),
            }
        }
    }

    fn arb_owned() -> impl Strategy<Value = Owned> {
        (
            0u8..6,
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<(u8, u8, bool, bool)>(),
            "[!-~]{1,253}",
            "[!-~]{0,60}",
            // Any UTF-8 up to 255 bytes: 60 chars of at most 4 bytes each.
            "\\PC{0,60}",
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(kind, a, b, id, small, name1, name2, text, blob)| Owned {
                kind,
                a,
                b,
                id,
                small,
                name1,
                name2,
                text,
                blob,
            })
    }

    proptest! {
        #[test]
        fn round_trips(o in arb_owned()) {
            let m = o.message();
            let mut out = Vec::new();
            m.encode(&mut out).unwrap();
            let parsed = Message::parse(&out).unwrap();
            prop_assert_eq!(parsed, m);
            let mut again = Vec::new();
            parsed.encode(&mut again).unwrap();
            prop_assert_eq!(again, out);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(m) = Message::parse(&data) {
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                prop_assert_eq!(&out, &data);
            }
        }

        #[test]
        fn parse_never_panics_v1(kind in 0u8..8, rest in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut data = vec![0x10 | kind];
            data.extend_from_slice(&rest);
            if let Ok(m) = Message::parse(&data) {
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                prop_assert_eq!(&out, &data);
            }
            let _ = set_data_label(&mut data, 1);
        }
    }
}
