//! Path setup, accept, reject and close (paper §3.1.1, §3.2.1), with retransmission and
//! exponential backoff. A gateway receiving a setup with hops remaining sets up the rest of
//! the path itself and joins the two halves, so data is then relayed by label alone.

use crate::api::{Event, OverlayId};
use crate::dns::names::{parse_name, OverlayName, Security};
use crate::engine::Engine;
use crate::ocd::TunnelRef;
use crate::oci::paths::{Path, Role, SetupSpec, State};
use crate::timers::Timer;
use crate::wire::message::{Accept, Close, CloseReason, Message, Reject, RejectReason, Setup};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Longest wait between setup retransmissions. With the default first timeout (200 ms) and
/// five attempts a dead next hop is reported after 5 s, before a stub resolver gives up.
const MAX_RTO: Duration = Duration::from_secs(2);

/// Option bits carried in setup messages (path-wide `.oci` options).
pub(crate) fn option_bits(security: Option<Security>) -> u8 {
    match security {
        None => 0,
        Some(Security::Encrypt) => 1,
        Some(Security::Auth) => 2,
        Some(Security::Plain) => 4,
    }
}

/// The name a first-hop gateway must set up next: every hop but the first, destination first.
pub(crate) fn remaining_hops(name: &OverlayName) -> String {
    let n = name.hops.len().saturating_sub(1);
    name.hops[..n]
        .iter()
        .map(|h| h.element())
        .collect::<Vec<_>>()
        .join("_")
}

/// Why a setup failed, with the text apps see in an Extended DNS Error.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) reason: RejectReason,
    pub(crate) text: String,
}

impl Engine {
    /// Parses a name with this node's overlays as the known first hops.
    pub(crate) fn parse(
        &self,
        name: &str,
    ) -> Result<Option<OverlayName>, crate::dns::names::NameError> {
        parse_name(name, |suffix| {
            self.overlays.iter().any(|o| o.name == suffix)
        })
    }

    /// The tunnel to a hop: an existing one for the same element, or a new one the module
    /// starts setting up.
    fn tunnel_for(
        &mut self,
        overlay: OverlayId,
        element: &str,
        prefix: &str,
    ) -> Result<usize, Failure> {
        if let Some(t) = self.tunnels.by_element(overlay, element) {
            return Ok(t);
        }
        let now = self.now;
        let module = self.module(overlay).ok_or(Failure {
            reason: RejectReason::UnknownOverlay,
            text: format!("no overlay for '{element}'"),
        })?;
        let hop = module.parse_hop(prefix).map_err(|e| Failure {
            reason: RejectReason::BadName,
            text: format!("'{element}': {e}"),
        })?;
        let r = module.setup(now, &hop);
        let key = self.tunnels.register(overlay, r, Some(element), false);
        self.drain_overlay(overlay);
        Ok(key)
    }

    /// Starts a path for a handle's name. The handle then points at it.
    pub(crate) fn start_path(&mut self, handle: usize) -> Result<usize, Failure> {
        let name = self
            .handles
            .get(handle)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        let parsed = match self.parse(&name) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Failure {
                    reason: RejectReason::UnknownOverlay,
                    text: format!("'{name}' is not an overlay name"),
                })
            }
            Err(e) => {
                return Err(Failure {
                    reason: RejectReason::BadName,
                    text: e.to_string(),
                })
            }
        };
        let first = parsed.first_hop().clone();
        let overlay = self.overlay_id(&first.overlay).ok_or(Failure {
            reason: RejectReason::UnknownOverlay,
            text: format!("overlay '{}' is not configured", first.overlay),
        })?;
        if self.paths.len() >= self.cfg.limits.max_paths {
            return Err(Failure {
                reason: RejectReason::NoResources,
                text: "path table full".into(),
            });
        }
        let local = &self.overlays[usize::from(overlay.0)];
        let spec = SetupSpec {
            remaining: remaining_hops(&parsed),
            return_name: format!("{}.{}", local.local_name, local.name),
            hop_count: 0,
            options: option_bits(parsed.security),
        };
        let tunnel = self.tunnel_for(overlay, &first.element(), &first.prefix)?;
        let path_id = self.rng.next_u64();
        let key = self.add_path(
            tunnel,
            path_id,
            Role::Initiator { handle },
            name,
            Some(spec),
            0,
        );
        if let Some(h) = self.handles.get_mut(handle) {
            h.path = Some(key);
        }
        if self.tunnels.get(tunnel).is_some_and(|t| t.up) {
            self.send_setup(key);
        }
        Ok(key)
    }

    /// Stores a path and counts it on its tunnel.
    fn add_path(
        &mut self,
        tunnel: usize,
        path_id: u64,
        role: Role,
        name: String,
        setup: Option<SetupSpec>,
        peer_label: u32,
    ) -> usize {
        let state = match (&setup, role) {
            (Some(_), _) => State::AwaitTunnel,
            (None, Role::Relay { .. }) => State::AwaitDownstream,
            (None, _) => State::Up,
        };
        let key = self.paths.insert(Path {
            label: 0,
            path_id,
            tunnel,
            peer_label: 0,
            role,
            state,
            name,
            setup,
            started: self.now,
            pending: VecDeque::new(),
            queries: Vec::new(),
        });
        if peer_label != 0 {
            self.paths.set_peer(key, peer_label);
        }
        if let Some(t) = self.tunnels.get_mut(tunnel) {
            t.paths += 1;
        }
        key
    }

    /// Sends a control message over a path's tunnel.
    pub(crate) fn send_control(&mut self, tunnel: usize, msg: &Message<'_>) {
        let Some(t) = self.tunnels.get(tunnel) else {
            return;
        };
        let (overlay, r) = (t.overlay, t.module_ref);
        let mut buf = self.pool.take();
        if msg.encode(buf.tail_vec()).is_err() {
            self.pool.give(buf);
            return;
        }
        let now = self.now;
        if let Some(m) = self.module(overlay) {
            if let Err(buf) = m.send(now, r, buf) {
                self.pool.give(buf);
            }
        }
        self.drain_overlay(overlay);
    }

    /// Sends a control message to a sender we keep no tunnel for (rate limited).
    pub(crate) fn reply_stateless(
        &mut self,
        overlay: OverlayId,
        to: SocketAddr,
        msg: &Message<'_>,
    ) {
        if !self.may_reply() {
            return;
        }
        let mut buf = self.pool.take();
        if msg.encode(buf.tail_vec()).is_err() {
            self.pool.give(buf);
            return;
        }
        if let Some(m) = self.module(overlay) {
            m.reply(to, buf);
        }
        self.drain_overlay(overlay);
    }

    /// (Re)transmits a path's setup and arms the retransmission timer.
    pub(crate) fn send_setup(&mut self, key: usize) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let attempts = match p.state {
            State::Connecting { attempts } => attempts + 1,
            _ => 1,
        };
        if attempts == 1 {
            p.started = self.now;
        }
        p.state = State::Connecting { attempts };
        let Some(spec) = p.setup.clone() else { return };
        let (tunnel, label, path_id, gen) = (p.tunnel, p.label, p.path_id, p.gen());
        let msg = Message::Setup(Setup {
            sender_label: label,
            path_id,
            hop_count: spec.hop_count,
            options: spec.options,
            return_name: &spec.return_name,
            remaining: &spec.remaining,
            handshake: &[],
        });
        self.send_control(tunnel, &msg);
        let base = Duration::from_millis(self.cfg.limits.setup_rto_ms);
        let rto = base
            .saturating_mul(1u32 << (attempts - 1).min(16))
            .min(MAX_RTO);
        self.timers.schedule(
            self.now.saturating_add(rto),
            Timer::Setup { path: key, gen },
        );
    }

    pub(crate) fn on_setup_timer(&mut self, key: usize, gen: u32) {
        let Some(p) = self.paths.get_gen(key, gen) else {
            return;
        };
        let State::Connecting { attempts } = p.state else {
            return;
        };
        if attempts >= self.cfg.limits.setup_attempts {
            let text = format!("no answer from the next hop after {attempts} attempts");
            self.fail_setup(
                key,
                Failure {
                    reason: RejectReason::Unreachable,
                    text,
                },
            );
        } else {
            self.send_setup(key);
        }
    }

    /// A tunnel the module finished setting up: paths waiting on it send their setup.
    pub(crate) fn on_tunnel_up(&mut self, overlay: OverlayId, r: TunnelRef) {
        let Some(t) = self.tunnels.by_module(overlay, r) else {
            return;
        };
        if let Some(tun) = self.tunnels.get_mut(t) {
            if tun.up {
                return;
            }
            tun.up = true;
        }
        let waiting: Vec<usize> = self
            .paths
            .iter()
            .filter(|(_, p)| p.tunnel == t && p.state == State::AwaitTunnel)
            .map(|(k, _)| k)
            .collect();
        for k in waiting {
            self.send_setup(k);
        }
    }

    pub(crate) fn on_tunnel_failed(&mut self, overlay: OverlayId, r: TunnelRef, why: &str) {
        let Some(t) = self.tunnels.by_module(overlay, r) else {
            return;
        };
        for k in self.paths.on_tunnel(t) {
            let text = format!("cannot reach {why}");
            self.fail_setup(
                k,
                Failure {
                    reason: RejectReason::UnknownHost,
                    text,
                },
            );
        }
    }

    pub(crate) fn on_tunnel_dead(&mut self, overlay: OverlayId, r: TunnelRef) {
        let Some(t) = self.tunnels.by_module(overlay, r) else {
            return;
        };
        for k in self.paths.on_tunnel(t) {
            self.path_down(k, "peer stopped answering keepalives", None);
        }
    }

    /// A setup that failed: apps waiting get SERVFAIL; a relay tells the node before it.
    pub(crate) fn fail_setup(&mut self, key: usize, failure: Failure) {
        let Some(p) = self.paths.get(key) else { return };
        match p.role {
            Role::Initiator { handle } => {
                let name = p.name.clone();
                self.event(Event::SetupFailed {
                    name,
                    reason: failure.text.clone(),
                });
                self.answer_waiting_failed(key, &failure);
                self.remove_path(key);
                if self.handles.get(handle).is_some_and(|h| !h.handed_out) {
                    if let Some(h) = self.handles.release(handle) {
                        self.event(Event::HandleReleased { name: h.name });
                    }
                }
            }
            Role::Relay { twin, .. } => {
                self.reject_upstream(twin, &failure);
                self.remove_path(key);
                self.remove_path(twin);
            }
            Role::Responder { .. } => self.remove_path(key),
        }
    }

    fn reject_upstream(&mut self, key: usize, failure: &Failure) {
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
        if let Role::Initiator { handle } | Role::Responder { handle } = p.role {
            if let Some(h) = self.handles.get_mut(handle) {
                if h.path == Some(key) {
                    h.path = None;
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
            }
        }
    }

    /// A path lost after it was up. `notify` sends the peer a close first.
    pub(crate) fn path_down(&mut self, key: usize, why: &str, notify: Option<CloseReason>) {
        let Some(p) = self.paths.get(key) else { return };
        let (role, tunnel, peer, path_id, name, state) = (
            p.role,
            p.tunnel,
            p.peer_label,
            p.path_id,
            p.name.clone(),
            p.state,
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
                if let Some(t) = self.paths.get(twin) {
                    let (tt, tp, tid) = (t.tunnel, t.peer_label, t.path_id);
                    if tp != 0 {
                        let msg = Message::Close(Close {
                            receiver_label: tp,
                            path_id: tid,
                            reason: CloseReason::PeerClosed,
                        });
                        self.send_control(tt, &msg);
                    } else {
                        let failure = Failure {
                            reason: RejectReason::Unreachable,
                            text: why.to_string(),
                        };
                        self.reject_upstream(twin, &failure);
                    }
                }
                self.remove_path(key);
                self.remove_path(twin);
            }
            Role::Initiator { .. } if state != State::Up => {
                self.fail_setup(
                    key,
                    Failure {
                        reason: RejectReason::Unreachable,
                        text: why.to_string(),
                    },
                );
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

    /// Closes a path on our own initiative (idle handle, operator).
    pub(crate) fn close_path(&mut self, key: usize, reason: CloseReason, why: &str) {
        self.path_down(key, why, Some(reason));
    }

    /// A setup from a peer: answer it as the destination, relay it as a gateway, or refuse.
    pub(crate) fn on_setup(
        &mut self,
        overlay: OverlayId,
        from: SocketAddr,
        known: Option<usize>,
        s: &Setup<'_>,
    ) {
        if let Some(t) = known {
            if let Some(existing) = self.paths.by_peer(t, s.sender_label) {
                // A retransmitted setup: repeat the accept if we already sent one.
                if let Some(p) = self.paths.get(existing).filter(|p| p.path_id == s.path_id) {
                    if p.state == State::Up {
                        let msg = Message::Accept(Accept {
                            sender_label: p.label,
                            receiver_label: s.sender_label,
                            path_id: s.path_id,
                            handshake: &[],
                        });
                        self.send_control(t, &msg);
                    }
                    return;
                }
            }
        }
        let refuse = |reason: RejectReason, text: String| Failure { reason, text };
        let result = if s.hop_count >= self.cfg.limits.max_hops {
            Err((
                crate::api::DropReason::HopLimit,
                refuse(
                    RejectReason::HopLimit,
                    format!("more than {} hops", self.cfg.limits.max_hops),
                ),
            ))
        } else if self.paths.len() + 2 > self.cfg.limits.max_paths {
            Err((
                crate::api::DropReason::NoResources,
                refuse(RejectReason::NoResources, "path table full".into()),
            ))
        } else if s.remaining.is_empty() {
            self.accept_setup(overlay, from, known, s)
        } else {
            self.relay_setup(overlay, from, known, s)
        };
        if let Err((drop, failure)) = result {
            self.drop_input(drop);
            let msg = Message::Reject(Reject {
                receiver_label: s.sender_label,
                path_id: s.path_id,
                reason: failure.reason,
                text: &failure.text,
            });
            match known {
                Some(t) => self.send_control(t, &msg),
                None => self.reply_stateless(overlay, from, &msg),
            }
        }
    }

    /// The tunnel a peer's setup came over, created now that the setup is accepted.
    fn accept_tunnel(
        &mut self,
        overlay: OverlayId,
        from: SocketAddr,
        known: Option<usize>,
    ) -> Option<usize> {
        if let Some(t) = known {
            return Some(t);
        }
        let now = self.now;
        let r = self.module(overlay)?.accept(now, from);
        Some(self.tunnels.register(overlay, r, None, true))
    }

    fn accept_setup(
        &mut self,
        overlay: OverlayId,
        from: SocketAddr,
        known: Option<usize>,
        s: &Setup<'_>,
    ) -> Result<(), (crate::api::DropReason, Failure)> {
        let name = s.return_name.to_ascii_lowercase();
        let Some(handle) = self.bind_handle(&name) else {
            self.event(Event::PoolExhausted { name: name.clone() });
            return Err((
                crate::api::DropReason::NoResources,
                Failure {
                    reason: RejectReason::NoResources,
                    text: "no free handle".into(),
                },
            ));
        };
        let Some(tunnel) = self.accept_tunnel(overlay, from, known) else {
            return Err((
                crate::api::DropReason::UnknownOverlay,
                Failure {
                    reason: RejectReason::UnknownOverlay,
                    text: "overlay not running".into(),
                },
            ));
        };
        let key = self.add_path(
            tunnel,
            s.path_id,
            Role::Responder { handle },
            name.clone(),
            None,
            s.sender_label,
        );
        if let Some(h) = self.handles.get_mut(handle) {
            h.path = Some(key);
            // Local apps will see packets from this address.
            h.handed_out = true;
        }
        let label = self.paths.get(key).map_or(0, |p| p.label);
        let msg = Message::Accept(Accept {
            sender_label: label,
            receiver_label: s.sender_label,
            path_id: s.path_id,
            handshake: &[],
        });
        self.send_control(tunnel, &msg);
        self.event(Event::PathAccepted { name, label });
        Ok(())
    }

    fn relay_setup(
        &mut self,
        overlay: OverlayId,
        from: SocketAddr,
        known: Option<usize>,
        s: &Setup<'_>,
    ) -> Result<(), (crate::api::DropReason, Failure)> {
        use crate::api::DropReason as D;
        if !self.cfg.gateway {
            return Err((
                D::NotAGateway,
                Failure {
                    reason: RejectReason::NotAGateway,
                    text: "this node does not relay".into(),
                },
            ));
        }
        if self.paths.relayed(s.path_id).is_some() {
            return Err((
                D::Loop,
                Failure {
                    reason: RejectReason::Loop,
                    text: "path crosses this gateway twice".into(),
                },
            ));
        }
        let next = match self.parse(s.remaining) {
            Ok(Some(n)) => n,
            Ok(None) => {
                let text = format!("gateway has no overlay for '{}'", s.remaining);
                return Err((
                    D::UnknownOverlay,
                    Failure {
                        reason: RejectReason::UnknownOverlay,
                        text,
                    },
                ));
            }
            Err(e) => {
                return Err((
                    D::UnknownOverlay,
                    Failure {
                        reason: RejectReason::BadName,
                        text: e.to_string(),
                    },
                ))
            }
        };
        let first = next.first_hop().clone();
        let Some(down_overlay) = self.overlay_id(&first.overlay) else {
            let text = format!("gateway has no overlay '{}'", first.overlay);
            return Err((
                D::UnknownOverlay,
                Failure {
                    reason: RejectReason::UnknownOverlay,
                    text,
                },
            ));
        };
        let local = &self.overlays[usize::from(down_overlay.0)];
        let spec = SetupSpec {
            remaining: remaining_hops(&next),
            return_name: format!("{}_{}.{}", s.return_name, local.local_name, local.name),
            hop_count: s.hop_count.saturating_add(1),
            options: s.options,
        };
        let down_tunnel = self
            .tunnel_for(down_overlay, &first.element(), &first.prefix)
            .map_err(|f| (D::UnknownOverlay, f))?;
        let Some(up_tunnel) = self.accept_tunnel(overlay, from, known) else {
            return Err((
                D::UnknownOverlay,
                Failure {
                    reason: RejectReason::UnknownOverlay,
                    text: "overlay not running".into(),
                },
            ));
        };
        let from_name = s.return_name.to_string();
        let to_name = s.remaining.to_string();
        let up = self.add_path(
            up_tunnel,
            s.path_id,
            Role::Relay {
                twin: usize::MAX,
                downstream: false,
            },
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

    /// Finds the path a control message names, checking it came over the path's tunnel.
    fn addressed_path(&mut self, tunnel: Option<usize>, label: u32, path_id: u64) -> Option<usize> {
        let key = self.paths.by_label(label);
        let ok = key
            .and_then(|k| self.paths.get(k))
            .is_some_and(|p| Some(p.tunnel) == tunnel && p.path_id == path_id);
        if !ok {
            self.drop_input(if key.is_some() {
                crate::api::DropReason::WrongPeer
            } else {
                crate::api::DropReason::UnknownLabel
            });
            return None;
        }
        key
    }

    pub(crate) fn on_accept(&mut self, tunnel: Option<usize>, a: &Accept<'_>) {
        let Some(key) = self.addressed_path(tunnel, a.receiver_label, a.path_id) else {
            return;
        };
        let Some(p) = self.paths.get(key) else { return };
        if !matches!(p.state, State::Connecting { .. }) {
            return; // a duplicate accept
        }
        let (role, started, name) = (p.role, p.started, p.name.clone());
        self.paths.set_peer(key, a.sender_label);
        if let Some(p) = self.paths.get_mut(key) {
            p.state = State::Up;
            p.setup = None;
        }
        match role {
            Role::Initiator { .. } => {
                let setup = self.now.since(started);
                self.event(Event::PathUp {
                    name,
                    label: a.receiver_label,
                    setup,
                });
                self.answer_waiting(key);
                self.flush_pending(key);
            }
            Role::Relay { twin, .. } => {
                let Some(t) = self.paths.get_mut(twin) else {
                    return;
                };
                t.state = State::Up;
                let (tt, label, peer, path_id) = (t.tunnel, t.label, t.peer_label, t.path_id);
                let msg = Message::Accept(Accept {
                    sender_label: label,
                    receiver_label: peer,
                    path_id,
                    handshake: &[],
                });
                self.send_control(tt, &msg);
            }
            Role::Responder { .. } => {}
        }
    }

    pub(crate) fn on_reject(&mut self, tunnel: Option<usize>, r: &Reject<'_>) {
        let Some(key) = self.addressed_path(tunnel, r.receiver_label, r.path_id) else {
            return;
        };
        if !self
            .paths
            .get(key)
            .is_some_and(|p| matches!(p.state, State::Connecting { .. }))
        {
            return;
        }
        self.fail_setup(
            key,
            Failure {
                reason: r.reason,
                text: format!("{}: {}", r.reason, r.text),
            },
        );
    }

    pub(crate) fn on_close(&mut self, tunnel: Option<usize>, c: &Close) {
        let key = if c.reason == CloseReason::UnknownLabel {
            // The peer no longer knows the label we send to: find our path by it.
            match tunnel.and_then(|t| self.paths.by_peer(t, c.receiver_label)) {
                Some(k) => Some(k),
                None => {
                    self.drop_input(crate::api::DropReason::UnknownLabel);
                    None
                }
            }
        } else {
            self.addressed_path(tunnel, c.receiver_label, c.path_id)
        };
        if let Some(k) = key {
            self.path_down(k, &format!("closed by peer: {}", c.reason), None);
        }
    }
}
