//! Gateways (paper §3.2.1): a node configured to relay sets up the rest of a path itself,
//! holds two descriptors — one per side — and from then on swaps labels without looking at
//! what it carries. Handshake messages pass through untouched, so the two ends authenticate
//! each other and the gateway sees only ciphertext.

use crate::api::{DropReason, Event, OverlayId};
use crate::engine::Engine;
use crate::ocd::Peer;
use crate::oci::paths::{Role, SetupSpec, State};
use crate::oci::setup::{remaining_hops, Failure};
use crate::security::handshake::COOKIE_BIT;
use crate::wire::message::{Accept, Confirm, Message, RejectReason, Setup};

impl Engine {
    /// Relays a setup with hops remaining: refuses unless this node is a gateway, the path
    /// does not loop, and the next hop's overlay is here; then sets up the next tunnel.
    pub(crate) fn relay_setup(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        known: Option<usize>,
        s: &Setup<'_>,
        handshake: &[u8],
    ) -> Result<(), (DropReason, Failure)> {
        self.return_hops(s.return_name)?;
        if !self.cfg.gateway {
            return Err((
                DropReason::NotAGateway,
                Failure::new(RejectReason::NotAGateway, "this node does not relay"),
            ));
        }
        if self.paths.relayed(s.path_id).is_some() {
            return Err((
                DropReason::Loop,
                Failure::new(RejectReason::Loop, "path crosses this gateway twice"),
            ));
        }
        let next = match self.parse(s.remaining) {
            Ok(Some(n)) => n,
            Ok(None) => {
                let text = format!("gateway has no overlay for '{}'", s.remaining);
                return Err((
                    DropReason::UnknownOverlay,
                    Failure::new(RejectReason::UnknownOverlay, text),
                ));
            }
            Err(e) => {
                return Err((
                    DropReason::UnknownOverlay,
                    Failure::new(RejectReason::BadName, e.to_string()),
                ))
            }
        };
        let first = next.first_hop().clone();
        let Some(down_overlay) = self.overlay_id(&first.overlay) else {
            let text = format!("gateway has no overlay '{}'", first.overlay);
            return Err((
                DropReason::UnknownOverlay,
                Failure::new(RejectReason::UnknownOverlay, text),
            ));
        };
        let local = &self.overlays[usize::from(down_overlay.0)];
        let spec = SetupSpec {
            remaining: remaining_hops(&next),
            // The name grows by this gateway, so the destination sees a name that leads back.
            return_name: format!("{}_{}.{}", s.return_name, local.local_name, local.name),
            hop_count: s.hop_count.saturating_add(1),
            options: s.options & !COOKIE_BIT,
            handshake: handshake.to_vec(),
            cookie: None,
            sources: s.sources,
        };
        let down_tunnel = self
            .tunnel_for(down_overlay, &first.element(), &first.prefix)
            .map_err(|f| (DropReason::UnknownOverlay, f))?;
        let Some(up_tunnel) = self.accept_tunnel(overlay, from, known) else {
            return Err((
                DropReason::UnknownOverlay,
                Failure::new(RejectReason::UnknownOverlay, "overlay not running"),
            ));
        };
        let from_name = s.return_name.to_string();
        let to_name = s.remaining.to_string();
        let upstream = Role::Relay {
            twin: usize::MAX,
            downstream: false,
        };
        let up = self.add_path(
            up_tunnel,
            s.path_id,
            upstream,
            from_name.clone(),
            None,
            s.sender_label,
        );
        let down = self.add_path(
            down_tunnel,
            s.path_id,
            Role::Relay {
                twin: up,
                downstream: true,
            },
            to_name.clone(),
            Some(spec),
            0,
        );
        self.paths.touch();
        if let Some(p) = self.paths.get_mut(up) {
            p.role = Role::Relay {
                twin: down,
                downstream: false,
            };
        }
        self.paths.mark_relayed(s.path_id, up);
        self.event(Event::PathRelayed {
            from: from_name,
            to: to_name,
        });
        if self.tunnels.get(down_tunnel).is_some_and(|t| t.up) {
            self.send_setup(down);
        }
        Ok(())
    }

    /// The next hop accepted: join the halves and pass the accept (and its handshake
    /// answer) back towards the initiator.
    pub(crate) fn relay_accept(&mut self, down: usize, up: usize, a: &Accept<'_>) {
        self.paths.set_peer(down, a.sender_label);
        self.paths.set_state(down, State::Up);
        self.paths.set_state(up, State::Up);
        if let Some(p) = self.paths.get_mut(down) {
            p.setup = None;
        }
        let Some(t) = self.paths.get_mut(up) else {
            return;
        };
        t.answer = a.handshake.to_vec();
        t.families = a.families;
        let (tunnel, label, peer, path_id) = (t.tunnel, t.label, t.peer_label, t.path_id);
        let msg = Message::Accept(Accept {
            sender_label: label,
            receiver_label: peer,
            path_id,
            handshake: a.handshake,
            families: a.families,
        });
        self.send_control(tunnel, &msg);
    }

    /// Passes the initiator's confirm, which arrived on relay half `up`, on to the next hop.
    pub(crate) fn relay_confirm(&mut self, up: usize, twin: usize, c: &Confirm<'_>) {
        let Some(t) = self.paths.get(twin).filter(|t| t.state == State::Up) else {
            return self.drop_input(DropReason::PathNotUp);
        };
        let (tunnel, peer, path_id) = (t.tunnel, t.peer_label, t.path_id);
        if let Some(u) = self.paths.get_mut(up) {
            u.confirmed = true;
            u.answer = Vec::new();
        }
        let msg = Message::Confirm(Confirm {
            receiver_label: peer,
            path_id,
            handshake: c.handshake,
        });
        self.send_control(tunnel, &msg);
    }
}
