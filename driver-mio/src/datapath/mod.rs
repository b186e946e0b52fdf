//! The daemon's data path: the TUN and the overlay sockets, moved in batches. A TUN read may
//! be a 64 KiB TCP or UDP super-packet, cut into segments for the engine; the datagrams the
//! engine sends in reply to one read or one receive are queued and leave in as few `sendmsg`
//! calls as GSO allows; packets it delivers are joined per TCP (or UDP) flow before they are
//! written (`egress.rs`), on a second thread where `daemon.threads = 2` (`writer.rs`).
//!
//! The engine takes a receive's datagrams as one batch (`Engine::handle_batch`, payloads
//! borrowed from the read buffers) and a super-packet's segments as one batch too, fed one
//! by one as they are cut in place in the TUN's read buffer (`Engine::batch`); the daemon
//! then takes all the outputs of the read (`poll_output`) and only then makes the system
//! calls.

mod egress;
#[cfg(test)]
mod tests;
mod writer;

use crate::affinity;
use crate::offload::segment;
use crate::offload::vnet::{self, VnetHdr};
use crate::socket::{OverlaySocket, RecvBufs};
use crate::tun::Tun;
pub use egress::segments_per_send;
use egress::{Batch, Egress, EgressStats};
use ocala_engine::{Ecn, Engine, InPlace, Input, Instant, OverlayId, Packet, PartialChecksum};
use serde_json::{json, Value};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use writer::Writer;

/// Largest TUN read: a header and a 64 KiB super-packet.
const TUN_READ: usize = vnet::LEN + 65_536;

/// What the data path did and what the kernel offered, for `ocala status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DatapathStats {
    pub tun_offload: bool,
    /// The TUN also takes and hands over UDP super-packets (USO).
    pub tun_uso: bool,
    /// The most segments in a TUN super-packet, where the kernel took the limit.
    pub tun_segments: Option<u32>,
    pub udp_gso: usize,
    pub udp_gro: bool,
    /// Threads that make the data path's system calls (1, or 2 with the writer).
    pub threads: u8,
    /// The CPU each of those threads is pinned to (`daemon.cpus`), the engine thread's first.
    pub cpus: [Option<usize>; 2],
    pub tun_reads: u64,
    pub tun_packets_in: u64,
    /// Packets for local apps written from the receive buffer they arrived in, where the
    /// engine delivered them in place.
    pub tun_in_place: u64,
    pub bad_tun_reads: u64,
    pub udp_receives: u64,
    pub udp_datagrams_in: u64,
    pub sent: EgressStats,
    /// Batches the writer thread wrote (the rest the engine thread wrote itself).
    pub handed_off: u64,
}

impl DatapathStats {
    /// [`placement`] of these threads, for the daemon's log.
    pub fn where_threads_run(&self) -> String {
        let cpus: Vec<u64> = self.cpus.iter().flatten().map(|&c| c as u64).collect();
        placement(self.threads.into(), &cpus)
    }

    /// The `datapath` object of `ocala status --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "tun_offload": self.tun_offload,
            "tun_uso": self.tun_uso,
            "tun_segments": self.tun_segments,
            "udp_gso_segments": self.udp_gso,
            "udp_gro": self.udp_gro,
            "threads": self.threads,
            "cpus": self.cpus.iter().flatten().collect::<Vec<_>>(),
            "tun_reads": self.tun_reads,
            "tun_packets_in": self.tun_packets_in,
            "tun_writes": self.sent.tun_writes,
            "tun_joined": self.sent.tun_joined,
            "tun_in_place": self.tun_in_place,
            "bad_tun_reads": self.bad_tun_reads,
            "udp_receives": self.udp_receives,
            "udp_datagrams_in": self.udp_datagrams_in,
            "udp_sends": self.sent.udp_sends,
            "udp_datagrams_out": self.sent.udp_datagrams_out,
            "udp_send_errors": self.sent.udp_send_errors,
            "batches_handed_off": self.handed_off,
        })
    }
}

/// "2 thread(s) on CPUs 1, 0": how many threads the data path has and where they are pinned
/// (the engine thread's CPU first), for the log and `ocala status`.
pub fn placement(threads: u64, cpus: &[u64]) -> String {
    let list = placement_list(cpus.iter().copied());
    match cpus.len() {
        0 => format!("{threads} thread(s)"),
        1 => format!("{threads} thread(s) on CPU {list}"),
        _ => format!("{threads} thread(s) on CPUs {list}"),
    }
}

/// A refused `daemon.cpus`, with the thread, the CPU and those it could have had.
fn pinning(thread: &str, cpu: usize, e: io::Error) -> io::Error {
    let choice = match affinity::allowed() {
        Ok(cpus) => format!(
            " (this process may run on CPUs {})",
            placement_list(cpus.iter().map(|&c| c as u64))
        ),
        Err(_) => String::new(),
    };
    io::Error::new(
        e.kind(),
        format!("daemon.cpus: pinning the {thread} thread to CPU {cpu}: {e}{choice}"),
    )
}

/// "0, 1, 3": CPUs as the log and the status list them.
fn placement_list(cpus: impl Iterator<Item = u64>) -> String {
    cpus.map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
}

/// Who writes the batches out.
enum Sink {
    /// The engine thread, after each batch.
    Here(Egress),
    /// The writer thread, for batches worth handing over.
    Writer(Writer),
}

/// The TUN, the overlay sockets and their batch buffers.
pub struct Datapath {
    /// None in userspace mode, where the stack takes the engine's deliveries instead.
    pub tun: Option<Arc<Tun>>,
    sockets: Arc<[OverlaySocket]>,
    rx: RecvBufs,
    tun_buf: Vec<u8>,
    /// The outputs of the batch under way.
    out: Batch,
    /// The message being fed, whose datagrams the engine may deliver packets in place from.
    lending: Option<Lending>,
    sink: Sink,
    stats: DatapathStats,
}

/// The received message the engine is being fed, which packets it delivers in place lie
/// in ([`ocala_engine::InPlace`]).
struct Lending {
    /// Its number in the last receive.
    message: usize,
    /// The number of its buffer in the batch, once a packet in it was queued: the buffer
    /// travels with the batch until the batch is written, and a spare takes its place.
    kept: Option<usize>,
}

impl Datapath {
    /// The data path on `tun` and `sockets`; with `threads = 2` a writer thread makes the
    /// sends and TUN writes of large batches. Called on the engine thread, which it pins to
    /// the first of `cpus`, and the writer to the second (or the first), if any are given.
    pub fn new(
        tun: Option<Tun>,
        sockets: Vec<OverlaySocket>,
        threads: u8,
        cpus: &[usize],
    ) -> io::Result<Self> {
        let threads = threads.clamp(1, 2);
        let engine_cpu = cpus.first().copied();
        let writer_cpu = cpus
            .get(1)
            .or(cpus.first())
            .copied()
            .filter(|_| threads == 2);
        if let (Some(cpu), 1) = (cpus.get(1), threads) {
            tracing::warn!("daemon.cpus: CPU {cpu} is not used: the data path has one thread");
        }
        if let Some(cpu) = engine_cpu {
            affinity::pin_current(cpu).map_err(|e| pinning("engine", cpu, e))?;
        }
        let tun = tun.map(Arc::new);
        let sockets: Arc<[OverlaySocket]> = sockets.into();
        let stats = DatapathStats {
            tun_offload: tun.as_deref().is_some_and(Tun::offload),
            tun_uso: tun.as_deref().is_some_and(Tun::uso),
            tun_segments: tun.as_deref().and_then(Tun::segments),
            udp_gro: !sockets.is_empty() && sockets.iter().all(|s| s.gro()),
            threads,
            cpus: [engine_cpu, writer_cpu],
            ..DatapathStats::default()
        };
        let egress = Egress::new(tun.clone(), Arc::clone(&sockets));
        let sink = if threads == 2 {
            let writer = Writer::spawn(egress)?;
            if let Some(cpu) = writer_cpu {
                writer.pin(cpu).map_err(|e| pinning("writer", cpu, e))?;
            }
            Sink::Writer(writer)
        } else {
            Sink::Here(egress)
        };
        Ok(Datapath {
            tun,
            sockets,
            rx: RecvBufs::default(),
            tun_buf: vec![0; TUN_READ],
            out: Batch::default(),
            lending: None,
            sink,
            stats,
        })
    }

    /// The counters, with the send half's.
    pub fn stats(&self) -> DatapathStats {
        let (sent, handed_off) = match &self.sink {
            Sink::Here(e) => (e.stats(), 0),
            Sink::Writer(w) => w.stats(),
        };
        DatapathStats {
            sent,
            handed_off,
            // Read at each call: a socket whose trains the kernel refused sends one by one.
            udp_gso: self
                .sockets
                .iter()
                .map(OverlaySocket::gso_segments)
                .min()
                .unwrap_or(1),
            ..self.stats
        }
    }

    /// One TUN read, cut into packets and fed to the engine: how many packets it held.
    /// `WouldBlock` when none waits.
    pub fn read_tun(&mut self, engine: &mut Engine, now: Instant) -> io::Result<usize> {
        let Some(tun) = &self.tun else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = tun.recv(&mut self.tun_buf)?;
        self.stats.tun_reads += 1;
        let read = self.tun_buf.get_mut(..n).unwrap_or_default();
        let Some((hdr, packet)) = VnetHdr::parse(read) else {
            self.stats.bad_tun_reads += 1;
            return Ok(0);
        };
        // Only a clock running backwards fails here, and the clock is monotonic.
        let Ok(mut batch) = engine.batch(now) else {
            return Ok(0);
        };
        // Each segment goes in alone: the next one is cut over the tail of this one.
        let mut feed = |packet: &[u8], partial: Option<PartialChecksum>| {
            batch.input(match partial {
                Some(checksum) => Input::TunPartial { packet, checksum },
                None => Input::TunPacket(packet),
            });
        };
        match segment::split(&hdr, packet, &mut feed) {
            Ok(count) => {
                self.stats.tun_packets_in += count as u64;
                Ok(count)
            }
            Err(e) => {
                self.stats.bad_tun_reads += 1;
                tracing::debug!("TUN read of {n} bytes dropped: {e}");
                Ok(0)
            }
        }
    }

    /// One batched receive on overlay `index` of about `datagrams` datagrams, or of one
    /// message at least: how many messages to feed ([`Self::feed`]).
    pub fn receive(&mut self, index: usize, datagrams: usize) -> io::Result<usize> {
        let Some(sock) = self.sockets.get(index) else {
            return Ok(0);
        };
        let n = sock.recv(&mut self.rx, datagrams)?;
        self.stats.udp_receives += 1;
        Ok(n)
    }

    /// Feeds message `m` of the last receive on overlay `index` to the engine: how many
    /// datagrams it held.
    pub fn feed(&mut self, index: usize, m: usize, engine: &mut Engine, now: Instant) -> usize {
        let overlay = OverlayId(index as u16);
        let mut count = 0;
        let (queued, ecn) = (self.rx.queued(m), self.rx.ecn(m));
        self.lending = Some(Lending {
            message: m,
            kept: None,
        });
        let batch = self.rx.datagrams(m).map(|(from, payload)| {
            count += 1;
            Input::Datagram {
                overlay,
                from,
                payload,
                queued,
                ecn,
            }
        });
        let _ = engine.handle_batch(now, batch);
        self.stats.udp_datagrams_in += count as u64;
        count
    }

    /// Datagrams and packets queued for the next [`Self::flush`].
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// Queues a datagram the engine sent; it leaves at [`Self::flush`].
    pub fn transmit(&mut self, overlay: OverlayId, to: SocketAddr, payload: Packet, ecn: Ecn) {
        self.out.transmit(overlay, to, payload, ecn);
    }

    /// Queues a packet the engine delivers to local apps; it is written at [`Self::flush`],
    /// joined with its flow's other segments.
    pub fn deliver(&mut self, packet: Packet) {
        self.out.deliver(packet);
    }

    /// Where a packet the engine delivered in place from the message being fed lies.
    fn in_message(&self, d: &InPlace) -> Option<(&Lending, Range<usize>)> {
        let l = self.lending.as_ref()?;
        let start = self.rx.datagram_start(l.message, d.datagram)?;
        let range = start.checked_add(d.range.start)?..start.checked_add(d.range.end)?;
        Some((l, range))
    }

    /// The bytes of a packet the engine delivered in place from the message being fed.
    pub fn lent(&self, d: &InPlace) -> Option<&[u8]> {
        let (l, range) = self.in_message(d)?;
        match l.kept {
            Some(k) => self.out.kept(k)?.get(range),
            None => self.rx.buffer(l.message)?.get(range),
        }
    }

    /// Queues a packet the engine delivered in place for the next [`Self::flush`], written
    /// from the buffer it was received in, which goes with the batch until then.
    pub fn deliver_lent(&mut self, d: InPlace) {
        let Some((l, range)) = self.in_message(&d) else {
            tracing::debug!("a packet delivered in place outside its message: {d:?}");
            return;
        };
        let (message, kept) = (l.message, l.kept);
        let buffer = match kept {
            Some(k) => k,
            None => {
                let spare = self.out.spare();
                let Some(b) = self.rx.lend(message, spare) else {
                    return;
                };
                let k = self.out.keep(b);
                self.lending = Some(Lending {
                    message,
                    kept: Some(k),
                });
                k
            }
        };
        self.out.deliver_lent(buffer, range, d.partial);
        self.stats.tun_in_place += 1;
    }

    /// Ends a batch: its datagrams and packets leave, here or on the writer thread, and
    /// their buffers go back to the engine once written.
    pub fn flush(&mut self, engine: &mut Engine) {
        // The batch takes the kept buffer with it, and the engine has handed out all it
        // delivered in place.
        self.lending = None;
        match &mut self.sink {
            Sink::Here(egress) => {
                egress.write(&self.out);
                self.out.recycle(engine);
            }
            Sink::Writer(w) => w.submit(&mut self.out, engine),
        }
    }
}
