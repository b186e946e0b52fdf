//! The send half of the data path: a batch of the engine's outputs leaves as datagrams (runs
//! of equal size to one peer as one GSO send) and TUN writes (TCP segments of one flow joined
//! into one super-packet). It owns no engine state, so it can run on its own thread
//! ([`super::writer`]) while the engine works on the next batch.

use crate::offload::coalesce::{Coalescer, Delivered, Packets};
use crate::offload::vnet;
use crate::socket::{OverlaySocket, RecvBufs, MAX_TRAIN};
use crate::tun::Tun;
use arrayvec::ArrayVec;
use ocala_engine::security::MAX_DATA_OVERHEAD;
use ocala_engine::{Ecn, Engine, OverlayId, Packet, PartialChecksum};
use std::io::IoSlice;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

/// Largest UDP payload one GSO send may carry.
const GSO_BYTES: usize = 65_000;

/// How many full-size data messages — a packet of `mtu` bytes, sealed, behind its data
/// header — one GSO send carries: what a TUN super-packet should hold at most, so that it
/// leaves in one send ([`crate::tun::Tun::segments`]).
pub fn segments_per_send(mtu: u16) -> u32 {
    let datagram = usize::from(mtu) + MAX_DATA_OVERHEAD;
    let segments = (GSO_BYTES / datagram).clamp(1, MAX_TRAIN);
    segments as u32
}

/// A datagram the engine asked to send.
pub struct Pending {
    overlay: usize,
    to: SocketAddr,
    payload: Packet,
    ecn: Ecn,
}

/// A packet for local apps.
enum Local {
    /// In a buffer of the engine's.
    Built(Packet),
    /// Where it arrived ([`ocala_engine::Output::WriteTunInPlace`]): bytes `range` of the
    /// batch's receive buffer `buffer`.
    Lent {
        buffer: usize,
        range: Range<usize>,
        partial: Option<PartialChecksum>,
    },
}

/// The engine's outputs of one batch, owned: the buffers go back to the engine
/// ([`Batch::recycle`]) once written, and the receive buffers that packets delivered in
/// place lie in travel with it until then.
#[derive(Default)]
pub struct Batch {
    tx: Vec<Pending>,
    tun: Vec<Local>,
    /// Receive buffers that packets of `tun` lie in.
    received: Vec<Vec<u8>>,
    /// Receive buffers written out, to take the place of the next ones kept.
    spare: Vec<Vec<u8>>,
}

impl Batch {
    /// Queues a datagram for overlay `overlay`, to leave with ECN field `ecn`.
    pub fn transmit(&mut self, overlay: OverlayId, to: SocketAddr, payload: Packet, ecn: Ecn) {
        self.tx.push(Pending {
            overlay: usize::from(overlay.0),
            to,
            payload,
            ecn,
        });
    }

    /// Queues a packet for local apps.
    pub fn deliver(&mut self, packet: Packet) {
        self.tun.push(Local::Built(packet));
    }

    /// Keeps a receive buffer until the batch is written; its number, for
    /// [`Self::deliver_lent`].
    pub fn keep(&mut self, buffer: Vec<u8>) -> usize {
        self.received.push(buffer);
        self.received.len() - 1
    }

    /// A receive buffer kept ([`Self::keep`]).
    pub fn kept(&self, buffer: usize) -> Option<&[u8]> {
        self.received.get(buffer).map(Vec::as_slice)
    }

    /// A buffer to receive into in place of one kept.
    pub fn spare(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(RecvBufs::spare)
    }

    /// Queues a packet for local apps that lies in kept buffer `buffer`, at `range`.
    pub fn deliver_lent(
        &mut self,
        buffer: usize,
        range: Range<usize>,
        partial: Option<PartialChecksum>,
    ) {
        self.tun.push(Local::Lent {
            buffer,
            range,
            partial,
        });
    }

    /// Datagrams and packets queued.
    pub fn len(&self) -> usize {
        self.tx.len() + self.tun.len()
    }

    /// Gives every buffer back to the engine's pool, and the receive buffers to the spares,
    /// keeping the batch's capacity.
    pub fn recycle(&mut self, engine: &mut Engine) {
        for p in self.tx.drain(..) {
            engine.recycle(p.payload);
        }
        for p in self.tun.drain(..) {
            if let Local::Built(p) = p {
                engine.recycle(p);
            }
        }
        self.spare.append(&mut self.received);
    }
}

impl Packets for Batch {
    fn count(&self) -> usize {
        self.tun.len()
    }

    fn packet(&self, i: usize) -> Option<&[u8]> {
        match self.tun.get(i)? {
            Local::Built(p) => Some(p),
            Local::Lent { buffer, range, .. } => self.kept(*buffer)?.get(range.clone()),
        }
    }

    fn about(&self, i: usize) -> Delivered {
        match self.tun.get(i) {
            Some(Local::Built(p)) => Delivered {
                authentic: p.authentic(),
                partial: p.partial_checksum(),
            },
            Some(&Local::Lent { partial, .. }) => Delivered {
                authentic: false,
                partial,
            },
            None => Delivered::default(),
        }
    }
}

/// What the send half did, for `ocala status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EgressStats {
    pub tun_writes: u64,
    pub tun_joined: u64,
    pub udp_sends: u64,
    pub udp_datagrams_out: u64,
    pub udp_send_errors: u64,
}

/// The sockets' and the TUN's sending sides, with the buffers that join what leaves.
pub struct Egress {
    tun: Option<Arc<Tun>>,
    sockets: Arc<[OverlaySocket]>,
    coalescer: Coalescer,
    stats: EgressStats,
}

impl Egress {
    pub fn new(tun: Option<Arc<Tun>>, sockets: Arc<[OverlaySocket]>) -> Egress {
        let coalescer = Coalescer::new(tun.as_deref().is_some_and(Tun::uso));
        Egress {
            tun,
            sockets,
            coalescer,
            stats: EgressStats::default(),
        }
    }

    /// The counters, with the coalescer's.
    pub fn stats(&self) -> EgressStats {
        EgressStats {
            tun_writes: self.stats.tun_writes + self.coalescer.stats.writes,
            tun_joined: self.coalescer.stats.joined,
            ..self.stats
        }
    }

    /// Writes a batch out: every datagram, runs of equal size to one peer as one GSO send,
    /// and every packet for local apps, joined per TCP (and UDP) flow when the TUN takes
    /// super-packets.
    pub fn write(&mut self, batch: &Batch) {
        let mut i = 0;
        while i < batch.tx.len() {
            let end = self.run_end(&batch.tx, i);
            self.send_run(&batch.tx[i..end]);
            i = end;
        }
        let Some(tun) = &self.tun else {
            return;
        };
        if tun.offload() {
            self.coalescer
                .write(batch, &mut |parts| write_tun(tun, parts));
        } else {
            // Without offloads the kernel was not asked to take super-packets.
            for i in 0..batch.count() {
                let Some(p) = batch.packet(i) else { continue };
                self.stats.tun_writes += 1;
                write_tun(tun, &[IoSlice::new(&[0; vnet::LEN]), IoSlice::new(p)]);
            }
        }
    }

    /// Where the GSO run starting at `i` ends: datagrams to one peer on one overlay with one
    /// ECN field (a send has one IP header to copy), all of the first one's size but the
    /// last, which may be shorter, within the kernel's limits.
    fn run_end(&self, tx: &[Pending], i: usize) -> usize {
        let first = &tx[i];
        let size = first.payload.len();
        let max = self
            .sockets
            .get(first.overlay)
            .map_or(1, OverlaySocket::gso_segments)
            .min(GSO_BYTES / size.max(1))
            .max(1);
        let mut end = i + 1;
        while end < tx.len()
            && end - i < max
            && tx[end].overlay == first.overlay
            && tx[end].to == first.to
            && tx[end].ecn == first.ecn
            && tx[end].payload.len() <= size
        {
            end += 1;
            // Only the last of a run may be shorter.
            if tx[end - 1].payload.len() < size {
                break;
            }
        }
        end
    }

    /// Sends one run, all to one peer and all but the last of one size, straight from the
    /// engine's buffers.
    fn send_run(&mut self, run: &[Pending]) {
        let Some(first) = run.first() else {
            return;
        };
        let Some(sock) = self.sockets.get(first.overlay) else {
            return;
        };
        let datagrams: ArrayVec<IoSlice<'_>, MAX_TRAIN> = run
            .iter()
            .map(|p| IoSlice::new(&p.payload))
            .take(MAX_TRAIN)
            .collect();
        let result = sock.send_train(first.to, &datagrams, first.ecn);
        self.stats.udp_sends += 1;
        match result {
            Ok(()) => self.stats.udp_datagrams_out += run.len() as u64,
            Err(e) => {
                self.stats.udp_send_errors += 1;
                tracing::debug!("sending {} datagram(s) to {}: {e}", run.len(), first.to);
            }
        }
    }
}

fn write_tun(tun: &Tun, parts: &[IoSlice<'_>]) {
    if let Err(e) = tun.send(parts) {
        tracing::debug!("writing TUN: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_buffers_travel_with_their_batch_and_come_back_as_spares() {
        let mut batch = Batch::default();
        let kept = batch.keep(b"header|packet".to_vec());
        batch.deliver_lent(kept, 7..13, None);
        batch.deliver(Packet::from_slice(b"built"));
        assert_eq!(batch.count(), 2);
        assert_eq!(batch.packet(0), Some(&b"packet"[..]));
        assert_eq!(batch.packet(1), Some(&b"built"[..]));
        assert_eq!(batch.packet(2), None);
        assert_eq!(batch.about(0), Delivered::default());
        let mut engine = Engine::new(ocala_engine::Config::default(), [1; 32], Default::default())
            .expect("an engine");
        batch.recycle(&mut engine);
        assert_eq!((batch.len(), batch.count()), (0, 0));
        assert_eq!(batch.spare(), b"header|packet", "the kept buffer, back");
        assert_eq!(
            batch.spare().len(),
            RecvBufs::spare().len(),
            "then a new one"
        );
    }

    #[test]
    fn a_super_packet_of_full_size_segments_leaves_in_one_send() {
        // 1400-byte packets, sealed, are 1429-byte datagrams: 45 fit in 65000 bytes.
        assert_eq!(segments_per_send(1400), 45);
        for mtu in 1280..=9000 {
            let (n, datagram) = (segments_per_send(mtu) as usize, usize::from(mtu) + 29);
            assert!(n * datagram <= GSO_BYTES, "{mtu}");
            assert!((n + 1) * datagram > GSO_BYTES || n == MAX_TRAIN, "{mtu}");
        }
        assert_eq!(
            segments_per_send(576),
            MAX_TRAIN as u32,
            "the train's limit"
        );
        assert_eq!(segments_per_send(u16::MAX), 1, "one, even when none fits");
    }
}
