//! Engine → TUN: the packets the engine delivers to local apps in one batch often are
//! consecutive segments of one TCP flow. Joined into one super-packet with a `virtio_net_hdr`
//! that says "TCP, cut at this size, checksum partial", the kernel takes them in one write
//! and hands them to the local socket as one (the receive half of GRO, done in software).
//!
//! Only what the kernel's own GRO would join is joined: same flow and headers, consecutive
//! sequence numbers, only ACK (and PSH, which ends a run) set, equal sizes but a shorter
//! last one, valid checksums (a join gets a fresh checksum, so a corrupt segment must not
//! slip in), at most 64 KiB. Segments the engine opened on a secure path are not summed
//! again ([`ocala_engine::Packet::authentic`]): the path's tag or MAC already proved them
//! what the peer's ocala sent, with the checksums it completed, and summing every payload
//! byte cost about 5 % of a receiving daemon's CPU.

use super::tcp::{self, Layout};
use super::vnet::{self, VnetHdr};

/// Flows joined at once; a batch rarely holds more, and the oldest is written when it does.
const MAX_FLOWS: usize = 8;
/// Largest IP packet a super-packet may become.
const MAX_TOTAL: usize = 65_535;
/// Header of a packet written as it came.
const PLAIN: [u8; vnet::LEN] = [0; vnet::LEN];

/// One run of segments being joined.
struct Run {
    /// `vnet::LEN` bytes of room for the header, then the first segment's packet and every
    /// later segment's payload.
    buf: Vec<u8>,
    layout: Layout,
    next_seq: u32,
    /// Payload size of the first segment: every later one but the last has it too.
    mss: usize,
    segments: usize,
    /// A short or PSH segment ended the run.
    closed: bool,
}

/// What the coalescer did, for `ocala status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoalesceStats {
    /// Writes to the TUN, joined or not.
    pub writes: u64,
    /// Packets that went out inside a joined super-packet.
    pub joined: u64,
}

/// Joins TCP segments on their way to the TUN. `write` gets a header and a packet.
#[derive(Default)]
pub struct Coalescer {
    runs: Vec<Run>,
    spare: Vec<Vec<u8>>,
    pub stats: CoalesceStats,
}

/// Whether `packet` is a TCP data segment that may join a run, and its layout. Its
/// checksums are checked unless it is `authentic`.
fn joinable(packet: &[u8], authentic: bool) -> Option<Layout> {
    let l = Layout::of(packet, None)?;
    let ip_len = if l.v6 {
        usize::from(tcp::get16(packet, 4)) + 40
    } else {
        usize::from(tcp::get16(packet, 2))
    };
    let flags = *packet.get(l.l4 + 13)?;
    let only_ack = flags & !tcp::PSH == tcp::ACK;
    let ok = ip_len == packet.len()
        && only_ack
        && packet.len() > l.payload
        && (!l.v6 || l.l4 == 40)
        && (authentic || l.checksums_hold(packet));
    ok.then_some(l)
}

/// Whether two packets with the same layout belong to the same flow.
fn same_flow(l: &Layout, a: &[u8], b: &[u8]) -> bool {
    let addrs = if l.v6 { 8..40 } else { 12..20 };
    let ports = l.l4..l.l4 + 4;
    a.get(addrs.clone()) == b.get(addrs) && a.get(ports.clone()) == b.get(ports)
}

/// Whether every header field but those that differ between segments of one send is equal:
/// not the lengths, IPv4 ID and checksums, sequence number, PSH or TCP checksum.
fn same_headers(l: &Layout, a: &[u8], b: &[u8]) -> bool {
    let eq = |r: std::ops::Range<usize>| a.get(r.clone()) == b.get(r);
    let ip = if l.v6 {
        eq(0..4) && eq(6..l.l4)
    } else {
        eq(0..2) && eq(6..10) && eq(12..l.l4)
    };
    let t = l.l4;
    let flags = |p: &[u8]| p.get(t + 13).map(|f| f & !tcp::PSH);
    ip && eq(t..t + 4)
        && eq(t + 8..t + 13)
        && flags(a) == flags(b)
        && eq(t + 14..t + 16)
        && eq(t + 18..l.payload)
}

impl Run {
    fn packet(&self) -> &[u8] {
        self.buf.get(vnet::LEN..).unwrap_or(&[])
    }

    fn accepts(&self, l: &Layout, packet: &[u8]) -> bool {
        let len = packet.len() - l.payload;
        !self.closed
            && *l == self.layout
            && tcp::get32(packet, l.l4 + 4) == self.next_seq
            && len <= self.mss
            && self.packet().len() + len <= MAX_TOTAL
            && same_headers(l, self.packet(), packet)
    }

    fn append(&mut self, l: &Layout, packet: &[u8]) {
        let payload = packet.get(l.payload..).unwrap_or(&[]);
        self.buf.extend_from_slice(payload);
        self.next_seq = self.next_seq.wrapping_add(payload.len() as u32);
        self.segments += 1;
        let psh = packet.get(l.l4 + 13).is_some_and(|f| f & tcp::PSH != 0);
        if psh {
            if let Some(f) = self.buf.get_mut(vnet::LEN + l.l4 + 13) {
                *f |= tcp::PSH;
            }
        }
        self.closed = psh || payload.len() < self.mss;
    }
}

impl Coalescer {
    /// Takes one packet bound for the TUN: joins it to its flow's run, or writes what must go
    /// before it and then it. An `authentic` packet (opened on a secure path) joins without
    /// its checksums being summed again.
    pub fn push(&mut self, packet: &[u8], authentic: bool, write: &mut impl FnMut(&[u8], &[u8])) {
        let Some(l) = joinable(packet, authentic) else {
            // A TCP packet that cannot join (SYN, FIN, pure ACK, ...) must not overtake its
            // flow's run.
            if let Some(l) = Layout::of(packet, None) {
                if let Some(i) = self.run_of(&l, packet) {
                    self.write_run(i, write);
                }
            }
            self.stats.writes += 1;
            write(&PLAIN, packet);
            return;
        };
        match self.run_of(&l, packet) {
            Some(i) if self.runs[i].accepts(&l, packet) => self.runs[i].append(&l, packet),
            Some(i) => {
                self.write_run(i, write);
                self.start(l, packet);
            }
            None => {
                if self.runs.len() == MAX_FLOWS {
                    self.write_run(0, write);
                }
                self.start(l, packet);
            }
        }
    }

    /// Writes every open run; called at the end of a batch.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8], &[u8])) {
        while !self.runs.is_empty() {
            self.write_run(0, write);
        }
    }

    fn run_of(&self, l: &Layout, packet: &[u8]) -> Option<usize> {
        self.runs
            .iter()
            .position(|r| r.layout.v6 == l.v6 && same_flow(l, r.packet(), packet))
    }

    fn start(&mut self, l: Layout, packet: &[u8]) {
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(vnet::LEN + MAX_TOTAL));
        buf.clear();
        buf.extend_from_slice(&PLAIN);
        buf.extend_from_slice(packet);
        let len = packet.len() - l.payload;
        let flags = packet.get(l.l4 + 13).copied().unwrap_or(0);
        self.runs.push(Run {
            buf,
            layout: l,
            next_seq: tcp::get32(packet, l.l4 + 4).wrapping_add(len as u32),
            mss: len,
            segments: 1,
            closed: flags & tcp::PSH != 0,
        });
    }

    fn write_run(&mut self, i: usize, write: &mut impl FnMut(&[u8], &[u8])) {
        let mut run = self.runs.remove(i);
        let l = run.layout;
        self.stats.writes += 1;
        if run.segments > 1 {
            self.stats.joined += run.segments as u64;
            let (head, packet) = run.buf.split_at_mut(vnet::LEN);
            let total = packet.len();
            l.set_ip(packet, total, None);
            // A partial checksum: the pseudo-header's sum, which the kernel completes.
            let partial = ocala_engine::wire::checksum::fold(l.pseudo(packet, total - l.l4));
            tcp::put16(packet, l.l4 + 16, partial);
            let hdr = VnetHdr {
                flags: vnet::NEEDS_CSUM,
                gso_type: if l.v6 {
                    vnet::GSO_TCPV6
                } else {
                    vnet::GSO_TCPV4
                },
                hdr_len: l.payload as u16,
                gso_size: run.mss as u16,
                csum_start: l.l4 as u16,
                csum_offset: 16,
            };
            head.copy_from_slice(&hdr.encode());
        }
        let (head, packet) = run.buf.split_at(vnet::LEN);
        write(head, packet);
        self.spare.push(run.buf);
    }
}
