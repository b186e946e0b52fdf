//! Engine → TUN: the packets the engine delivers to local apps in one batch often are
//! consecutive segments of one TCP flow, or datagrams of one UDP flow. Joined into one
//! super-packet with a `virtio_net_hdr` that says "TCP (or UDP), cut at this size, checksum
//! partial", the kernel takes them in one write and hands them to the local socket as one, or
//! cuts them again on the way there (the receive half of GRO, done in software).
//!
//! Only what the kernel's own GRO would join is joined: same flow and headers, equal sizes
//! but a shorter last one, valid checksums (a join gets a fresh checksum, so a corrupt
//! segment must not slip in), at most 64 KiB and 64 segments; for TCP also consecutive
//! sequence numbers and only ACK (and PSH, which ends a run) set. UDP datagrams are joined
//! only where the TUN took UDP segmentation (USO, Linux 6.2), the kernel's sign that it
//! understands such a write. The joined write is vectored: one copy of the
//! first segment's headers, then every payload where the engine left it. Segments the engine
//! opened on a secure path are not summed again ([`ocala_engine::Packet::authentic`]): the
//! path's tag or MAC already proved them what the peer's ocala sent, with the checksums it
//! completed, and summing every payload byte cost about 5 % of a receiving daemon's CPU.
//! Nor are partial ones ([`ocala_engine::Packet::partial_checksum`]), which have no sum to
//! check: flagged on a secure path, or from a plain path in the partial form, whose sender
//! checked any checksum its kernel had completed and whose hops' UDP checksums covered it.

use super::layout::{self, Layout};
use super::vnet::{self, VnetHdr};
use arrayvec::ArrayVec;
use ocala_engine::PartialChecksum;
use std::io::IoSlice;
use std::ops::Deref;

/// Flows joined at once; a batch rarely holds more, and the oldest is written when it does.
const MAX_FLOWS: usize = 8;
/// Largest IP packet a super-packet may become.
const MAX_TOTAL: usize = 65_535;
/// Segments joined into one write at most: with 1200-byte segments 64 KiB comes first.
const MAX_SEGMENTS: usize = 64;
/// Longest headers of a joinable segment: IPv4 and TCP, each with 40 bytes of options.
const MAX_HEADERS: usize = 120;
/// Room for a [`shared_mask`]: the longest headers in whole eight-byte words.
const MASK_LEN: usize = MAX_HEADERS.div_ceil(8) * 8;
/// Header of a packet written as it came.
const PLAIN: [u8; vnet::LEN] = [0; vnet::LEN];

/// One run of segments being joined: the packets stay where they are (in the batch), and a
/// joined write is their payloads behind one copy of the first one's headers.
struct Run {
    /// Indices of the run's packets in the batch, in order.
    segments: ArrayVec<usize, MAX_SEGMENTS>,
    /// What the engine said of the first: how it is written if none joins it.
    first: Delivered,
    layout: Layout,
    next_seq: u32,
    /// Payload size of the first segment: every later one but the last has it too.
    mss: usize,
    /// IP length of the joined packet so far.
    total: usize,
    /// A segment with PSH joined: the joined packet carries it.
    psh: bool,
    /// A short or PSH segment ended the run.
    closed: bool,
    /// The header bits every segment shares with the first ([`shared_mask`]).
    shared: [u8; MASK_LEN],
}

/// What the engine said about a packet it delivers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Opened on a secure path ([`ocala_engine::Packet::authentic`]).
    pub authentic: bool,
    /// Its checksum is partial ([`ocala_engine::Packet::partial_checksum`]): it is written
    /// so, for the kernel to trust (and complete if it forwards the packet).
    pub partial: Option<PartialChecksum>,
}

impl Delivered {
    fn header(self) -> [u8; vnet::LEN] {
        match self.partial {
            None => PLAIN,
            Some(c) => VnetHdr {
                flags: vnet::NEEDS_CSUM,
                csum_start: c.start,
                csum_offset: c.offset,
                ..VnetHdr::default()
            }
            .encode(),
        }
    }
}

/// The packets of one batch for local apps, in order, and what the engine said of each.
pub trait Packets {
    fn count(&self) -> usize;
    /// Packet `i`'s bytes; `None` past the end.
    fn packet(&self, i: usize) -> Option<&[u8]>;
    fn about(&self, i: usize) -> Delivered;
}

/// Packets listed in a slice, with a rule for what the engine said of each.
pub struct Listed<'a, P, F> {
    pub packets: &'a [P],
    pub about: F,
}

impl<P: Deref<Target = [u8]>, F: Fn(&P) -> Delivered> Packets for Listed<'_, P, F> {
    fn count(&self) -> usize {
        self.packets.len()
    }

    fn packet(&self, i: usize) -> Option<&[u8]> {
        self.packets.get(i).map(|p| &**p)
    }

    fn about(&self, i: usize) -> Delivered {
        self.packets.get(i).map(&self.about).unwrap_or_default()
    }
}

/// What the coalescer did, for `ocala status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoalesceStats {
    /// Writes to the TUN, joined or not.
    pub writes: u64,
    /// Packets that went out inside a joined super-packet.
    pub joined: u64,
}

/// Joins TCP segments (and UDP datagrams, when told to) on their way to the TUN without
/// copying their payloads: `write` gets the parts of one write (a `virtio_net_hdr` first)
/// for one vectored write.
#[derive(Default)]
pub struct Coalescer {
    runs: Vec<Run>,
    /// UDP datagrams are joined too (the TUN took USO).
    udp: bool,
    pub stats: CoalesceStats,
}

/// The layout of a TCP or UDP packet, whatever it holds.
fn layout_of(packet: &[u8]) -> Option<Layout> {
    Layout::of(packet, layout::protocol(packet)?, None)
}

/// Whether `packet` is a TCP data segment or a UDP datagram that may join a run, and its
/// layout. Its checksums are checked unless it is authentic or partial (nothing to check).
fn joinable(packet: &[u8], about: Delivered, udp: bool) -> Option<Layout> {
    let l = layout_of(packet)?;
    let ip_len = if l.v6 {
        usize::from(layout::get16(packet, 4)) + 40
    } else {
        usize::from(layout::get16(packet, 2))
    };
    let kind_ok = if l.proto == layout::PROTO_TCP {
        let flags = *packet.get(l.l4 + 13)?;
        flags & !layout::PSH == layout::ACK
    } else {
        udp && usize::from(layout::get16(packet, l.l4 + 4)) == packet.len() - l.l4
    };
    let ok = ip_len == packet.len()
        && kind_ok
        && packet.len() > l.payload
        && l.payload <= MAX_HEADERS
        && (!l.v6 || l.l4 == 40)
        && (about.authentic || about.partial.is_some() || l.checksums_hold(packet));
    ok.then_some(l)
}

/// Whether two IP packets are of one IP version and between the same addresses, each the
/// same way.
fn same_hosts(a: &[u8], b: &[u8]) -> bool {
    let version = |p: &[u8]| p.first().map(|v| v >> 4);
    // Compared as fixed-size arrays (a word or four), not as slices of any length.
    match (version(a), version(b)) {
        (Some(4), Some(4)) => field::<8>(a, 12).is_some_and(|x| Some(x) == field::<8>(b, 12)),
        (Some(6), Some(6)) => field::<32>(a, 8).is_some_and(|x| Some(x) == field::<32>(b, 8)),
        _ => false,
    }
}

/// The `N` bytes of `p` at `at`, if it holds them.
fn field<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    p.get(at..at + N).and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// Whether two packets with the same layout belong to the same flow.
fn same_flow(l: &Layout, a: &[u8], b: &[u8]) -> bool {
    same_hosts(a, b) && field::<4>(a, l.l4).is_some_and(|x| Some(x) == field::<4>(b, l.l4))
}

/// The header bits that segments of one send share, as a mask over headers of layout `l`
/// (set where the bits must be equal): every field but the lengths, IPv4 ID and checksums,
/// sequence number, PSH and transport checksum. A run builds it once; each segment is
/// then compared eight bytes at a time ([`same_under`]).
fn shared_mask(l: &Layout) -> [u8; MASK_LEN] {
    let mut mask = [0u8; MASK_LEN];
    let mut keep = |r: std::ops::Range<usize>, bits: u8| {
        if let Some(m) = mask.get_mut(r) {
            m.fill(bits);
        }
    };
    if l.v6 {
        keep(0..4, 0xFF);
        keep(6..l.l4, 0xFF);
    } else {
        keep(0..2, 0xFF);
        keep(6..10, 0xFF);
        keep(12..l.l4, 0xFF);
    }
    let t = l.l4;
    keep(t..t + 4, 0xFF);
    if l.proto == layout::PROTO_TCP {
        keep(t + 8..t + 13, 0xFF);
        keep(t + 13..t + 14, !layout::PSH);
        keep(t + 14..t + 16, 0xFF);
        keep(t + 18..l.payload, 0xFF);
    }
    mask
}

/// Whether `a` and `b` agree wherever `mask` is set, over its first `len` bytes (both
/// packets hold at least that many; one that does not is not the same).
fn same_under(mask: &[u8; MASK_LEN], len: usize, a: &[u8], b: &[u8]) -> bool {
    let words = len.div_ceil(8) * 8;
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_ne_bytes);
    match (a.get(..words), b.get(..words), mask.get(..words)) {
        (Some(a), Some(b), Some(m)) => a
            .chunks_exact(8)
            .zip(b.chunks_exact(8))
            .zip(m.chunks_exact(8))
            .all(|((a, b), m)| (word(a) ^ word(b)) & word(m) == 0),
        // A payload too short to fill the last word: byte by byte.
        _ => (0..len).all(|i| match (a.get(i), b.get(i), mask.get(i)) {
            (Some(a), Some(b), Some(m)) => (a ^ b) & m == 0,
            _ => false,
        }),
    }
}

/// The bytes of packet `i` of the batch; none past its end.
fn at<P: Packets + ?Sized>(packets: &P, i: usize) -> &[u8] {
    packets.packet(i).unwrap_or(&[])
}

impl Run {
    fn accepts(&self, first: &[u8], l: &Layout, packet: &[u8]) -> bool {
        let len = packet.len() - l.payload;
        !self.closed
            && !self.segments.is_full()
            && *l == self.layout
            && (l.proto == layout::PROTO_UDP || layout::get32(packet, l.l4 + 4) == self.next_seq)
            && len <= self.mss
            && self.total + len <= MAX_TOTAL
            && same_under(&self.shared, l.payload, first, packet)
    }

    fn append(&mut self, i: usize, l: &Layout, packet: &[u8]) {
        let len = packet.len() - l.payload;
        self.segments.push(i);
        self.next_seq = self.next_seq.wrapping_add(len as u32);
        self.total += len;
        let psh = has_psh(l, packet);
        self.psh |= psh;
        self.closed = psh || len < self.mss;
    }
}

/// Whether `packet` is a TCP segment with PSH set.
fn has_psh(l: &Layout, packet: &[u8]) -> bool {
    l.proto == layout::PROTO_TCP && packet.get(l.l4 + 13).is_some_and(|f| f & layout::PSH != 0)
}

impl Coalescer {
    /// A coalescer that joins TCP segments, and UDP datagrams when `udp` is set.
    pub fn new(udp: bool) -> Coalescer {
        Coalescer {
            udp,
            ..Coalescer::default()
        }
    }

    /// Writes the packets of one batch, in order within each flow: segments that may join
    /// are joined, the rest written as they came. What the engine said of each counts:
    /// authentic ones join without their checksums being summed again, partial ones are
    /// written partial.
    pub fn write<P: Packets + ?Sized>(
        &mut self,
        packets: &P,
        write: &mut impl FnMut(&[IoSlice<'_>]),
    ) {
        for i in 0..packets.count() {
            self.push(packets, i, packets.about(i), write);
        }
        while !self.runs.is_empty() {
            self.write_run(packets, 0, write);
        }
    }

    /// Takes packet `i`: joins it to its flow's run, or writes what must go before it and
    /// then it.
    fn push<P: Packets + ?Sized>(
        &mut self,
        packets: &P,
        i: usize,
        about: Delivered,
        write: &mut impl FnMut(&[IoSlice<'_>]),
    ) {
        let packet = at(packets, i);
        let Some(l) = joinable(packet, about, self.udp) else {
            // A packet that cannot join (SYN, FIN, pure ACK, a datagram whose checksum fails,
            // ...) must not overtake its flow's run; nor a fragment, or a packet behind
            // IPv6 extension headers, whose ports cannot be read here: it may belong to any
            // run between the same two hosts, and those go first.
            match layout_of(packet) {
                Some(l) => {
                    if let Some(r) = self.run_of(packets, &l, packet) {
                        self.write_run(packets, r, write);
                    }
                }
                None => {
                    while let Some(r) = self
                        .runs
                        .iter()
                        .position(|r| same_hosts(at(packets, r.segments[0]), packet))
                    {
                        self.write_run(packets, r, write);
                    }
                }
            }
            self.stats.writes += 1;
            write(&[IoSlice::new(&about.header()), IoSlice::new(packet)]);
            return;
        };
        match self.run_of(packets, &l, packet) {
            Some(r) => {
                let run = &mut self.runs[r];
                let first = at(packets, run.segments[0]);
                if run.accepts(first, &l, packet) {
                    run.append(i, &l, packet);
                } else {
                    self.write_run(packets, r, write);
                    self.start(i, about, l, packet);
                }
            }
            None => {
                if self.runs.len() == MAX_FLOWS {
                    self.write_run(packets, 0, write);
                }
                self.start(i, about, l, packet);
            }
        }
    }

    fn run_of<P: Packets + ?Sized>(&self, packets: &P, l: &Layout, packet: &[u8]) -> Option<usize> {
        self.runs.iter().position(|r| {
            (r.layout.v6, r.layout.proto) == (l.v6, l.proto)
                && same_flow(l, at(packets, r.segments[0]), packet)
        })
    }

    fn start(&mut self, i: usize, first: Delivered, l: Layout, packet: &[u8]) {
        let mut segments = ArrayVec::new();
        segments.push(i);
        let psh = has_psh(&l, packet);
        self.runs.push(Run {
            segments,
            first,
            layout: l,
            next_seq: layout::get32(packet, l.l4 + 4)
                .wrapping_add((packet.len() - l.payload) as u32),
            mss: packet.len() - l.payload,
            total: packet.len(),
            psh,
            closed: psh,
            shared: shared_mask(&l),
        });
    }

    /// Writes run `r`: a lone segment as it came; joined ones as one super-packet, the first
    /// segment's headers (with the joined length, PSH if any had it, and the pseudo-header
    /// sum for the kernel to complete) and then every segment's payload where it lies. The
    /// kernel gives each piece of a UDP one its own length again when it cuts it.
    fn write_run<P: Packets + ?Sized>(
        &mut self,
        packets: &P,
        r: usize,
        write: &mut impl FnMut(&[IoSlice<'_>]),
    ) {
        let run = self.runs.remove(r);
        let first = at(packets, run.segments[0]);
        self.stats.writes += 1;
        if run.segments.len() == 1 {
            write(&[IoSlice::new(&run.first.header()), IoSlice::new(first)]);
            return;
        }
        self.stats.joined += run.segments.len() as u64;
        let l = run.layout;
        let mut head = [0u8; vnet::LEN + MAX_HEADERS];
        let (hdr, headers) = head.split_at_mut(vnet::LEN);
        let headers = &mut headers[..l.payload];
        headers.copy_from_slice(&first[..l.payload]);
        l.set_lengths(headers, run.total);
        if run.psh {
            headers[l.l4 + 13] |= layout::PSH;
        }
        // A partial checksum: the pseudo-header's sum, which the kernel completes.
        let partial = ocala_engine::wire::checksum::fold(l.pseudo(headers, run.total - l.l4));
        layout::put16(headers, l.l4 + l.checksum_offset(), partial);
        let gso = VnetHdr {
            flags: vnet::NEEDS_CSUM,
            gso_type: match (l.proto, l.v6) {
                (layout::PROTO_UDP, _) => vnet::GSO_UDP_L4,
                (_, true) => vnet::GSO_TCPV6,
                (_, false) => vnet::GSO_TCPV4,
            },
            hdr_len: l.payload as u16,
            gso_size: run.mss as u16,
            csum_start: l.l4 as u16,
            csum_offset: l.checksum_offset() as u16,
        };
        hdr.copy_from_slice(&gso.encode());
        let mut parts: ArrayVec<IoSlice<'_>, { MAX_SEGMENTS + 1 }> = ArrayVec::new();
        parts.push(IoSlice::new(&head[..vnet::LEN + l.payload]));
        for &s in &run.segments {
            parts.push(IoSlice::new(at(packets, s).get(l.payload..).unwrap_or(&[])));
        }
        write(&parts);
    }
}
