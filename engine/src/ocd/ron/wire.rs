//! RON packets on the overlay socket. Every datagram starts `[0x52 'R'][version 1][type]`;
//! fields are big-endian. Members are named by a 64-bit id, the BLAKE2s hash of their overlay
//! name, so no member list order has to agree between nodes. Byte-exact vectors live in
//! `vectors/`.
//!
//! ```text
//! DATA   flags src:u64 dst:u64 src_tunnel:u16 dst_tunnel:u16 metric:u8 payload
//! PROBE  src:u64 seq:u32 mac:16                          member → member
//! ACK    src:u64 seq:u32 mac:16                          the probed member's answer
//! LINKS  src:u64 version:u32 n:u8 (peer:u64 rtt_us:u32 loss_pm:u16)*n mac:16
//! ```
//! PROBE, ACK and LINKS steer routes, so each carries a keyed BLAKE2s-128 MAC over all the
//! bytes before it (the members' shared `auth_key`): an outsider can neither fake a link's
//! health nor announce link state. DATA carries OCALA messages, which OC-I protects end to end;
//! it is relayed only between members and at most once.

use crate::wire::bytes::Cursor;
use crate::wire::WireError;
use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::Blake2sMac;

/// First byte of every RON datagram.
pub const MAGIC: u8 = 0x52;
/// The version this implementation speaks.
pub const VERSION: u8 = 1;
/// Length of a MAC.
pub const MAC_LEN: usize = 16;
/// Bytes in front of a DATA payload.
pub const DATA_HEADER_LEN: usize = 25;
/// Most links one LINKS message reports.
pub const MAX_LINKS: usize = 255;
/// `loss_pm` of a link its reporter considers down.
pub const LOSS_DOWN: u16 = 1000;

/// DATA flag: an intermediate member already relayed this packet (it is not relayed again).
pub const FLAG_RELAYED: u8 = 0x01;

const DATA: u8 = 1;
const PROBE: u8 = 2;
const ACK: u8 = 3;
const LINKS: u8 = 4;

/// What a member measured of its direct link to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkReport {
    pub peer: u64,
    /// Smoothed round-trip time in microseconds.
    pub rtt_us: u32,
    /// Probes lost, per mille; [`LOSS_DOWN`] when the link is down.
    pub loss_pm: u16,
}

/// The fixed part of a DATA packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub flags: u8,
    pub src: u64,
    pub dst: u64,
    /// The sender's tunnel, so answers come back to it.
    pub src_tunnel: u16,
    /// The receiver's tunnel, once the sender knows it (0 before).
    pub dst_tunnel: u16,
    /// The metric the sender's tunnel routes by; the answering side uses it too.
    pub metric: u8,
}

/// One RON packet, borrowing from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RonPacket<'a> {
    Data(DataHeader, &'a [u8]),
    Probe {
        src: u64,
        seq: u32,
    },
    Ack {
        src: u64,
        seq: u32,
    },
    Links {
        src: u64,
        version: u32,
        links: Vec<LinkReport>,
    },
}

/// The MAC key: members' shared `auth_key`.
pub type Key = [u8; 32];

fn keyed(key: &Key, bytes: &[u8]) -> Blake2sMac<U16> {
    let mut m = <Blake2sMac<U16> as KeyInit>::new(key.into());
    Update::update(&mut m, bytes);
    m
}

fn mac(key: &Key, bytes: &[u8]) -> [u8; MAC_LEN] {
    keyed(key, bytes).finalize_fixed().into()
}

fn verify(key: &Key, bytes: &[u8], tag: &[u8]) -> bool {
    keyed(key, bytes).verify_slice(tag).is_ok()
}

/// Why a datagram is not a usable RON packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    Malformed(WireError),
    /// The MAC did not verify: not from a member, or altered.
    BadMac,
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> ReadError {
        ReadError::Malformed(e)
    }
}

impl<'a> RonPacket<'a> {
    /// Parses a datagram and checks the MAC of control packets with `key`.
    pub fn parse(b: &'a [u8], key: &Key) -> Result<RonPacket<'a>, ReadError> {
        RonPacket::read(b, Some(key))
    }

    /// Parses a datagram without checking MACs: for logs of what went over the wire, never
    /// for routing.
    pub fn parse_unverified(b: &'a [u8]) -> Result<RonPacket<'a>, ReadError> {
        RonPacket::read(b, None)
    }

    fn read(b: &'a [u8], key: Option<&Key>) -> Result<RonPacket<'a>, ReadError> {
        let mut r = Cursor(b);
        let kind = r.header(MAGIC, VERSION)?;
        if kind == DATA {
            let h = DataHeader {
                flags: r.u8()?,
                src: r.u64()?,
                dst: r.u64()?,
                src_tunnel: r.u16()?,
                dst_tunnel: r.u16()?,
                metric: r.u8()?,
            };
            return Ok(RonPacket::Data(h, r.0));
        }
        let body_len = b.len().checked_sub(MAC_LEN).ok_or(WireError::Truncated)?;
        let (body, tag) = b.split_at(body_len);
        let mut r = Cursor(body.get(3..).ok_or(WireError::Truncated)?);
        let p = match kind {
            PROBE => RonPacket::Probe {
                src: r.u64()?,
                seq: r.u32()?,
            },
            ACK => RonPacket::Ack {
                src: r.u64()?,
                seq: r.u32()?,
            },
            LINKS => {
                let src = r.u64()?;
                let version = r.u32()?;
                let n = usize::from(r.u8()?);
                let mut links = Vec::with_capacity(n);
                for _ in 0..n {
                    links.push(LinkReport {
                        peer: r.u64()?,
                        rtt_us: r.u32()?,
                        loss_pm: r.u16()?.min(LOSS_DOWN),
                    });
                }
                RonPacket::Links {
                    src,
                    version,
                    links,
                }
            }
            t => return Err(WireError::UnknownType(t).into()),
        };
        r.end()?;
        if key.is_some_and(|k| !verify(k, body, tag)) {
            return Err(ReadError::BadMac);
        }
        Ok(p)
    }

    /// Appends the packet's bytes (and, for control packets, the MAC under `key`) to `out`.
    pub fn encode(&self, key: &Key, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[MAGIC, VERSION]);
        match self {
            RonPacket::Data(h, payload) => {
                out.resize(start + DATA_HEADER_LEN, 0);
                write_data_header(&mut out[start..], h);
                out.extend_from_slice(payload);
                return;
            }
            RonPacket::Probe { src, seq } | RonPacket::Ack { src, seq } => {
                out.push(if matches!(self, RonPacket::Probe { .. }) {
                    PROBE
                } else {
                    ACK
                });
                out.extend_from_slice(&src.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
            }
            RonPacket::Links {
                src,
                version,
                links,
            } => {
                out.push(LINKS);
                out.extend_from_slice(&src.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                let n = links.len().min(MAX_LINKS);
                out.push(n as u8);
                for l in &links[..n] {
                    out.extend_from_slice(&l.peer.to_be_bytes());
                    out.extend_from_slice(&l.rtt_us.to_be_bytes());
                    out.extend_from_slice(&l.loss_pm.to_be_bytes());
                }
            }
        }
        let tag = mac(key, &out[start..]);
        out.extend_from_slice(&tag);
    }
}

/// Writes a DATA header into the [`DATA_HEADER_LEN`] bytes in front of a payload.
pub fn write_data_header(buf: &mut [u8], h: &DataHeader) {
    let start = [MAGIC, VERSION, DATA, h.flags];
    let fields = [
        start.as_slice(),
        &h.src.to_be_bytes(),
        &h.dst.to_be_bytes(),
        &h.src_tunnel.to_be_bytes(),
        &h.dst_tunnel.to_be_bytes(),
        &[h.metric],
    ];
    let mut at = 0;
    for f in fields {
        if let Some(d) = buf.get_mut(at..at + f.len()) {
            d.copy_from_slice(f);
        }
        at += f.len();
    }
}

/// Whether a datagram is RON control traffic (probe, answer, link state): the overhead
/// RON adds to the data it carries.
pub fn is_control(datagram: &[u8]) -> bool {
    datagram.first() == Some(&MAGIC) && datagram.get(2).is_some_and(|&t| t != DATA)
}

/// Marks a copy of a DATA datagram as relayed (what an intermediate member changes).
pub fn set_relayed(datagram: &mut [u8]) {
    if let Some(f) = datagram.get_mut(3) {
        *f |= FLAG_RELAYED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [9; 32];

    fn round_trip(p: RonPacket<'_>) {
        let mut b = Vec::new();
        p.encode(&KEY, &mut b);
        assert_eq!(RonPacket::parse(&b, &KEY), Ok(p.clone()));
        for cut in 0..b.len() {
            assert!(
                RonPacket::parse(&b[..cut], &KEY).is_err(),
                "{p:?} cut at {cut}"
            );
        }
    }

    #[test]
    fn every_packet_round_trips_and_truncation_is_an_error() {
        let h = DataHeader {
            flags: FLAG_RELAYED,
            src: 1,
            dst: 2,
            src_tunnel: 3,
            dst_tunnel: 4,
            metric: 1,
        };
        let mut b = Vec::new();
        RonPacket::Data(h, b"payload").encode(&KEY, &mut b);
        assert_eq!(b.len(), DATA_HEADER_LEN + 7);
        assert_eq!(
            RonPacket::parse(&b, &KEY),
            Ok(RonPacket::Data(h, b"payload"))
        );
        let mut head = [0u8; DATA_HEADER_LEN];
        write_data_header(&mut head, &h);
        assert_eq!(&head[..], &b[..DATA_HEADER_LEN]);
        round_trip(RonPacket::Probe { src: 7, seq: 8 });
        round_trip(RonPacket::Ack { src: 7, seq: 8 });
        round_trip(RonPacket::Links {
            src: 7,
            version: 3,
            links: vec![LinkReport {
                peer: 5,
                rtt_us: 12_000,
                loss_pm: 20,
            }],
        });
    }

    #[test]
    fn control_packets_need_the_members_key() {
        let mut b = Vec::new();
        RonPacket::Ack { src: 7, seq: 8 }.encode(&KEY, &mut b);
        assert_eq!(RonPacket::parse(&b, &[1; 32]), Err(ReadError::BadMac));
        let mut forged = b.clone();
        forged[8] ^= 1;
        assert_eq!(RonPacket::parse(&forged, &KEY), Err(ReadError::BadMac));
    }

    proptest::proptest! {
        /// Any bytes after a RON header: an error or a packet that encodes back to them, and
        /// a control packet only with the members' MAC.
        #[test]
        fn parse_never_panics(kind in 0u8..6, rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut b = vec![MAGIC, VERSION, kind];
            b.extend_from_slice(&rest);
            for key in [&KEY, &[1; 32]] {
                if let Ok(p) = RonPacket::parse(&b, key) {
                    let mut out = Vec::new();
                    p.encode(key, &mut out);
                    if matches!(p, RonPacket::Links { .. }) {
                        // Loss above LOSS_DOWN reads as LOSS_DOWN.
                        proptest::prop_assert_eq!(out.len(), b.len());
                    } else {
                        proptest::prop_assert_eq!(&out, &b);
                    }
                }
            }
            let _ = RonPacket::parse_unverified(&b);
        }
    }
}
