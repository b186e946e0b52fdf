//! Whether a tunnel's peer is still there. Over i3 a peer that vanished leaves no trace the
//! sender can see: once its private trigger expires, the server drops what is sent to it. So,
//! as the `udp` module does, a tunnel that has heard nothing for `keepalive_secs` sends an
//! OCALA keepalive over the overlay (to the peer's id, answered at ours), and one silent for
//! `limits.keepalive_misses` such periods is reported dead, so OC-I can tell the apps' paths.

use super::I3Overlay;
use crate::ocd::{OverlayEvent, Received, TunnelRef};
use crate::packet::Packet;
use crate::time::Instant;
use crate::wire::message::{Keepalive, Message, KEEPALIVE_TYPE_BYTE};

/// A tunnel's liveness bookkeeping.
#[derive(Debug, Clone, Copy)]
pub(super) struct Liveness {
    last_rx: Instant,
    last_probe: Instant,
    seq: u32,
}

impl Liveness {
    pub(super) fn new(now: Instant) -> Liveness {
        Liveness {
            last_rx: now,
            last_probe: now,
            seq: 0,
        }
    }
}

impl I3Overlay {
    /// Something arrived over tunnel `r`. A keepalive is answered (only over a tunnel, so
    /// strangers cannot make us reflect) and consumed; `None` for anything else.
    pub(super) fn heard(
        &mut self,
        now: Instant,
        r: TunnelRef,
        payload: &[u8],
    ) -> Option<Received<'static>> {
        let t = self.tunnels.get_mut(r as usize)?;
        t.alive.last_rx = now;
        if payload.first() != Some(&KEEPALIVE_TYPE_BYTE) {
            return None;
        }
        let ka = match Message::parse(payload) {
            Ok(Message::Keepalive(ka)) => ka,
            Ok(_) => return None,
            Err(e) => return Some(Received::Malformed(e)),
        };
        if ka.reply_requested {
            self.keepalive(now, r, false, ka.seq);
        }
        Some(Received::Consumed)
    }

    fn keepalive(&mut self, now: Instant, r: TunnelRef, request: bool, seq: u32) {
        let msg = Message::Keepalive(Keepalive {
            reply_requested: request,
            is_reply: !request,
            seq,
        });
        let mut p = Packet::from_slice(&[]);
        if msg.encode(p.tail_vec()).is_ok() {
            // A tunnel without a path to send on is the same as a lost keepalive.
            if let Ok(d) = self.send_datagram(now, r, p) {
                self.transmit_buf(d.to, d.payload);
            }
        }
    }

    /// Probes quiet tunnels and reports those silent for too long (once each).
    pub(super) fn check_liveness(&mut self, now: Instant) {
        let (every, dead_after) = (self.keepalive, self.keepalive * self.misses);
        let mut probe = Vec::new();
        // A tunnel whose peer never answered is still being set up: OC-I's retransmissions
        // and timeouts cover it.
        for (k, t) in self.tunnels.iter_mut().filter(|(_, t)| t.negotiated) {
            let a = &mut t.alive;
            if now.since(a.last_rx) >= dead_after {
                // Reported once; OC-I closes the tunnel's paths and drops its references.
                a.last_rx = now;
                self.events
                    .push_back(OverlayEvent::TunnelDead(k as TunnelRef));
            } else if now.since(a.last_rx) >= every && now.since(a.last_probe) >= every {
                a.last_probe = now;
                a.seq = a.seq.wrapping_add(1);
                probe.push((k as TunnelRef, a.seq));
            }
        }
        for (r, seq) in probe {
            self.keepalive(now, r, true, seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::id::Id;
    use super::super::wire::I3Packet;
    use super::super::I3Config;
    use super::*;
    use crate::config::{Limits, OverlayConfig};
    use crate::ocd::{Datagram, HopSpec, Overlay, Seeds};
    use std::net::SocketAddr;

    fn alice() -> I3Overlay {
        let cfg = OverlayConfig {
            name: "i3".into(),
            module: "i3".into(),
            local_name: "alice".into(),
            port: 4790,
            keepalive_secs: 2,
            address_book: Default::default(),
            i3: I3Config {
                servers: vec![SocketAddr::from(([10, 0, 0, 9], 4790))],
                ..I3Config::default()
            },
            ron: Default::default(),
        };
        let seeds = Seeds {
            fresh: [1; 32],
            stable: None,
        };
        I3Overlay::new(0, &cfg, &Limits::default(), seeds).expect("valid")
    }

    /// The keepalives (requests) a batch of events sends, and the tunnels reported dead.
    fn outcome(m: &mut I3Overlay) -> (usize, Vec<TunnelRef>) {
        let (mut requests, mut dead) = (0, Vec::new());
        while let Some(e) = m.poll_event() {
            match e {
                OverlayEvent::Transmit(Datagram { payload, .. }) => {
                    if let Ok(I3Packet::Data { payload, .. }) = I3Packet::parse(&payload) {
                        if let Ok(Message::Keepalive(k)) = Message::parse(payload) {
                            requests += usize::from(k.reply_requested);
                        }
                    }
                }
                OverlayEvent::TunnelDead(r) => dead.push(r),
                _ => {}
            }
        }
        (requests, dead)
    }

    #[test]
    fn a_silent_peer_is_probed_then_reported_dead_once() {
        let mut m = alice();
        // A tunnel still being set up is left to OC-I; an accepted one is watched.
        let t0 = Instant::ZERO;
        let pending = m.setup(t0, &HopSpec::host_only("bob").unwrap());
        let r = m.accept(t0, &super::super::peer_of(&Id([5; 32])));
        assert_ne!(pending, r);
        let (mut requests, mut dead) = (0, Vec::new());
        // Refresh ticks every 2 s; keepalives every 2 s of silence; dead after 3 × 2 s.
        for s in 0..=12u64 {
            m.handle_timeout(Instant::from_nanos(s * 1_000_000_000));
            let (q, d) = outcome(&mut m);
            requests += q;
            dead.extend(d.into_iter().map(|d| (d, s)));
        }
        assert_eq!(dead, [(r, 6), (r, 12)], "once per silence of 6 s");
        assert!(requests >= 2, "{requests} keepalives");
    }

    #[test]
    fn keepalives_are_answered_over_a_tunnel_and_keep_it_alive() {
        let mut m = alice();
        let r = m.accept(Instant::ZERO, &super::super::peer_of(&Id([5; 32])));
        let _ = outcome(&mut m);
        let mut ka = Vec::new();
        Message::Keepalive(Keepalive {
            reply_requested: true,
            is_reply: false,
            seq: 9,
        })
        .encode(&mut ka)
        .unwrap();
        let now = Instant::from_nanos(5_000_000_000);
        assert_eq!(m.heard(now, r, &ka), Some(Received::Consumed));
        let mut answered = false;
        while let Some(e) = m.poll_event() {
            if let OverlayEvent::Transmit(Datagram { payload, .. }) = e {
                if let Ok(I3Packet::Data { payload, .. }) = I3Packet::parse(&payload) {
                    answered |= matches!(Message::parse(payload), Ok(Message::Keepalive(k)) if k.is_reply && k.seq == 9);
                }
            }
        }
        assert!(answered);
        // Heard at 5 s: not dead at 10 s, dead at 11 s.
        m.check_liveness(Instant::from_nanos(10_000_000_000));
        assert!(outcome(&mut m).1.is_empty());
        m.check_liveness(Instant::from_nanos(11_000_000_000));
        assert_eq!(outcome(&mut m).1, [r]);
        // Other messages are OC-I's.
        assert_eq!(m.heard(now, r, b"\x11data"), None);
    }
}
