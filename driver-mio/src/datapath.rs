//! The daemon's data path: the TUN and the overlay sockets, moved in batches. A TUN read may
//! be a 64 KiB TCP super-packet, cut into segments for the engine; the datagrams the engine
//! sends in reply to one read or one receive are queued and leave in as few `sendmsg` calls
//! as GSO allows; packets it delivers are joined per TCP flow before they are written.
//!
//! The engine takes each batch whole (`Engine::handle_batch`, payloads borrowed from the
//! read buffers); the daemon then takes all its outputs (`poll_output`) and only then makes
//! the system calls.

use crate::offload::coalesce::Coalescer;
use crate::offload::segment;
use crate::offload::vnet::{self, VnetHdr};
use crate::socket::{OverlaySocket, RecvBufs};
use crate::tun::Tun;
use ocala_engine::{Engine, Input, Instant, OverlayId, Packet};
use serde_json::{json, Value};
use std::io;
use std::net::SocketAddr;

/// Largest TUN read: a header and a 64 KiB super-packet.
const TUN_READ: usize = vnet::LEN + 65_536;
/// Room for a super-packet's segments side by side, each with its own headers.
const SCRATCH: usize = 2 * 65_536;
/// Largest UDP payload one GSO send may carry.
const GSO_BYTES: usize = 65_000;

/// A datagram the engine asked to send, held until the batch ends.
struct Pending {
    overlay: usize,
    to: SocketAddr,
    payload: Packet,
}

/// What the data path did and what the kernel offered, for `ocala status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DatapathStats {
    pub tun_offload: bool,
    pub udp_gso: usize,
    pub udp_gro: bool,
    pub tun_reads: u64,
    pub tun_packets_in: u64,
    pub tun_writes: u64,
    pub tun_joined: u64,
    pub bad_tun_reads: u64,
    pub udp_receives: u64,
    pub udp_datagrams_in: u64,
    pub udp_sends: u64,
    pub udp_datagrams_out: u64,
    pub udp_send_errors: u64,
}

impl DatapathStats {
    /// The `datapath` object of `ocala status --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "tun_offload": self.tun_offload,
            "udp_gso_segments": self.udp_gso,
            "udp_gro": self.udp_gro,
            "tun_reads": self.tun_reads,
            "tun_packets_in": self.tun_packets_in,
            "tun_writes": self.tun_writes,
            "tun_joined": self.tun_joined,
            "bad_tun_reads": self.bad_tun_reads,
            "udp_receives": self.udp_receives,
            "udp_datagrams_in": self.udp_datagrams_in,
            "udp_sends": self.udp_sends,
            "udp_datagrams_out": self.udp_datagrams_out,
            "udp_send_errors": self.udp_send_errors,
        })
    }
}

/// The TUN, the overlay sockets and their batch buffers.
pub struct Datapath {
    /// None in userspace mode, where the stack takes the engine's deliveries instead.
    pub tun: Option<Tun>,
    pub sockets: Vec<OverlaySocket>,
    rx: RecvBufs,
    tun_buf: Vec<u8>,
    scratch: Vec<u8>,
    tx: Vec<Pending>,
    gso_buf: Vec<u8>,
    coalescer: Coalescer,
    stats: DatapathStats,
}

impl Datapath {
    pub fn new(tun: Option<Tun>, sockets: Vec<OverlaySocket>) -> Datapath {
        let stats = DatapathStats {
            tun_offload: tun.as_ref().is_some_and(Tun::offload),
            udp_gso: sockets.iter().map(|s| s.gso_segments()).min().unwrap_or(1),
            udp_gro: !sockets.is_empty() && sockets.iter().all(|s| s.gro()),
            ..DatapathStats::default()
        };
        Datapath {
            tun,
            sockets,
            rx: RecvBufs::default(),
            tun_buf: vec![0; TUN_READ],
            scratch: vec![0; SCRATCH],
            tx: Vec::with_capacity(256),
            gso_buf: Vec::with_capacity(GSO_BYTES),
            coalescer: Coalescer::default(),
            stats,
        }
    }

    /// The counters, with the coalescer's.
    pub fn stats(&self) -> DatapathStats {
        DatapathStats {
            tun_writes: self.stats.tun_writes + self.coalescer.stats.writes,
            tun_joined: self.coalescer.stats.joined,
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
        match segment::split(&hdr, packet, &mut self.scratch) {
            Ok(packets) => {
                let batch = packets.iter(packet, &self.scratch).map(Input::TunPacket);
                // Only a clock running backwards fails here, and the clock is monotonic.
                let _ = engine.handle_batch(now, batch);
                self.stats.tun_packets_in += packets.count() as u64;
                Ok(packets.count())
            }
            Err(e) => {
                self.stats.bad_tun_reads += 1;
                tracing::debug!("TUN read of {n} bytes dropped: {e}");
                Ok(0)
            }
        }
    }

    /// One batched receive on overlay `index`: how many messages to feed ([`Self::feed`]).
    pub fn receive(&mut self, index: usize) -> io::Result<usize> {
        let Some(sock) = self.sockets.get(index) else {
            return Ok(0);
        };
        let n = sock.recv(&mut self.rx)?;
        self.stats.udp_receives += 1;
        Ok(n)
    }

    /// Feeds message `m` of the last receive on overlay `index` to the engine: how many
    /// datagrams it held.
    pub fn feed(&mut self, index: usize, m: usize, engine: &mut Engine, now: Instant) -> usize {
        let overlay = OverlayId(index as u16);
        let mut count = 0;
        let batch = self.rx.datagrams(m).map(|(from, payload)| {
            count += 1;
            Input::Datagram {
                overlay,
                from,
                payload,
            }
        });
        let _ = engine.handle_batch(now, batch);
        self.stats.udp_datagrams_in += count as u64;
        count
    }

    /// Queues a datagram the engine sent; it leaves at [`Self::flush`].
    pub fn transmit(&mut self, overlay: OverlayId, to: SocketAddr, payload: Packet) {
        self.tx.push(Pending {
            overlay: usize::from(overlay.0),
            to,
            payload,
        });
    }

    /// Takes a packet the engine delivers to local apps; it is joined with its flow's next
    /// segments or written now.
    pub fn deliver(&mut self, packet: &[u8]) {
        let Some(tun) = &self.tun else {
            return;
        };
        if self.stats.tun_offload {
            self.coalescer
                .push(packet, &mut |h, p| write_tun(tun, h, p));
        } else {
            // Without offloads the kernel was not asked to take super-packets.
            self.stats.tun_writes += 1;
            write_tun(tun, &[0; vnet::LEN], packet);
        }
    }

    /// Ends a batch: sends every queued datagram, runs of equal size to one peer as one GSO
    /// send, writes what the coalescer still holds, and gives the buffers back to the engine.
    pub fn flush(&mut self, engine: &mut Engine) {
        let mut i = 0;
        while i < self.tx.len() {
            let first = &self.tx[i];
            let size = first.payload.len();
            let max = self
                .sockets
                .get(first.overlay)
                .map_or(1, OverlaySocket::gso_segments)
                .min(GSO_BYTES / size.max(1))
                .max(1);
            let mut end = i + 1;
            while end < self.tx.len()
                && end - i < max
                && self.tx[end].overlay == first.overlay
                && self.tx[end].to == first.to
                && self.tx[end].payload.len() <= size
            {
                end += 1;
                // Only the last of a run may be shorter.
                if self.tx[end - 1].payload.len() < size {
                    break;
                }
            }
            self.send_run(i, end);
            i = end;
        }
        for p in self.tx.drain(..) {
            engine.recycle(p.payload);
        }
        if let Some(tun) = &self.tun {
            self.coalescer.flush(&mut |h, p| write_tun(tun, h, p));
        }
    }

    /// Sends queued datagrams `i..end`, all to one peer and all but the last of one size.
    fn send_run(&mut self, i: usize, end: usize) {
        let run = &self.tx[i..end];
        let Some(sock) = self.sockets.get(run[0].overlay) else {
            return;
        };
        let to = run[0].to;
        let result = if run.len() == 1 {
            sock.send(to, &run[0].payload, None)
        } else {
            self.gso_buf.clear();
            for p in run {
                self.gso_buf.extend_from_slice(&p.payload);
            }
            sock.send(to, &self.gso_buf, Some(run[0].payload.len()))
        };
        self.stats.udp_sends += 1;
        match result {
            Ok(()) => self.stats.udp_datagrams_out += run.len() as u64,
            Err(e) => {
                self.stats.udp_send_errors += 1;
                tracing::debug!("sending {} datagram(s) to {to}: {e}", run.len());
            }
        }
    }
}

fn write_tun(tun: &Tun, header: &[u8], packet: &[u8]) {
    if let Err(e) = tun.send(header, packet) {
        tracing::debug!("writing TUN: {e}");
    }
}
