//! The send half on a second core (`daemon.threads = 2`). The engine thread reads, runs the
//! engine and hands each large batch of outputs to this thread, which makes the sends and
//! TUN writes (and joins segments, which reads every byte for its checksums) while the engine
//! works on the next batch. The engine stays on one thread, so it stays deterministic; only
//! the system calls move.
//!
//! Batches leave in the order they were made, so no flow is reordered. A small batch while
//! the writer is idle (a ping, a DNS answer, a handshake) is written by the engine thread
//! itself: waking another thread would add its wake-up time to every round trip. Handed-off
//! batches come back with their buffers, which return to the engine's pool, so nothing is
//! allocated once the batches in flight have been made.

use super::egress::{Batch, Egress, EgressStats};
use ocala_engine::Engine;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// Batches handed off and not yet written, at most; the engine thread waits beyond that.
const DEPTH: usize = 8;
/// Outputs of a batch from which it is worth handing to the writer: a TUN read of a TCP
/// super-packet or a GRO train brings tens, interactive traffic one or two.
const HANDOFF: usize = 8;

/// The engine thread's end of the writer.
pub struct Writer {
    egress: Arc<Mutex<Egress>>,
    to_writer: Option<SyncSender<Batch>>,
    written: Receiver<Batch>,
    spare: Vec<Batch>,
    in_flight: usize,
    handed: u64,
    thread: Option<JoinHandle<()>>,
}

/// The egress, also if a write panicked on the other thread (its state is counters and
/// buffers that every write starts afresh).
fn lock(egress: &Mutex<Egress>) -> MutexGuard<'_, Egress> {
    egress.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// Starts the writer thread with `egress`.
    pub fn spawn(egress: Egress) -> std::io::Result<Writer> {
        let egress = Arc::new(Mutex::new(egress));
        let (to_writer, batches) = mpsc::sync_channel::<Batch>(DEPTH);
        let (done, written) = mpsc::sync_channel::<Batch>(DEPTH);
        let shared = Arc::clone(&egress);
        let thread = std::thread::Builder::new()
            .name("ocalad-writer".into())
            .spawn(move || {
                while let Ok(batch) = batches.recv() {
                    lock(&shared).write(&batch);
                    // The lock is free before the batch is back: a thread that sees every
                    // batch back may write itself.
                    if done.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Writer {
            egress,
            to_writer: Some(to_writer),
            written,
            spare: Vec::new(),
            in_flight: 0,
            handed: 0,
            thread: Some(thread),
        })
    }

    /// Pins the writer thread to `cpu` (`daemon.cpus`).
    pub fn pin(&self, cpu: usize) -> std::io::Result<()> {
        match &self.thread {
            Some(t) => crate::affinity::pin(t, cpu),
            None => Ok(()),
        }
    }

    /// Writes `batch` out, here or on the writer thread, and leaves it empty for the next.
    pub fn submit(&mut self, batch: &mut Batch, engine: &mut Engine) {
        self.reclaim(engine);
        if batch.len() == 0 {
            return;
        }
        if self.in_flight == 0 && batch.len() < HANDOFF {
            lock(&self.egress).write(batch);
            batch.recycle(engine);
            return;
        }
        if self.in_flight == DEPTH {
            self.wait_one(engine);
        }
        let Some(to_writer) = &self.to_writer else {
            return;
        };
        let full = std::mem::replace(batch, self.spare.pop().unwrap_or_default());
        match to_writer.send(full) {
            Ok(()) => {
                self.in_flight += 1;
                self.handed += 1;
            }
            // The thread is gone (a write panicked): write here from now on.
            Err(mpsc::SendError(mut full)) => {
                lock(&self.egress).write(&full);
                full.recycle(engine);
                self.spare.push(full);
            }
        }
    }

    /// Takes back the batches written so far, their buffers into the engine's pool.
    fn reclaim(&mut self, engine: &mut Engine) {
        while let Ok(mut b) = self.written.try_recv() {
            self.in_flight -= 1;
            b.recycle(engine);
            self.spare.push(b);
        }
    }

    /// Waits for the oldest batch in flight to be written.
    fn wait_one(&mut self, engine: &mut Engine) {
        match self.written.recv() {
            Ok(mut b) => {
                self.in_flight -= 1;
                b.recycle(engine);
                self.spare.push(b);
            }
            Err(_) => self.in_flight = 0,
        }
    }

    /// The egress's counters, and how many batches the writer thread wrote.
    pub fn stats(&self) -> (EgressStats, u64) {
        (lock(&self.egress).stats(), self.handed)
    }
}

impl Drop for Writer {
    /// Lets the thread write what it holds and stop.
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
