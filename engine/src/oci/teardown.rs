//! How paths end: a setup that failed, a path lost or closed, and what each end and each
//! gateway tells its neighbours so no half of a path is left behind.

use crate::api::{DropReason, Event};
use crate::engine::Engine;
use crate::oci::paths::{Role, State};
use crate::oci::setup::Failure;
use crate::wire::message::{Close, CloseReason, Message, Reject, RejectReason};

impl Engine {
    /// A setup that failed: apps waiting get SERVFAIL; a relay tells the node before it.
    pub(crate) fn fail_setup(&mut self, key: usize, failure: Failure) {
        let Some(p) = self.paths.get(key) else { return };
        match p.role {
            Role::Initiator { handle } => {
                let (name, replaces) = (p.name.clone(), p.replaces);
                self.event(Event::SetupFailed {
                    name,
                    reason: failure.text.clone(),
                });
                self.answer_waiting_failed(key, &failure);
                self.remove_path(key);
                // A rekey that failed: the old keys stay in use, and another try comes later.
                if let Some(old) = replaces.and_then(|l| self.paths.by_label(l)) {
                    self.arm_rekey(old);
                }
                self.release_unused_handle(handle);
            }
            Role::Relay { twin, .. } => {
                self.reject_upstream(twin, &failure);
                self.remove_path(key);
                self.remove_path(twin);
            }
            Role::Responder { .. } => self.remove_path(key),
        }
    }

    /// A handle no app ever learned is given back rather than held for hours (a lookup of a
    /// name that never works must not drain the pool).
    pub(crate) fn release_unused_handle(&mut self, handle: usize) {
        if self.handles.get(handle).is_some_and(|h| !h.handed_out) {
            self.release_handle(handle, "never used");
        }
    }

    /// Every path that delivers to or sends for a handle.
    pub(crate) fn paths_of_handle(&self, handle: usize) -> Vec<usize> {
        self.paths
            .iter()
            .filter(|(_, p)| p.role.handle() == Some(handle))
            .map(|(k, _)| k)
            .collect()
    }

    /// Releases a handle after closing every path that refers to it, so no path outlives
    /// its handle and a reused slot is never reached through a stale reference.
    pub(crate) fn release_handle(&mut self, handle: usize, why: &str) {
        for key in self.paths_of_handle(handle) {
            self.close_path(key, CloseReason::Idle, why);
        }
        if let Some(h) = self.handles.release(handle) {
            self.event(Event::HandleReleased { name: h.name });
        }
    }

    /// Sends a path's peer a reject for it.
    pub(crate) fn reject_upstream(&mut self, key: usize, failure: &Failure) {
        let Some(p) = self.paths.get(key) else { return };
        let (tunnel, peer, path_id) = (p.tunnel, p.peer_label, p.path_id);
        let msg = Message::Reject(Reject {
            receiver_label: peer,
            path_id,
            reason: failure.reason,
            text: &failure.text,
        });
        self.send_control(tunnel, &msg);
    }

    /// Frees a path: its handle forgets it, its held packets are recycled, its tunnel loses
    /// a reference (and is closed at zero).
    pub(crate) fn remove_path(&mut self, key: usize) {
        let Some(mut p) = self.paths.remove(key) else {
            return;
        };
        let (handle, client) = (p.role.handle(), p.lan_client);
        if let Some(h) = handle {
            if self.handles.get(h).and_then(|x| x.path_of(client)) == Some(key) {
                // Another live path to the same name for the same apps (the peer's own,
                // after a simultaneous open, or a rekeyed one) carries on; otherwise the next
                // packet sets one up.
                let next = self.paths_of_handle(h).into_iter().find(|k| {
                    self.paths.get(*k).is_some_and(|p| {
                        p.state == State::Up && !p.retiring && p.lan_client == client
                    })
                });
                if let Some(x) = self.handles.get_mut(h) {
                    x.set_path_of(client, next);
                    self.handles.touch();
                }
            }
        }
        self.waiting_queries -= p.queries.len().min(self.waiting_queries);
        while let Some(pkt) = p.pending.pop_front() {
            self.pool.give(pkt);
        }
        let Some(t) = self.tunnels.get_mut(p.tunnel) else {
            return;
        };
        t.paths = t.paths.saturating_sub(1);
        if t.paths == 0 {
            if let Some(t) = self.tunnels.remove(p.tunnel) {
                if let Some(m) = self.module(t.overlay) {
                    m.close(t.module_ref);
                }
                self.heard = None;
                self.drain_overlay(t.overlay);
            }
        }
    }

    /// A path lost after it was up. `notify` sends the peer a close first.
    pub(crate) fn path_down(&mut self, key: usize, why: &str, notify: Option<CloseReason>) {
        let Some(p) = self.paths.get(key) else { return };
        let (role, tunnel, peer, path_id, name, state, retiring) = (
            p.role,
            p.tunnel,
            p.peer_label,
            p.path_id,
            p.name.clone(),
            p.state,
            p.retiring,
        );
        if let (Some(reason), true) = (notify, peer != 0) {
            self.send_control(
                tunnel,
                &Message::Close(Close {
                    receiver_label: peer,
                    path_id,
                    reason,
                }),
            );
        }
        match role {
            Role::Relay { twin, .. } => {
                // The other side hears of it; a downstream half still setting up has no peer
                // yet, and an accept that arrives for it later is answered with a close.
                if let Some(t) = self.paths.get(twin).filter(|t| t.peer_label != 0) {
                    let msg = Message::Close(Close {
                        receiver_label: t.peer_label,
                        path_id: t.path_id,
                        reason: CloseReason::PeerClosed,
                    });
                    let tt = t.tunnel;
                    self.send_control(tt, &msg);
                }
                self.remove_path(key);
                self.remove_path(twin);
            }
            Role::Initiator { .. } if state != State::Up => {
                self.fail_setup(key, Failure::new(RejectReason::Unreachable, why));
            }
            // Never fully open, or replaced by a rekeyed successor: nothing to report.
            Role::Responder { .. } if state != State::Up => self.remove_path(key),
            _ if retiring => self.remove_path(key),
            // A path its handle no longer uses (a rekeyed peer's old one) goes quietly.
            Role::Responder { handle: Some(h) }
                if self.handles.get(h).and_then(|h| h.path) != Some(key) =>
            {
                self.remove_path(key)
            }
            _ => {
                self.event(Event::PathDown {
                    name,
                    reason: why.to_string(),
                });
                self.remove_path(key);
            }
        }
    }

    /// Closes a path on our own initiative (idle handle, operator, shutdown).
    pub(crate) fn close_path(&mut self, key: usize, reason: CloseReason, why: &str) {
        self.path_down(key, why, Some(reason));
    }

    pub(crate) fn on_close(&mut self, tunnel: Option<usize>, c: &Close) {
        let key = if c.reason == CloseReason::UnknownLabel {
            // The peer no longer knows the label we send to: find our path by it.
            match tunnel.and_then(|t| self.paths.by_peer(t, c.receiver_label)) {
                Some(k) => Some(k),
                None => {
                    self.drop_input(DropReason::UnknownLabel);
                    None
                }
            }
        } else {
            self.addressed_path(tunnel, c.receiver_label, c.path_id)
        };
        let Some(k) = key else { return };
        if c.reason == CloseReason::UnknownLabel && self.renew(k) {
            return;
        }
        self.path_down(k, &format!("the peer said: {}", c.reason), None);
    }

    /// "Unknown label" carries no proof (a peer that lost its state has no keys to sign
    /// with), so on a secure path this node started it is only a hint: a fresh path is set
    /// up beside the old one and takes over once it is up, which a forged close cannot stop
    /// and a real one needs anyway. Returns false when the path is not one to renew.
    fn renew(&mut self, key: usize) -> bool {
        let Some(p) = self.paths.get(key) else {
            return false;
        };
        let (Role::Initiator { handle }, State::Up, true) = (p.role, p.state, p.secure.is_some())
        else {
            return false;
        };
        let (label, client) = (p.label, p.lan_client);
        if self.paths.iter().any(|(_, s)| s.replaces == Some(label)) {
            return true; // already renewing
        }
        self.start_path_for(handle, Some(key), client).is_ok()
    }
}
