//! The userspace stack's link to the engine, in place of a TUN device: packets the stack
//! sends queue for the engine as if an app had written them to the TUN, and packets the
//! engine delivers to local apps queue for the stack. Buffers go back to free lists, so a
//! warm link does not allocate.

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;
use std::collections::VecDeque;

/// Packets waiting either way, at most; more are dropped, as a full TUN queue would.
const QUEUE: usize = 1024;
/// Free buffers kept each way.
const SPARE: usize = 256;

/// Both queues and their free lists.
pub struct Link {
    mtu: usize,
    /// From the stack, for the engine.
    pub to_engine: VecDeque<Vec<u8>>,
    tx_spare: Vec<Vec<u8>>,
    /// From the engine, for the stack.
    to_stack: VecDeque<Vec<u8>>,
    rx_spare: Vec<Vec<u8>>,
    /// Packets dropped because a queue was full.
    pub dropped: u64,
}

impl Link {
    pub fn new(mtu: usize) -> Link {
        Link {
            mtu,
            to_engine: VecDeque::new(),
            tx_spare: Vec::new(),
            to_stack: VecDeque::new(),
            rx_spare: Vec::new(),
            dropped: 0,
        }
    }

    /// A packet the engine delivers to local apps.
    pub fn deliver(&mut self, packet: &[u8]) {
        if self.to_stack.len() >= QUEUE {
            self.dropped += 1;
            return;
        }
        let mut b = self.rx_spare.pop().unwrap_or_default();
        b.clear();
        b.extend_from_slice(packet);
        self.to_stack.push_back(b);
    }

    /// Gives back a buffer taken from `to_engine` once the engine has read it.
    pub fn recycle(&mut self, b: Vec<u8>) {
        if self.tx_spare.len() < SPARE {
            self.tx_spare.push(b);
        }
    }

    /// Whether the engine has delivered packets the stack has not read yet.
    pub fn pending(&self) -> bool {
        !self.to_stack.is_empty()
    }
}

pub struct Rx<'a> {
    buf: Vec<u8>,
    spare: &'a mut Vec<Vec<u8>>,
}

pub struct Tx<'a> {
    queue: &'a mut VecDeque<Vec<u8>>,
    spare: &'a mut Vec<Vec<u8>>,
    dropped: &'a mut u64,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.buf);
        if self.spare.len() < SPARE {
            self.spare.push(self.buf);
        }
        r
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.resize(len, 0);
        let r = f(&mut b);
        if self.queue.len() < QUEUE {
            self.queue.push_back(b);
        } else {
            *self.dropped += 1;
        }
        r
    }
}

impl Device for Link {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let buf = self.to_stack.pop_front()?;
        Some((
            Rx {
                buf,
                spare: &mut self.rx_spare,
            },
            Tx {
                queue: &mut self.to_engine,
                spare: &mut self.tx_spare,
                dropped: &mut self.dropped,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx {
            queue: &mut self.to_engine,
            spare: &mut self.tx_spare,
            dropped: &mut self.dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}
