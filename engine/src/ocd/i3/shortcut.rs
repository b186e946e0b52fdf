//! The `shortcut` option (`bob.shortcut.i3`): once the peer's address is known, packets go
//! straight to it instead of through the i3 server, and back through the server when the
//! direct path stops answering.
//!
//! An address is learned from the server (a SHORTCUT answer to a DATA packet that asked) or
//! from the peer's own probe, and used only after it answered a probe carrying our nonce
//! (return routability): whoever merely claims an address cannot steer the path. Both ends
//! probe each other, so the first probe through each NAT opens the hole the other's probe
//! then passes; the probes that keep a direct path alive also keep those holes open.

use super::id::Id;
use super::wire::I3Packet;
use super::I3Overlay;
use crate::ocd::{OverlayDrop, Received, TunnelRef};
use crate::time::Instant;
use arrayvec::ArrayVec;
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::Duration;

/// Probes that may go unanswered before an address counts as unreachable.
pub const MISSES: u32 = 3;

/// One address under probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probed {
    addr: SocketAddr,
    nonce: u64,
    unanswered: u32,
}

/// A probe to send.
pub type Probe = (SocketAddr, u64);

/// What an answered probe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing the operator needs to hear of.
    None,
    /// Packets go straight to this address now.
    Direct(SocketAddr),
}

/// A tunnel's direct-path state.
#[derive(Debug, Clone)]
pub struct Shortcut {
    /// The verified address data goes to.
    direct: Option<Probed>,
    /// An address being verified.
    candidate: Option<Probed>,
    /// When the next probe round is due (`Instant::MAX`: nothing to probe).
    next_probe: Instant,
    /// When a relayed packet may ask the server for the peer's address again.
    next_ask: Instant,
}

impl Default for Shortcut {
    fn default() -> Self {
        Shortcut {
            direct: None,
            candidate: None,
            next_probe: Instant::MAX,
            next_ask: Instant::ZERO,
        }
    }
}

impl Shortcut {
    /// Where data goes instead of the relay.
    pub fn direct(&self) -> Option<SocketAddr> {
        self.direct.map(|d| d.addr)
    }

    /// The next probe deadline.
    pub fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// Whether a relayed packet sent now should ask the server for the peer's address: only
    /// while there is no direct path, and once per `every`.
    pub fn ask(&mut self, now: Instant, every: Duration) -> bool {
        if self.direct.is_some() || self.candidate.is_some() || now < self.next_ask {
            return false;
        }
        self.next_ask = now.saturating_add(every);
        true
    }

    /// An address the peer may be reached at. Verifies it unless it is known or another
    /// address is under test; the probe to send now, if any.
    pub fn learn(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        nonce: u64,
        every: Duration,
    ) -> Option<Probe> {
        if self.direct() == Some(addr) || self.candidate.is_some() {
            return None;
        }
        self.candidate = Some(Probed {
            addr,
            nonce,
            unanswered: 1,
        });
        self.next_probe = self.next_probe.min(now.saturating_add(every));
        Some((addr, nonce))
    }

    /// A probe answer from `from`.
    pub fn answered(&mut self, from: SocketAddr, nonce: u64) -> Change {
        if let Some(c) = self
            .candidate
            .filter(|c| c.addr == from && c.nonce == nonce)
        {
            self.candidate = None;
            let was = self.direct.replace(Probed { unanswered: 0, ..c });
            return if was.map(|w| w.addr) == Some(c.addr) {
                Change::None
            } else {
                Change::Direct(c.addr)
            };
        }
        if let Some(d) = self.direct.as_mut() {
            if d.addr == from && d.nonce == nonce {
                d.unanswered = 0;
            }
        }
        Change::None
    }

    /// A probe round: the probes to send (the direct path's with the first fresh nonce, the
    /// candidate's with the second), and whether the direct path was given up on (data goes
    /// back to the relay).
    pub fn tick(
        &mut self,
        now: Instant,
        every: Duration,
        nonces: [u64; 2],
    ) -> (ArrayVec<Probe, 2>, bool) {
        let mut probes = ArrayVec::new();
        let mut lost = false;
        if now < self.next_probe {
            return (probes, lost);
        }
        for ((slot, is_direct), nonce) in [(&mut self.direct, true), (&mut self.candidate, false)]
            .into_iter()
            .zip(nonces)
        {
            let Some(p) = slot.as_mut() else { continue };
            if p.unanswered >= MISSES {
                *slot = None;
                lost |= is_direct;
                continue;
            }
            p.unanswered += 1;
            p.nonce = nonce;
            probes.push((p.addr, p.nonce));
        }
        self.next_probe = if self.direct.is_some() || self.candidate.is_some() {
            now.saturating_add(every)
        } else {
            Instant::MAX
        };
        if lost {
            // Back on the relay: ask for the peer's (maybe new) address at once.
            self.next_ask = now;
        }
        (probes, lost)
    }

    /// Our own address changed: probe everything now, so the peer learns the new address
    /// from our probes and verifies it.
    pub fn renew(&mut self, now: Instant) {
        if self.direct.is_some() || self.candidate.is_some() {
            self.next_probe = now;
        }
        self.next_ask = now;
    }
}

/// The module's side: probes on the wire, deadlines in its probe set, notices to the operator.
impl I3Overlay {
    /// Changes a tunnel's shortcut state and keeps its probe deadline filed.
    pub(super) fn reschedule<T>(
        &mut self,
        r: TunnelRef,
        f: impl FnOnce(&mut Shortcut) -> T,
    ) -> Option<T> {
        let s = self.tunnels.get_mut(r as usize)?.shortcut.as_mut()?;
        let before = s.next_probe();
        let out = f(s);
        let after = s.next_probe();
        if before != after {
            self.probes.remove(&(before, r));
        }
        if after != Instant::MAX {
            self.probes.insert((after, r));
        }
        Some(out)
    }

    fn send_probe(&mut self, (to, nonce): Probe, peer: Id) {
        self.transmit(to, &I3Packet::Probe { nonce, id: peer });
    }

    /// A server told us where the peer's trigger `id` delivers.
    pub(super) fn learned(&mut self, now: Instant, id: &Id, addr: SocketAddr) -> Received<'static> {
        let Some(&r) = self.by_remote.get(id) else {
            return Received::Dropped(OverlayDrop::NoTrigger);
        };
        self.start_probing(now, r, addr);
        Received::Consumed
    }

    fn start_probing(&mut self, now: Instant, r: TunnelRef, addr: SocketAddr) {
        let nonce = self.rng.next_u64();
        let every = self.probe_every;
        let Some(remote) = self.tunnels.get(r as usize).map(|t| t.remote) else {
            return;
        };
        if let Some(Some(probe)) = self.reschedule(r, |s| s.learn(now, addr, nonce, every)) {
            self.send_probe(probe, remote);
        }
    }

    /// A probe from `from` to our private trigger `id`: answer it, and verify `from` as an
    /// address of the peer's (it may have moved, or its NAT just opened).
    pub(super) fn probed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: u64,
        id: Id,
    ) -> Received<'static> {
        if self.guarded() {
            // A direct path would go around our middlebox.
            return Received::Dropped(OverlayDrop::AroundMiddlebox);
        }
        let Some(&r) = self.by_private.get(&id) else {
            return Received::Dropped(OverlayDrop::NoTrigger);
        };
        self.transmit(from, &I3Packet::ProbeAck { nonce, id });
        let Some(t) = self.tunnels.get_mut(r as usize) else {
            return Received::Consumed;
        };
        if t.negotiated {
            t.shortcut.get_or_insert_with(Shortcut::default);
            self.start_probing(now, r, from);
        }
        Received::Consumed
    }

    /// The answer to one of our probes.
    pub(super) fn probe_answered(
        &mut self,
        from: SocketAddr,
        nonce: u64,
        id: &Id,
    ) -> Received<'static> {
        let Some(&r) = self.by_remote.get(id) else {
            return Received::Dropped(OverlayDrop::NoTrigger);
        };
        if let Some(Change::Direct(addr)) = self.reschedule(r, |s| s.answered(from, nonce)) {
            let host = self.tunnels.get(r as usize).map(|t| t.host.clone());
            self.notice(format!(
                "shortcut to {}: direct at {addr}",
                host.unwrap_or_default()
            ));
        }
        Received::Consumed
    }

    /// Runs every probe round that is due.
    pub(super) fn probe_due(&mut self, now: Instant) {
        let every = self.probe_every;
        while let Some(&(at, r)) = self.probes.first() {
            if at > now {
                return;
            }
            self.probes.remove(&(at, r));
            let Some(remote) = self.tunnels.get(r as usize).map(|t| t.remote) else {
                continue;
            };
            let nonces = [self.rng.next_u64(), self.rng.next_u64()];
            let round = self.reschedule(r, |s| s.tick(now, every, nonces));
            let Some((probes, lost)) = round else {
                continue;
            };
            for p in probes {
                self.send_probe(p, remote);
            }
            if lost {
                let host = self.tunnels.get(r as usize).map(|t| t.host.clone());
                self.notice(format!(
                    "shortcut to {}: direct path lost, back on the relay",
                    host.unwrap_or_default()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_millis(500);

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 4790))
    }

    #[test]
    fn an_address_is_used_only_after_it_answered_our_nonce() {
        let mut s = Shortcut::default();
        assert!(s.ask(at(0), EVERY));
        assert!(!s.ask(at(100), EVERY), "asks at most once per period");
        assert_eq!(s.learn(at(100), addr(1), 7, EVERY), Some((addr(1), 7)));
        assert_eq!(s.direct(), None);
        // A second claim while the first is under test is ignored.
        assert_eq!(s.learn(at(110), addr(2), 8, EVERY), None);
        // A wrong nonce, or the right nonce from elsewhere, changes nothing.
        assert_eq!(s.answered(addr(1), 6), Change::None);
        assert_eq!(s.answered(addr(2), 7), Change::None);
        assert_eq!(s.direct(), None);
        assert_eq!(s.answered(addr(1), 7), Change::Direct(addr(1)));
        assert_eq!(s.direct(), Some(addr(1)));
        assert!(!s.ask(at(2000), EVERY), "no asking while direct");
    }

    #[test]
    fn a_silent_direct_path_falls_back_after_the_misses() {
        let mut s = Shortcut::default();
        s.learn(at(0), addr(1), 1, EVERY);
        s.answered(addr(1), 1);
        let mut n = 10;
        let mut nonces = || {
            n += 1;
            [n, 0]
        };
        // Keepalive probes: answered ones keep the path.
        let (p, lost) = s.tick(at(500), EVERY, nonces());
        assert_eq!((p.as_slice(), lost), (&[(addr(1), 11)][..], false));
        s.answered(addr(1), 11);
        // Then silence: MISSES probes go out unanswered and the next round gives up.
        let mut t = 1000;
        for _ in 0..MISSES {
            let (p, lost) = s.tick(at(t), EVERY, nonces());
            assert_eq!((p.len(), lost), (1, false));
            t += 500;
        }
        let (p, lost) = s.tick(at(t), EVERY, nonces());
        assert!(p.is_empty() && lost);
        assert_eq!(s.direct(), None);
        assert_eq!(s.next_probe(), Instant::MAX);
        assert!(
            s.ask(at(t), EVERY),
            "back on the relay, it asks again at once"
        );
    }

    #[test]
    fn a_moved_peer_is_verified_before_traffic_follows() {
        let mut s = Shortcut::default();
        s.learn(at(0), addr(1), 1, EVERY);
        s.answered(addr(1), 1);
        assert_eq!(s.learn(at(10), addr(2), 2, EVERY), Some((addr(2), 2)));
        assert_eq!(
            s.direct(),
            Some(addr(1)),
            "the old address until the new answers"
        );
        assert_eq!(s.answered(addr(2), 2), Change::Direct(addr(2)));
        assert_eq!(s.direct(), Some(addr(2)));
    }
}
