//! i3 packets on the overlay socket. Every datagram starts `[0x69 'i'][version 1][type]`;
//! fields are big-endian. An id stack is a count byte and that many 256-bit ids, first id on
//! top. Byte-exact vectors live in `vectors/`.
//!
//! ```text
//! DATA     flags  n  id*n  [return id if RETURN]  payload      host → server → host
//! INSERT   lifetime:u16  key:16  id  n  id*n                   host → server (n = 0: to the sender's address)
//! ACK      lifetime:u16  id  observed-address                  server → host
//! REMOVE   key:16  id                                          host → server
//! PING     nonce:u64                                           host → server
//! PONG     nonce:u64  observed-address                         server → host
//! REFUSED  id  reason:u8                                       server → host
//! SHORTCUT id  address                                         server → host (DATA asked SHORTCUT)
//! PROBE    nonce:u64  id                                       host → host, directly
//! PROBE_ACK nonce:u64  id                                      host → host, directly
//! ```
//! An address is `[4][ipv4][port]` or `[6][ipv6][port]`.

use super::id::{Id, ID_LEN};
use crate::wire::bytes::Cursor;
use crate::wire::WireError;
use arrayvec::ArrayVec;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// First byte of every i3 datagram.
pub const MAGIC: u8 = 0x69;
/// The version this implementation speaks.
pub const VERSION: u8 = 1;
/// Deepest id stack a packet or trigger may carry.
pub const MAX_STACK: usize = 4;
/// Length of a trigger's owner key.
pub const KEY_LEN: usize = 16;

/// DATA flag: a return id follows the stack.
pub const FLAG_RETURN: u8 = 0x01;
/// DATA flag: set by the server that matched the top id to a trigger's address, so a node
/// that is host and server at once knows the packet is for it, not to be forwarded.
pub const FLAG_DELIVERED: u8 = 0x02;
/// DATA flag: the sender wants a direct path. The server that delivers the packet tells the
/// sender where the matched trigger points (SHORTCUT), and the receiver learns that its peer
/// wants a shortcut too, so both ends probe each other (which also punches NAT holes).
pub const FLAG_SHORTCUT: u8 = 0x04;

/// An id stack.
pub type Stack = ArrayVec<Id, MAX_STACK>;

/// Why a server refused an insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Refusal {
    /// Another owner holds a live trigger with this id.
    Taken = 1,
    /// The server's trigger table is full.
    Full = 2,
}

/// One i3 packet, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum I3Packet<'a> {
    Data {
        flags: u8,
        stack: Stack,
        return_id: Option<Id>,
        payload: &'a [u8],
    },
    Insert {
        lifetime_secs: u16,
        key: [u8; KEY_LEN],
        id: Id,
        target: Stack,
    },
    Ack {
        lifetime_secs: u16,
        id: Id,
        observed: SocketAddr,
    },
    Remove {
        key: [u8; KEY_LEN],
        id: Id,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
        observed: SocketAddr,
    },
    Refused {
        id: Id,
        reason: Refusal,
    },
    /// The trigger `id` delivers to `addr`: where the sender may try a direct path.
    Shortcut {
        id: Id,
        addr: SocketAddr,
    },
    /// A direct-path probe to the owner of the private trigger `id`.
    Probe {
        nonce: u64,
        id: Id,
    },
    /// The answer to a probe, from the owner of `id`.
    ProbeAck {
        nonce: u64,
        id: Id,
    },
}

const DATA: u8 = 1;
const INSERT: u8 = 2;
const ACK: u8 = 3;
const REMOVE: u8 = 4;
const PING: u8 = 5;
const PONG: u8 = 6;
const REFUSED: u8 = 7;
const SHORTCUT: u8 = 8;
const PROBE: u8 = 9;
const PROBE_ACK: u8 = 10;

/// i3's fields on top of the shared cursor.
trait Fields {
    fn id(&mut self) -> Result<Id, WireError>;
    fn key(&mut self) -> Result<[u8; KEY_LEN], WireError>;
    fn stack(&mut self) -> Result<Stack, WireError>;
    fn addr(&mut self) -> Result<SocketAddr, WireError>;
}

impl Fields for Cursor<'_> {
    fn id(&mut self) -> Result<Id, WireError> {
        Id::from_slice(self.take(ID_LEN)?).ok_or(WireError::Truncated)
    }
    fn key(&mut self) -> Result<[u8; KEY_LEN], WireError> {
        self.array()
    }
    fn stack(&mut self) -> Result<Stack, WireError> {
        let n = usize::from(self.u8()?);
        if n > MAX_STACK {
            return Err(WireError::BadHeader);
        }
        let mut s = Stack::new();
        for _ in 0..n {
            s.push(self.id()?);
        }
        Ok(s)
    }
    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err(WireError::BadHeader),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
}

impl<'a> I3Packet<'a> {
    /// Parses a datagram; bad input is a [`WireError`], never a panic.
    pub fn parse(b: &'a [u8]) -> Result<I3Packet<'a>, WireError> {
        if let Some(v) = DataView::parse(b)? {
            return Ok(I3Packet::Data {
                flags: v.flags,
                stack: v.stack(),
                return_id: v.return_id,
                payload: v.payload,
            });
        }
        let mut r = Cursor(b);
        let p = match r.header(MAGIC, VERSION)? {
            INSERT => I3Packet::Insert {
                lifetime_secs: r.u16()?,
                key: r.key()?,
                id: r.id()?,
                target: r.stack()?,
            },
            ACK => I3Packet::Ack {
                lifetime_secs: r.u16()?,
                id: r.id()?,
                observed: r.addr()?,
            },
            REMOVE => I3Packet::Remove {
                key: r.key()?,
                id: r.id()?,
            },
            PING => I3Packet::Ping { nonce: r.u64()? },
            PONG => I3Packet::Pong {
                nonce: r.u64()?,
                observed: r.addr()?,
            },
            REFUSED => I3Packet::Refused {
                id: r.id()?,
                reason: match r.u8()? {
                    1 => Refusal::Taken,
                    2 => Refusal::Full,
                    _ => return Err(WireError::BadHeader),
                },
            },
            SHORTCUT => I3Packet::Shortcut {
                id: r.id()?,
                addr: r.addr()?,
            },
            PROBE => I3Packet::Probe {
                nonce: r.u64()?,
                id: r.id()?,
            },
            PROBE_ACK => I3Packet::ProbeAck {
                nonce: r.u64()?,
                id: r.id()?,
            },
            t => return Err(WireError::UnknownType(t)),
        };
        r.end()?;
        Ok(p)
    }

    /// Appends the packet's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[MAGIC, VERSION]);
        match self {
            I3Packet::Data {
                flags,
                stack,
                return_id,
                payload,
            } => {
                let flags = (flags & !FLAG_RETURN) | u8::from(return_id.is_some());
                out.extend_from_slice(&[DATA, flags]);
                put_stack(out, stack);
                if let Some(r) = return_id {
                    out.extend_from_slice(&r.0);
                }
                out.extend_from_slice(payload);
            }
            I3Packet::Insert {
                lifetime_secs,
                key,
                id,
                target,
            } => {
                out.push(INSERT);
                out.extend_from_slice(&lifetime_secs.to_be_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(&id.0);
                put_stack(out, target);
            }
            I3Packet::Ack {
                lifetime_secs,
                id,
                observed,
            } => {
                out.push(ACK);
                out.extend_from_slice(&lifetime_secs.to_be_bytes());
                out.extend_from_slice(&id.0);
                put_addr(out, observed);
            }
            I3Packet::Remove { key, id } => {
                out.push(REMOVE);
                out.extend_from_slice(key);
                out.extend_from_slice(&id.0);
            }
            I3Packet::Ping { nonce } => {
                out.push(PING);
                out.extend_from_slice(&nonce.to_be_bytes());
            }
            I3Packet::Pong { nonce, observed } => {
                out.push(PONG);
                out.extend_from_slice(&nonce.to_be_bytes());
                put_addr(out, observed);
            }
            I3Packet::Refused { id, reason } => {
                out.push(REFUSED);
                out.extend_from_slice(&id.0);
                out.push(*reason as u8);
            }
            I3Packet::Shortcut { id, addr } => {
                out.push(SHORTCUT);
                out.extend_from_slice(&id.0);
                put_addr(out, addr);
            }
            I3Packet::Probe { nonce, id } | I3Packet::ProbeAck { nonce, id } => {
                out.push(if matches!(self, I3Packet::Probe { .. }) {
                    PROBE
                } else {
                    PROBE_ACK
                });
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(&id.0);
            }
        }
    }
}

/// A DATA packet read in place, its stack left in the datagram: all a server needs to match
/// and forward it without copying the ids out and encoding them again.
#[derive(Debug, Clone, Copy)]
pub struct DataView<'a> {
    /// Flags as sent (with `FLAG_RETURN` as the packet has it).
    pub flags: u8,
    /// The top of the stack.
    pub top: Id,
    /// The ids below the top, `ID_LEN` bytes each.
    below: &'a [u8],
    pub return_id: Option<Id>,
    pub payload: &'a [u8],
    /// The whole datagram.
    pub raw: &'a [u8],
}

impl<'a> DataView<'a> {
    /// A DATA packet, `None` for any other type, or why the DATA packet is malformed.
    pub fn parse(b: &'a [u8]) -> Result<Option<DataView<'a>>, WireError> {
        let mut r = Cursor(b);
        if r.header(MAGIC, VERSION)? != DATA {
            return Ok(None);
        }
        let flags = r.u8()?;
        let n = usize::from(r.u8()?);
        if n == 0 || n > MAX_STACK {
            return Err(WireError::BadHeader);
        }
        let top = r.id()?;
        let below = r.take((n - 1) * ID_LEN)?;
        let return_id = match flags & FLAG_RETURN {
            0 => None,
            _ => Some(r.id()?),
        };
        Ok(Some(DataView {
            flags,
            top,
            below,
            return_id,
            payload: r.0,
            raw: b,
        }))
    }

    /// The ids below the top.
    pub fn below(&self) -> impl Iterator<Item = Id> + 'a {
        self.below.chunks_exact(ID_LEN).filter_map(Id::from_slice)
    }

    /// The whole stack, top first.
    pub fn stack(&self) -> Stack {
        std::iter::once(self.top)
            .chain(self.below())
            .take(MAX_STACK)
            .collect()
    }
}

/// Rewrites, in a copy of a DATA datagram, its flags and its top id: what the server that
/// matched the top id to an address changes before passing the packet on.
pub fn rewrite_top(datagram: &mut [u8], flags: u8, top: &Id) {
    if let Some(f) = datagram.get_mut(3) {
        *f = flags;
    }
    if let Some(id) = datagram.get_mut(5..5 + ID_LEN) {
        id.copy_from_slice(&top.0);
    }
}

/// Writes a DATA header for `stack` and `return_id` into the `len` bytes in front of a
/// payload (see [`data_header_len`]).
pub fn write_data_header(buf: &mut [u8], flags: u8, stack: &[Id], return_id: Option<&Id>) {
    buf[0] = MAGIC;
    buf[1] = VERSION;
    buf[2] = DATA;
    buf[3] = (flags & !FLAG_RETURN) | u8::from(return_id.is_some());
    buf[4] = stack.len() as u8;
    let mut at = 5;
    for id in stack.iter().chain(return_id) {
        buf[at..at + ID_LEN].copy_from_slice(&id.0);
        at += ID_LEN;
    }
}

/// Length of a DATA header with `depth` ids on the stack and maybe a return id.
pub fn data_header_len(depth: usize, with_return: bool) -> usize {
    5 + ID_LEN * (depth + usize::from(with_return))
}

fn put_stack(out: &mut Vec<u8>, s: &[Id]) {
    out.push(s.len() as u8);
    for id in s {
        out.extend_from_slice(&id.0);
    }
}

fn put_addr(out: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(v) => {
            out.push(4);
            out.extend_from_slice(&v.octets());
        }
        IpAddr::V6(v) => {
            out.push(6);
            out.extend_from_slice(&v.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id([b; 32])
    }

    #[test]
    fn a_server_rewrite_in_place_equals_encoding_anew() {
        let stack: Stack = [id(1), id(2)].into_iter().collect();
        let mut raw = Vec::new();
        I3Packet::Data {
            flags: FLAG_SHORTCUT,
            stack: stack.clone(),
            return_id: Some(id(9)),
            payload: b"payload",
        }
        .encode(&mut raw);
        let v = DataView::parse(&raw).unwrap().unwrap();
        assert_eq!((v.top, v.stack(), v.return_id), (id(1), stack, Some(id(9))));
        assert_eq!(v.below().collect::<Vec<_>>(), [id(2)]);
        let mut copy = raw.clone();
        rewrite_top(&mut copy, v.flags | FLAG_DELIVERED, &id(7));
        let mut anew = Vec::new();
        I3Packet::Data {
            flags: FLAG_SHORTCUT | FLAG_DELIVERED,
            stack: [id(7), id(2)].into_iter().collect(),
            return_id: Some(id(9)),
            payload: b"payload",
        }
        .encode(&mut anew);
        assert_eq!(copy, anew);
        // Other types are not DATA; a DATA header that lies about its stack is malformed.
        let mut ping = Vec::new();
        I3Packet::Ping { nonce: 1 }.encode(&mut ping);
        assert!(matches!(DataView::parse(&ping), Ok(None)));
        for n in [0u8, 5] {
            let mut bad = raw.clone();
            bad[4] = n;
            assert_eq!(DataView::parse(&bad).unwrap_err(), WireError::BadHeader);
        }
        assert_eq!(
            DataView::parse(&raw[..40]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn every_packet_round_trips() {
        let stack: Stack = [id(1), id(2)].into_iter().collect();
        let addr: SocketAddr = "192.0.2.1:4790".parse().unwrap();
        let all = [
            I3Packet::Data {
                flags: FLAG_RETURN,
                stack: stack.clone(),
                return_id: Some(id(9)),
                payload: b"hello",
            },
            I3Packet::Data {
                flags: 0,
                stack: stack.clone(),
                return_id: None,
                payload: b"",
            },
            I3Packet::Insert {
                lifetime_secs: 30,
                key: [5; KEY_LEN],
                id: id(3),
                target: stack,
            },
            I3Packet::Ack {
                lifetime_secs: 30,
                id: id(3),
                observed: "[2001:db8::1]:9".parse().unwrap(),
            },
            I3Packet::Remove {
                key: [5; KEY_LEN],
                id: id(3),
            },
            I3Packet::Ping { nonce: 77 },
            I3Packet::Pong {
                nonce: 77,
                observed: addr,
            },
            I3Packet::Refused {
                id: id(3),
                reason: Refusal::Taken,
            },
            I3Packet::Shortcut { id: id(3), addr },
            I3Packet::Probe {
                nonce: 5,
                id: id(7),
            },
            I3Packet::ProbeAck {
                nonce: 5,
                id: id(7),
            },
        ];
        for p in all {
            let mut b = Vec::new();
            p.encode(&mut b);
            assert_eq!(I3Packet::parse(&b), Ok(p.clone()), "{p:?}");
            // Every strict prefix is refused as data, not a panic (DATA's payload may be empty).
            for cut in 0..b.len() {
                if let Ok(q) = I3Packet::parse(&b[..cut]) {
                    assert!(matches!(q, I3Packet::Data { .. }), "{q:?} from {cut} bytes");
                }
            }
        }
    }

    #[test]
    fn header_writer_matches_the_encoder() {
        let mut a = Vec::new();
        I3Packet::Data {
            flags: 0,
            stack: [id(4)].into_iter().collect(),
            return_id: Some(id(6)),
            payload: b"xy",
        }
        .encode(&mut a);
        let mut b = vec![0u8; data_header_len(1, true)];
        write_data_header(&mut b, 0, &[id(4)], Some(&id(6)));
        b.extend_from_slice(b"xy");
        assert_eq!(a, b);
    }

    #[test]
    fn bad_stacks_and_versions_are_refused() {
        let mut b = Vec::new();
        I3Packet::Ping { nonce: 1 }.encode(&mut b);
        b[1] = 2;
        assert_eq!(I3Packet::parse(&b), Err(WireError::BadVersion));
        // A DATA packet with an empty or too deep stack.
        for n in [0u8, 5] {
            let raw = [MAGIC, VERSION, DATA, 0, n];
            assert_eq!(I3Packet::parse(&raw), Err(WireError::BadHeader));
        }
        assert!(I3Packet::parse(&[]).is_err());
    }

    proptest::proptest! {
        /// Any DATA bytes: an error, or a view whose parts are where the header says.
        #[test]
        fn data_view_never_panics(flags in 0u8..8, n in 0u8..6, rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut b = vec![MAGIC, VERSION, DATA, flags, n];
            b.extend_from_slice(&rest);
            if let Ok(Some(v)) = DataView::parse(&b) {
                let with_return = usize::from(v.return_id.is_some());
                let head = data_header_len(v.stack().len(), with_return == 1);
                proptest::prop_assert_eq!(v.payload.len(), b.len() - head);
                let mut copy = b.clone();
                rewrite_top(&mut copy, v.flags, &v.top);
                proptest::prop_assert_eq!(copy, b);
            }
        }
    }
}
