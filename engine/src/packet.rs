//! Reusable packet buffers. The data path must not allocate once warm, so every buffer the
//! engine hands out comes from a free list, and drivers give buffers back with
//! [`crate::Engine::recycle`] once they have written them out.

use crate::wire::checksum::PartialChecksum;
use std::ops::{Deref, DerefMut};

/// Room left in front of a packet so overlay modules can prepend their encapsulation
/// without moving the payload.
pub const HEADROOM: usize = 96;

/// Capacity of a pooled buffer: a full-size IP packet plus headroom and OCALA headers.
const BUFFER_CAPACITY: usize = 2048;

/// A byte buffer with headroom. Dereferences to the packet bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    buf: Vec<u8>,
    start: usize,
    /// Opened on a secure path ([`Packet::authentic`]).
    authentic: bool,
    /// Its transport checksum is left partial ([`Packet::partial_checksum`]).
    partial: Option<PartialChecksum>,
}

impl Packet {
    /// A packet holding a copy of `bytes` (for tests and drivers; the engine uses its pool).
    pub fn from_slice(bytes: &[u8]) -> Packet {
        let mut p = Packet {
            buf: Vec::with_capacity(HEADROOM + bytes.len()),
            start: HEADROOM,
            authentic: false,
            partial: None,
        };
        p.buf.resize(HEADROOM, 0);
        p.buf.extend_from_slice(bytes);
        p
    }

    /// A packet that takes over `bytes`, without headroom (for control-path messages that were
    /// built whole).
    pub fn from_vec(bytes: Vec<u8>) -> Packet {
        Packet {
            buf: bytes,
            start: 0,
            authentic: false,
            partial: None,
        }
    }

    /// Whether this packet for local apps came over a secure path (`encrypt` or `auth`) and
    /// passed its check: its bytes are what the peer's ocala sent, which completed every
    /// checksum before sealing, or left one partial and said so ([`Self::partial_checksum`]).
    /// A driver may then skip checking the inner checksums again (ocalad does, when it joins
    /// TCP segments for its TUN); a corrupted packet cannot get this far.
    pub fn authentic(&self) -> bool {
        self.authentic
    }

    pub(crate) fn mark_authentic(&mut self) {
        self.authentic = true;
    }

    /// Where this packet for local apps has a transport checksum that holds only the
    /// pseudo-header's sum: the peer left it partial, as its kernel did, and the driver must
    /// hand it to the kernel as partial (a TUN's `NEEDS_CSUM`). Only on packets a secure
    /// path's peer flagged so, or from a plain path in the partial form, and only where the
    /// driver said it can ([`crate::config::SecurityConfig::partial_checksums`]).
    pub fn partial_checksum(&self) -> Option<PartialChecksum> {
        self.partial
    }

    pub(crate) fn mark_partial(&mut self, at: PartialChecksum) {
        self.partial = Some(at);
    }

    /// Makes room for `n` more bytes in front and returns them, if the headroom allows.
    /// They hold whatever the buffer held there before: the caller writes every one.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        self.buf.get_mut(start..start + n)
    }

    /// Starts the (still empty) packet up to 63 bytes later, so that its byte `offset`
    /// lands on a cache line's first byte, when `len` bytes still fit in the buffer; the
    /// skipped bytes join the headroom. Ciphers read and write whole lines faster: a
    /// sealed body on a line boundary costs about 1 % less per byte than one 13 bytes
    /// off it. Only where the packet sits in memory changes, never its bytes.
    pub fn align_at(&mut self, offset: usize, len: usize) {
        if self.buf.len() != self.start {
            return;
        }
        let at = (self.buf.as_ptr() as usize)
            .wrapping_add(self.start)
            .wrapping_add(offset);
        let pad = at.wrapping_neg() % 64;
        if self.start + pad + len <= self.buf.capacity() {
            self.buf.resize(self.start + pad, 0);
            self.start += pad;
        }
    }

    /// Appends bytes at the end.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Shortens the packet to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }

    /// The whole backing vector, for encoders that append (headroom stays in front).
    pub(crate) fn tail_vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Empties the packet, keeping headroom and capacity. The headroom is not zeroed again
    /// (no data packet pays for that): [`Packet::prepend`] hands it out to be overwritten.
    #[inline]
    fn reset(&mut self) {
        self.buf.truncate(HEADROOM);
        self.buf.resize(HEADROOM, 0);
        self.start = HEADROOM;
        self.authentic = false;
        self.partial = None;
    }
}

impl Deref for Packet {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
}

impl DerefMut for Packet {
    fn deref_mut(&mut self) -> &mut [u8] {
        let start = self.start;
        self.buf.get_mut(start..).unwrap_or(&mut [])
    }
}

/// The engine's free list of buffers. Overlay modules take from it what they send on the
/// data path (an i3 server's forwarded packets), so that no data packet allocates once warm.
#[derive(Debug, Default)]
pub struct PacketPool {
    free: Vec<Packet>,
}

/// Buffers kept on the free list at most; beyond that returned buffers are dropped.
const POOL_MAX: usize = 1024;

impl PacketPool {
    /// An empty packet with headroom, reused when one is free.
    pub fn take(&mut self) -> Packet {
        match self.free.pop() {
            Some(p) => p,
            None => {
                let mut p = Packet {
                    buf: Vec::with_capacity(BUFFER_CAPACITY),
                    start: HEADROOM,
                    authentic: false,
                    partial: None,
                };
                p.reset();
                p
            }
        }
    }

    /// Returns a buffer to the free list.
    #[inline]
    pub fn give(&mut self, mut p: Packet) {
        if self.free.len() < POOL_MAX && p.buf.capacity() >= BUFFER_CAPACITY {
            p.reset();
            self.free.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_uses_headroom_and_stops_at_its_end() {
        let mut p = Packet::from_slice(b"payload");
        p.prepend(2).unwrap().copy_from_slice(b"h:");
        assert_eq!(&*p, b"h:payload");
        assert!(p.prepend(HEADROOM).is_none());
        assert_eq!(&*p, b"h:payload");
    }

    #[test]
    fn align_at_moves_only_the_start() {
        let mut pool = PacketPool::default();
        let mut p = pool.take();
        p.align_at(13, 1500);
        let at = p.buf.as_ptr() as usize + p.start + 13;
        assert_eq!(at % 64, 0);
        assert!(p.start >= HEADROOM && p.start < HEADROOM + 64);
        assert!(p.is_empty());
        p.extend_from_slice(b"abc");
        assert_eq!(&*p, b"abc");
        // No room for the padding: nothing moves.
        let mut q = pool.take();
        q.align_at(13, BUFFER_CAPACITY);
        assert_eq!(q.start, HEADROOM);
        // A packet that holds bytes is not moved.
        p.align_at(1, 10);
        assert_eq!(&*p, b"abc");
        pool.give(p);
        assert_eq!(
            pool.take().start,
            HEADROOM,
            "a recycled buffer starts afresh"
        );
    }

    #[test]
    fn pool_reuses_buffers() {
        let mut pool = PacketPool::default();
        let mut p = pool.take();
        p.extend_from_slice(&[1, 2, 3]);
        let ptr = p.buf.as_ptr();
        pool.give(p);
        let q = pool.take();
        assert!(q.is_empty());
        assert_eq!(q.buf.as_ptr(), ptr);
    }
}
