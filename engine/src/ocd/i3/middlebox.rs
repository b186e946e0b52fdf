//! Middleboxes on i3 paths (paper §3.3.1, §4.3), both halves:
//!
//! - **a guarded host** (`through = "fw"`) inserts each of its triggers as
//!   `id → [fw's id, inner id]` and only the random inner id as `inner → its address`. Senders
//!   know the outer ids (the public one is the hash of the name, private ones arrive as return
//!   ids), so everything they send is stacked through fw first; the inner ids are known only to
//!   the host, the servers and fw. A guarded host accepts delivery at inner ids only and never
//!   takes part in a shortcut, so nothing reaches it around the middlebox.
//! - **the middlebox node** gets DATA at its public trigger with ids left below: it hands the
//!   payload to OC-I as `Received::Transit`, whose middlebox judges it, and sends what passes
//!   on to the next id in [`I3Overlay::send_on`].

use super::id::{Id, ID_LEN};
use super::wire::{I3Packet, Stack, FLAG_DELIVERED, FLAG_SHORTCUT};
use super::{I3Overlay, PUBLIC};
use crate::ocd::{OverlayDrop, Received};
use crate::packet::PacketPool;
use rand_core::RngCore;

/// A DATA packet held between `Received::Transit` and the middlebox's verdict.
#[derive(Debug)]
pub(super) struct Held {
    flags: u8,
    rest: Stack,
    return_id: Option<Id>,
}

impl I3Overlay {
    /// Whether this host requires a middlebox in front of it.
    pub(super) fn guarded(&self) -> bool {
        self.through.is_some()
    }

    /// A fresh inner id for a trigger of a guarded host, remembered as standing for `own`.
    pub(super) fn new_inner(&mut self, own: usize) -> Option<Id> {
        self.through?;
        let mut id = [0u8; ID_LEN];
        self.rng.fill_bytes(&mut id);
        self.by_inner.insert(Id(id), own);
        Some(Id(id))
    }

    /// What a trigger of ours delivers to: with a middlebox, the stack through it.
    pub(super) fn target_of(&self, inner: Option<Id>) -> Stack {
        match (self.through, inner) {
            (Some(fw), Some(inner)) => [fw, inner].into_iter().collect(),
            _ => Stack::new(),
        }
    }

    /// The trigger of ours a delivered top id stands for. A guarded host answers only at its
    /// inner ids: a packet at an outer id came around the middlebox.
    pub(super) fn delivered_at(&self, top: Id) -> Result<Id, OverlayDrop> {
        if !self.guarded() {
            return Ok(top);
        }
        self.by_inner
            .get(&top)
            .and_then(|&k| self.own.get(k))
            .map(|t| t.id)
            .ok_or(OverlayDrop::AroundMiddlebox)
    }

    /// DATA delivered at our public trigger with ids still below it: we are the middlebox of
    /// whoever stacked us there. Held until OC-I's middlebox decides.
    pub(super) fn hold<'a>(
        &mut self,
        flags: u8,
        stack: &Stack,
        return_id: Option<Id>,
        payload: &'a [u8],
    ) -> Received<'a> {
        let public = self.own.get(PUBLIC).map(|t| t.id);
        if stack.first().copied() != public {
            return Received::Dropped(OverlayDrop::NotAMiddlebox);
        }
        self.held = Some(Held {
            // The next server must not tell us (the middlebox) where the receiver is.
            flags: flags & !(FLAG_DELIVERED | FLAG_SHORTCUT),
            rest: stack.iter().skip(1).copied().collect(),
            return_id,
        });
        Received::Transit { message: payload }
    }

    /// Sends a held message on to the next id of its stack.
    pub(super) fn send_on(
        &mut self,
        message: &[u8],
        pool: &mut PacketPool,
    ) -> Result<(), OverlayDrop> {
        let h = self.held.take().ok_or(OverlayDrop::NotAMiddlebox)?;
        let to = h
            .rest
            .first()
            .and_then(|id| self.servers.responsible(id))
            .ok_or(OverlayDrop::NoServer)?;
        let p = I3Packet::Data {
            flags: h.flags,
            stack: h.rest,
            return_id: h.return_id,
            payload: message,
        };
        self.transmit_in(to, &p, pool.take());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::I3Config;
    use super::*;
    use crate::config::{Limits, OverlayConfig};
    use crate::ocd::{Datagram, Overlay, OverlayEvent};
    use crate::time::Instant;
    use std::net::SocketAddr;

    const SERVER: ([u8; 4], u16) = ([10, 0, 0, 9], 4790);
    const SEEDS: crate::ocd::Seeds = crate::ocd::Seeds {
        fresh: [7; 32],
        stable: None,
    };

    fn module(name: &str, through: Option<&str>) -> I3Overlay {
        let cfg = OverlayConfig {
            name: "i3".into(),
            module: "i3".into(),
            local_name: name.into(),
            port: 4790,
            keepalive_secs: 25,
            address_book: Default::default(),
            i3: I3Config {
                servers: vec![SocketAddr::from(SERVER)],
                through: through.map(Into::into),
                ..I3Config::default()
            },
            ron: Default::default(),
        };
        I3Overlay::new(0, &cfg, &Limits::default(), SEEDS).expect("valid")
    }

    /// Every datagram the module sent, decoded by the test's own copy.
    fn sent(m: &mut I3Overlay) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(e) = m.poll_event() {
            if let OverlayEvent::Transmit(Datagram { to, payload }) = e {
                out.push((to, payload.to_vec()));
            }
        }
        out
    }

    fn data(flags: u8, stack: &[Id], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        I3Packet::Data {
            flags,
            stack: stack.iter().copied().collect(),
            return_id: Some(Id([5; 32])),
            payload,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn a_guarded_host_stacks_its_triggers_through_the_middlebox() {
        let mut bob = module("bob", Some("fw"));
        bob.refresh_all();
        let fw = Id::of_name("fw.i3");
        let public = Id::of_name("bob.i3");
        let inserts: Vec<(Id, Stack)> = sent(&mut bob)
            .iter()
            .filter_map(|(_, b)| match I3Packet::parse(b) {
                Ok(I3Packet::Insert { id, target, .. }) => Some((id, target)),
                _ => None,
            })
            .collect();
        let inner = inserts
            .iter()
            .find(|(id, _)| *id == public)
            .map(|(_, t)| t.clone())
            .expect("public trigger inserted");
        assert_eq!(inner.len(), 2);
        assert_eq!(inner[0], fw, "through the middlebox first");
        assert!(
            inserts.contains(&(inner[1], Stack::new())),
            "the inner id delivers to bob's address: {inserts:?}"
        );
        let from = SocketAddr::from(([10, 0, 0, 1], 4790));
        // Delivered at the public id itself, it came around fw.
        let around = data(FLAG_DELIVERED, &[public], b"hi");
        assert_eq!(
            bob.receive(Instant::ZERO, &from, &around, &mut PacketPool::default()),
            Received::Dropped(OverlayDrop::AroundMiddlebox)
        );
        // At the inner id (where fw's forwarding ends), it is bob's.
        let through = data(FLAG_DELIVERED, &[inner[1]], b"hi");
        assert!(matches!(
            bob.receive(Instant::ZERO, &from, &through, &mut PacketPool::default()),
            Received::Message { message: b"hi", .. }
        ));
        // And nobody gets a direct path to a guarded host.
        let mut probe = Vec::new();
        I3Packet::Probe {
            nonce: 1,
            id: public,
        }
        .encode(&mut probe);
        assert_eq!(
            bob.receive(Instant::ZERO, &from, &probe, &mut PacketPool::default()),
            Received::Dropped(OverlayDrop::AroundMiddlebox)
        );
        assert!(sent(&mut bob).is_empty(), "no probe answered");
    }

    #[test]
    fn the_middlebox_node_passes_on_only_what_it_was_handed_back() {
        let mut fw = module("fw", None);
        let me = Id::of_name("fw.i3");
        let next = Id([0x42; 32]);
        let from = SocketAddr::from(SERVER);
        let msg = data(
            FLAG_DELIVERED | FLAG_SHORTCUT,
            &[me, next],
            b"ocala message",
        );
        assert_eq!(
            fw.receive(Instant::ZERO, &from, &msg, &mut PacketPool::default()),
            Received::Transit {
                message: b"ocala message"
            }
        );
        assert_eq!(
            fw.transit(Instant::ZERO, b"ocala message", &mut PacketPool::default()),
            Ok(())
        );
        let out = sent(&mut fw);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, from, "to the server responsible for the next id");
        match I3Packet::parse(&out[0].1) {
            Ok(I3Packet::Data {
                flags,
                stack,
                return_id,
                payload,
            }) => {
                assert_eq!(flags & (FLAG_DELIVERED | FLAG_SHORTCUT), 0);
                assert_eq!(stack.as_slice(), &[next]);
                assert_eq!(return_id, Some(Id([5; 32])), "the sender's return id");
                assert_eq!(payload, b"ocala message");
            }
            other => panic!("not DATA: {other:?}"),
        }
        // Nothing held: a second hand-back sends nothing.
        assert_eq!(
            fw.transit(Instant::ZERO, b"again", &mut PacketPool::default()),
            Err(OverlayDrop::NotAMiddlebox)
        );
        assert!(sent(&mut fw).is_empty());
        // Ids below a private trigger (not our public one) make no middlebox.
        let stray = data(FLAG_DELIVERED, &[next, me], b"x");
        assert_eq!(
            fw.receive(Instant::ZERO, &from, &stray, &mut PacketPool::default()),
            Received::Dropped(OverlayDrop::NotAMiddlebox)
        );
    }

    #[test]
    fn a_host_cannot_be_its_own_middlebox() {
        let cfg = OverlayConfig {
            name: "i3".into(),
            module: "i3".into(),
            local_name: "bob".into(),
            port: 4790,
            keepalive_secs: 25,
            address_book: Default::default(),
            i3: I3Config {
                servers: vec![SocketAddr::from(SERVER)],
                through: Some("BOB".into()),
                ..I3Config::default()
            },
            ron: Default::default(),
        };
        let err = I3Overlay::new(3, &cfg, &Limits::default(), SEEDS)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("overlays[3].i3.through"), "{err}");
    }
}
