//! OC-I's side of a middlebox (`crate::middlebox`): every message passing through this node
//! is shown to it, and goes on only if it passes. Data of an encrypted path is opened for it
//! first when the path's initiator granted it the keys (`security::grant`), which happens
//! only when an end point of the path certified it.
//!
//! Grants reach a middlebox the way the confirm does: on a gateway hop (sender-imposed) as
//! a message to the relay half's label, kept on both halves of the relayed path; in transit
//! through the id stack in front of a guarded host (receiver-imposed) as a held message,
//! kept by label in `Granted`. A grant sealed to another node travels on untouched.

use crate::api::DropReason;
use crate::engine::Engine;
use crate::middlebox::{Middlebox, Seen, Verdict};
use crate::oci::paths::{Role, State};
use crate::security::cipher::DataKey;
use crate::security::grant::{self, ReadKeys};
use crate::security::keycache::Use;
use crate::security::session::peek;
use crate::wire::message::{Grant, Message};

impl Engine {
    /// A message passing through this node: the middlebox judges it. `read` is the key a
    /// grant gave for the relay half it arrived on (with the half's index); data in transit
    /// is looked up by its label instead. `false` (counted as a drop) when the message is
    /// stopped, or when this node runs no middlebox at all.
    pub(crate) fn middlebox_passes(
        &mut self,
        message: &[u8],
        read: Option<(usize, DataKey)>,
    ) -> bool {
        if self.middlebox.is_none() {
            self.drop_input(DropReason::Overlay(crate::ocd::OverlayDrop::NotAMiddlebox));
            return false;
        }
        let payload = match Message::parse(message) {
            Ok(Message::Data { label, payload }) => {
                let read = read.or_else(|| self.granted.get(label).map(|k| (label as usize, *k)));
                Some((payload, read))
            }
            Ok(_) => None,
            // Not an OCALA message: nothing a middlebox should pass on.
            Err(_) => {
                self.drop_input(DropReason::Middlebox("not an OCALA message"));
                return false;
            }
        };
        let opened = payload.and_then(|(p, read)| {
            let (slot, raw) = read?;
            let key = self.key_cache.get(slot, Use::Open, &raw)?;
            let mut buf = self.pool.take();
            match peek(p, key, &mut buf) {
                Some(()) => Some(buf),
                None => {
                    self.pool.give(buf);
                    None
                }
            }
        });
        let seen = match (payload, &opened) {
            // An empty packet is an acknowledgement (of the confirm): nothing to judge.
            (Some(_), Some(packet)) if packet.is_empty() => Seen::Control,
            (Some(_), Some(packet)) => Seen::Opened(packet),
            (Some((p, _)), None) => Seen::Data(p),
            (None, _) => Seen::Control,
        };
        let now = self.now;
        let verdict = self
            .middlebox
            .as_mut()
            .map_or(Verdict::Pass, |m| m.inspect(now, seen));
        if let Some(buf) = opened {
            self.pool.give(buf);
        }
        match verdict {
            Verdict::Pass => true,
            Verdict::Drop(why) => {
                self.drop_input(DropReason::Middlebox(why));
                false
            }
        }
    }

    /// The keys in a grant, when it is sealed to this node and this node is a middlebox.
    fn open_grant(&self, g: &Grant<'_>) -> Option<ReadKeys> {
        self.middlebox.as_ref()?;
        let id = self.credentials.identity.as_ref()?;
        grant::open(&id.static_private, g.path_id, g.sealed)
    }

    /// A message held in transit: a grant sealed to us is kept (and goes no further);
    /// `false` for anything else.
    pub(crate) fn keep_transit_grant(&mut self, message: &[u8]) -> bool {
        let Ok(Message::Grant(g)) = Message::parse(message) else {
            return false;
        };
        let Some(keys) = self.open_grant(&g) else {
            return false;
        };
        let now = self.now;
        self.granted
            .insert(now, keys.responder_label, keys.to_responder);
        self.granted
            .insert(now, keys.initiator_label, keys.to_initiator);
        true
    }

    /// A grant addressed to one of our labels: kept when it is ours and we relay the path,
    /// passed on towards the responder when it is for a middlebox further on.
    pub(crate) fn on_grant(&mut self, tunnel: Option<usize>, g: &Grant<'_>) {
        let Some(key) = self.paths.by_label(g.receiver_label) else {
            return self.drop_input(DropReason::UnknownLabel);
        };
        let Some(p) = self.paths.get(key) else { return };
        if Some(p.tunnel) != tunnel {
            return self.drop_input(DropReason::WrongPeer);
        }
        let Role::Relay { twin, .. } = p.role else {
            // Certified for a middlebox that was not on the path.
            return self.drop_input(DropReason::UnusedGrant);
        };
        let Some(t) = self.paths.get(twin).filter(|t| t.state == State::Up) else {
            return self.drop_input(DropReason::PathNotUp);
        };
        let (tunnel, peer, path_id) = (t.tunnel, t.peer_label, t.path_id);
        if g.path_id != path_id {
            return self.drop_input(DropReason::WrongPeer);
        }
        match self.open_grant(g) {
            // It came from the initiator's side: data arriving on this half goes to the
            // responder, data arriving on the twin to the initiator.
            Some(keys) => {
                if let Some(p) = self.paths.get_mut(key) {
                    p.read = Some(Box::new(keys.to_responder));
                }
                if let Some(t) = self.paths.get_mut(twin) {
                    t.read = Some(Box::new(keys.to_initiator));
                }
            }
            None => {
                let msg = Message::Grant(Grant {
                    receiver_label: peer,
                    ..*g
                });
                self.send_control(tunnel, &msg);
            }
        }
    }
}
