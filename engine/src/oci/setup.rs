//! Path setup from the initiator's side (paper §3.1.1, §3.2.1): the setup message with its
//! retransmission and exponential backoff, and what the answer does — accept, reject, or a
//! busy responder's cookie. On a secure path the Noise handshake rides in the same messages,
//! so a secure path is up after the same single round trip.

use crate::api::{Event, OverlayId};
use crate::config::Protection;
use crate::dns::names::{parse_name, OverlayName, Security};
use crate::engine::Engine;
use crate::ocd::{Peer, TunnelRef};
use crate::oci::paths::{PartialForm, Path, Role, SetupSpec, State};
use crate::security::handshake::{bits_of, HandshakeError, COOKIE_BIT};
use crate::security::parameters::{read_plain_answer, PARTIAL_BIT};
use crate::timers::Timer;
use crate::wire::ecn::Ecn;
use crate::wire::message::{
    Accept, Close, CloseReason, Confirm, CookieReply, Message, Reject, RejectReason, Setup, Sources,
};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

/// Longest wait between setup retransmissions. With the default first timeout (200 ms) and
/// five attempts a dead next hop is reported after 5 s, before a stub resolver gives up.
const MAX_RTO: Duration = Duration::from_secs(2);

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

impl Failure {
    pub(crate) fn new(reason: RejectReason, text: impl Into<String>) -> Failure {
        Failure {
            reason,
            text: text.into(),
        }
    }
}

/// The retransmission timeout before attempt `attempts + 1`.
fn rto(base_ms: u64, attempts: u32) -> Duration {
    Duration::from_millis(base_ms)
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_RTO)
}

impl Engine {
    /// [`PARTIAL_BIT`] for a plain path's setup from a node whose driver takes partial
    /// checksums: its peer, if it understands, sends them so (`security::parameters`).
    fn plain_partial_bit(&self, mode: Protection) -> u8 {
        match mode {
            Protection::Plain if self.cfg.security.partial_checksums => PARTIAL_BIT,
            _ => 0,
        }
    }

    /// The protection a name asks for: its `.oci` option, else this node's default.
    pub(crate) fn protection_of_name(&self, name: &OverlayName) -> Protection {
        match name.security {
            Some(Security::Encrypt) => Protection::Encrypt,
            Some(Security::Auth) => Protection::Auth,
            Some(Security::Plain) => Protection::Plain,
            None => self.cfg.security.default,
        }
    }

    /// The handle name for a parsed name (see [`crate::oci::handles::handle_name`]).
    pub(crate) fn handle_name_of(&self, name: &OverlayName) -> String {
        let hops: Vec<String> = name.hops.iter().map(|h| h.element()).collect();
        crate::oci::handles::handle_name(
            &hops.join("_"),
            self.protection_of_name(name),
            self.cfg.security.default,
        )
    }

    /// Parses a name with this node's overlays as the known first hops.
    pub(crate) fn parse(
        &self,
        name: &str,
    ) -> Result<Option<OverlayName>, crate::dns::names::NameError> {
        parse_name(name, |suffix| {
            self.overlays.iter().any(|o| o.name == suffix)
        })
    }

    /// The name a hop's end must hold a certificate for: its host on its overlay, without
    /// the options that choose how to get there (`bob.<option>.<overlay>` is `bob.<overlay>`). Only the
    /// overlay's module knows its options; an overlay this node does not run is taken as
    /// written.
    pub(crate) fn identity_of(&mut self, hop: &crate::dns::names::Hop) -> String {
        let host = self
            .overlay_id(&hop.overlay)
            .and_then(|id| self.module(id))
            .and_then(|m| m.parse_hop(&hop.prefix).ok())
            .map(|spec| spec.host);
        match host {
            Some(host) => format!("{host}.{}", hop.overlay),
            None => hop.element(),
        }
    }

    /// The name a path's far end must be certified for: its destination's, or — when the
    /// destination is a legacy host (`web.x.com.ip_gw1.udp`), which holds no certificate —
    /// the legacy server gateway's, since the path ends there.
    pub(crate) fn far_end_identity(&mut self, name: &OverlayName) -> String {
        match crate::legacy::end_hop(&name.hops).cloned() {
            Some(far) => self.identity_of(&far),
            None => String::new(),
        }
    }

    /// The tunnel to a hop: an existing one for the same element, or a new one the module
    /// starts setting up.
    pub(crate) fn tunnel_for(
        &mut self,
        overlay: OverlayId,
        element: &str,
        prefix: &str,
    ) -> Result<usize, Failure> {
        if let Some(t) = self.tunnels.by_element(overlay, element) {
            return Ok(t);
        }
        let now = self.now;
        let module = self.module(overlay).ok_or_else(|| {
            Failure::new(
                RejectReason::UnknownOverlay,
                format!("no overlay for '{element}'"),
            )
        })?;
        let hop = module
            .parse_hop(prefix)
            .map_err(|e| Failure::new(RejectReason::BadName, format!("'{element}': {e}")))?;
        let r = module.setup(now, &hop);
        let key = self.tunnels.register(overlay, r, Some(element), false);
        self.drain_overlay(overlay);
        Ok(key)
    }

    /// The addresses the apps of a path send from, proposed to the far end as its handle for
    /// us when `handles.negotiate` is on: this node's TUN addresses, or a LAN client's own.
    fn own_sources(&self, client: Option<IpAddr>) -> Sources {
        let h = &self.cfg.handles;
        match client {
            _ if !h.negotiate => Sources::default(),
            None => Sources {
                v4: Some(h.tun_v4),
                v6: Some(h.tun_v6),
            },
            Some(IpAddr::V4(a)) => Sources {
                v4: Some(a),
                v6: None,
            },
            Some(IpAddr::V6(a)) => Sources {
                v4: None,
                v6: Some(a),
            },
        }
    }

    /// Starts a path for a handle's name, for local apps or a LAN client (`client`). The
    /// handle then points at it.
    pub(crate) fn start_path(
        &mut self,
        handle: usize,
        client: Option<IpAddr>,
    ) -> Result<usize, Failure> {
        self.start_path_for(handle, None, client)
    }

    /// Starts a path; with `replaces`, a successor that takes the handle over from that path
    /// only once it is up (rekeying), so traffic never waits.
    pub(crate) fn start_path_for(
        &mut self,
        handle: usize,
        replaces: Option<usize>,
        client: Option<IpAddr>,
    ) -> Result<usize, Failure> {
        let name = self
            .handles
            .get(handle)
            .map(|h| h.name.clone())
            .unwrap_or_default();
        let parsed = match self.parse(&name) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(Failure::new(
                    RejectReason::UnknownOverlay,
                    format!("'{name}' is not an overlay name"),
                ))
            }
            Err(e) => return Err(Failure::new(RejectReason::BadName, e.to_string())),
        };
        let first = parsed.first_hop().clone();
        let overlay = self.overlay_id(&first.overlay).ok_or_else(|| {
            Failure::new(
                RejectReason::UnknownOverlay,
                format!("overlay '{}' is not configured", first.overlay),
            )
        })?;
        if self.paths.len() >= self.cfg.limits.max_paths {
            return Err(Failure::new(RejectReason::NoResources, "path table full"));
        }
        let mode = self.protection_of_name(&parsed);
        let path_id = self.rng.next_u64();
        let destination = self.far_end_identity(&parsed);
        let secure = match mode {
            Protection::Plain => None,
            _ => Some(self.begin_handshake(mode, path_id, &destination)?),
        };
        // The way back mirrors the first hop's module options (`bob.<option>.<overlay>` comes
        // back as `alice.<option>.<overlay>`): the responder answers on a tunnel of the same
        // kind, and gives each such path a handle of its own.
        let options = self
            .module(overlay)
            .and_then(|m| m.parse_hop(&first.prefix).ok())
            .map(|h| h.options)
            .unwrap_or_default();
        let local = &self.overlays[usize::from(overlay.0)];
        let return_host = std::iter::once(local.local_name.as_str())
            .chain(options.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".");
        let mut return_name = format!("{return_host}.{}", local.name);
        if let Some(c) = client {
            // A LAN client is reached back through this gateway as a legacy host.
            return_name = format!("{}_{return_name}", crate::legacy::client_hop(c));
        }
        let spec = SetupSpec {
            remaining: remaining_hops(&parsed),
            return_name,
            hop_count: 0,
            options: bits_of(mode) | self.plain_partial_bit(mode),
            handshake: secure
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default(),
            cookie: None,
            sources: self.own_sources(client),
        };
        let tunnel = self.tunnel_for(overlay, &first.element(), &first.prefix)?;
        let key = self.add_path(
            tunnel,
            path_id,
            Role::Initiator { handle },
            name,
            Some(spec),
            0,
        );
        if let Some(p) = self.paths.get_mut(key) {
            p.secure = secure;
            p.lan_client = client;
        }
        let replaces = replaces
            .and_then(|old| self.paths.get(old))
            .map(|old| old.label);
        if let Some(p) = self.paths.get_mut(key) {
            p.replaces = replaces;
        }
        if replaces.is_none() {
            if let Some(h) = self.handles.get_mut(handle) {
                h.set_path_of(client, Some(key));
                self.handles.touch();
            }
        }
        if self.tunnels.get(tunnel).is_some_and(|t| t.up) {
            self.send_setup(key);
        }
        Ok(key)
    }

    /// Stores a path and counts it on its tunnel.
    pub(crate) fn add_path(
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
        let random = self.rng.next_u64() as u32;
        let key = self.paths.insert(
            Path {
                label: 0,
                path_id,
                tunnel,
                peer_label: 0,
                role,
                state,
                name,
                setup: setup.map(Box::new),
                started: self.now,
                retransmit_at: self.now,
                replaces: None,
                answer: Vec::new(),
                confirmed: false,
                retiring: false,
                pending: VecDeque::new(),
                queries: Vec::new(),
                secure: None,
                legacy: None,
                families: crate::wire::message::Families::BOTH,
                lan_client: None,
                sources: Sources::default(),
                read: None,
                partial: PartialForm::default(),
            },
            random,
        );
        if peer_label != 0 {
            self.paths.set_peer(key, peer_label);
        }
        if let Some(t) = self.tunnels.get_mut(tunnel) {
            t.paths += 1;
        }
        key
    }

    /// Sends a control message over a tunnel.
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
        self.send_on_tunnel(overlay, r, buf, Ecn::NotEct);
    }

    /// Sends a control message to a sender we keep no tunnel for (rate limited).
    pub(crate) fn reply_stateless(&mut self, overlay: OverlayId, to: Peer, msg: &Message<'_>) {
        if !self.may_reply(matches!(msg, Message::Cookie(_))) {
            return;
        }
        let mut buf = self.pool.take();
        if msg.encode(buf.tail_vec()).is_err() {
            self.pool.give(buf);
            return;
        }
        if matches!(msg, Message::Cookie(_)) {
            self.counters.cookie_replies += 1;
        }
        let now = self.now;
        if let Some(m) = self.module(overlay) {
            m.reply(now, &to, buf);
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
        let Some(spec) = p.setup.clone() else { return };
        let (tunnel, label, path_id, gen) = (p.tunnel, p.label, p.path_id, p.gen());
        self.paths.set_state(key, State::Connecting { attempts });
        let mut handshake = Vec::new();
        let mut options = spec.options;
        if let Some(cookie) = spec.cookie {
            options |= COOKIE_BIT;
            handshake.extend_from_slice(&cookie);
        }
        handshake.extend_from_slice(&spec.handshake);
        let msg = Message::Setup(Setup {
            sender_label: label,
            path_id,
            hop_count: spec.hop_count,
            options,
            return_name: &spec.return_name,
            remaining: &spec.remaining,
            handshake: &handshake,
            sources: spec.sources,
        });
        self.send_control(tunnel, &msg);
        let at = self
            .now
            .saturating_add(rto(self.cfg.limits.setup_rto_ms, attempts));
        self.arm_retransmit(key, gen, at);
    }

    /// Arms the path's retransmission timer; it supersedes any armed before.
    pub(crate) fn arm_retransmit(&mut self, key: usize, gen: u32, at: crate::time::Instant) {
        if let Some(p) = self.paths.get_mut(key) {
            p.retransmit_at = at;
        }
        self.timers.schedule(at, Timer::Setup { path: key, gen });
    }

    /// Retransmits, or gives up: setups, an initiator's unanswered confirm, and a
    /// responder's half-open handshake all use this one timer.
    pub(crate) fn on_setup_timer(&mut self, key: usize, gen: u32) {
        let Some(p) = self.paths.get_gen(key, gen) else {
            return;
        };
        if self.now < p.retransmit_at {
            return;
        }
        let max = self.cfg.limits.setup_attempts;
        match p.state {
            State::Connecting { attempts } if attempts >= max => {
                let failure = match p.secure.as_ref().filter(|s| s.tampered > 0) {
                    Some(s) => Failure::new(
                        RejectReason::Refused,
                        format!(
                            "authentication failed: {} answers from {} did not decrypt (tampered on the way?)",
                            s.tampered, s.peer_name
                        ),
                    ),
                    None => Failure::new(
                        RejectReason::Unreachable,
                        format!("no answer from the next hop after {attempts} attempts"),
                    ),
                };
                self.fail_setup(key, failure);
            }
            State::Connecting { .. } => self.send_setup(key),
            State::AwaitConfirm => {
                // The initiator never finished its handshake: forget the half-open state.
                self.remove_path(key);
            }
            State::Up => {
                let Some(s) = p
                    .secure
                    .as_ref()
                    .filter(|s| !s.confirmed && matches!(p.role, Role::Initiator { .. }))
                else {
                    return;
                };
                if s.confirms >= max {
                    self.path_down(
                        key,
                        "the peer never confirmed the handshake",
                        Some(CloseReason::PeerClosed),
                    );
                } else {
                    self.send_confirm(key);
                }
            }
            _ => {}
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

    /// Two module tunnels lead to one peer: paths and name elements of the newer move to the
    /// existing one, which then carries on (sending setups that were waiting).
    pub(crate) fn on_tunnel_same(&mut self, overlay: OverlayId, r: TunnelRef, existing: TunnelRef) {
        let Some(old) = self.tunnels.by_module(overlay, r) else {
            return;
        };
        let on_old = self.paths.on_tunnel(old);
        let Some(moved) = self.tunnels.remove(old) else {
            return;
        };
        let into = self.tunnels.register(overlay, existing, None, true);
        for e in &moved.elements {
            self.tunnels.register(overlay, existing, Some(e), true);
        }
        for k in on_old {
            self.paths.move_tunnel(k, into);
            if let Some(t) = self.tunnels.get_mut(into) {
                t.paths += 1;
            }
        }
        if let Some(m) = self.module(overlay) {
            m.close(r);
        }
        self.heard = None;
        self.on_tunnel_up(overlay, existing);
        let waiting = self.paths.on_tunnel(into);
        for k in waiting {
            if self
                .paths
                .get(k)
                .is_some_and(|p| p.state == State::AwaitTunnel)
            {
                self.send_setup(k);
            }
        }
    }

    pub(crate) fn on_tunnel_failed(&mut self, overlay: OverlayId, r: TunnelRef, why: &str) {
        let Some(t) = self.tunnels.by_module(overlay, r) else {
            return;
        };
        for k in self.paths.on_tunnel(t) {
            self.fail_setup(
                k,
                Failure::new(RejectReason::UnknownHost, format!("cannot reach {why}")),
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

    /// Finds the path a control message names, checking it came over the path's tunnel.
    pub(crate) fn addressed_path(
        &mut self,
        tunnel: Option<usize>,
        label: u32,
        path_id: u64,
    ) -> Option<usize> {
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
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        if !matches!(p.state, State::Connecting { .. }) {
            return; // a duplicate accept
        }
        p.families = a.families;
        let (role, started, name) = (p.role, p.started, p.name.clone());
        if let Role::Relay { twin, .. } = role {
            return self.relay_accept(key, twin, a);
        }
        if let Some(mut secure) = p.secure.take() {
            let result = self.finish_initiator(&mut secure, a.handshake);
            if let Some(p) = self.paths.get_mut(key) {
                p.secure = Some(secure);
            }
            let f = match result {
                Ok(()) => None,
                // The genuine accept comes again when our setup is retransmitted.
                Err(HandshakeError::Tampered) => {
                    if let Some(s) = self.paths.get_mut(key).and_then(|p| p.secure.as_mut()) {
                        s.tampered += 1;
                    }
                    return self.drop_input(crate::api::DropReason::Forged);
                }
                Err(HandshakeError::Refused(f)) => Some(f),
            };
            if let Some(f) = f {
                self.drop_input(crate::api::DropReason::AuthFailed);
                let close = Close {
                    receiver_label: a.sender_label,
                    path_id: a.path_id,
                    reason: CloseReason::PeerClosed,
                };
                if let Some(t) = tunnel {
                    self.send_control(t, &Message::Close(close));
                }
                return self.fail_setup(key, f);
            }
        } else if !a.handshake.is_empty() {
            // A plain path's answer, if this node asked for one.
            let offered = p
                .setup
                .as_ref()
                .is_some_and(|s| s.options & PARTIAL_BIT != 0);
            match read_plain_answer(a.handshake) {
                Ok(takes) if offered => {
                    p.partial = PartialForm {
                        send: takes,
                        receive: true,
                    }
                }
                _ => return self.drop_input(crate::api::DropReason::UnexpectedHandshake),
            }
        }
        self.paths.set_peer(key, a.sender_label);
        self.paths.set_state(key, State::Up);
        if let Some(p) = self.paths.get_mut(key) {
            p.setup = None;
            let latency = self.now.since(p.started);
            self.counters.setup_latency.observe(latency);
        }
        if self.paths.get(key).is_some_and(|p| p.secure.is_some()) {
            self.send_confirm(key);
        }
        self.took_over(key);
        let setup = self.now.since(started);
        let protection = self
            .paths
            .get(key)
            .and_then(|p| p.secure.as_ref())
            .map_or(Protection::Plain, |s| s.mode);
        self.event(Event::PathUp {
            name,
            label: a.receiver_label,
            setup,
            protection,
        });
        self.answer_waiting(key);
        self.flush_pending(key);
    }

    /// Sends (again) the initiator's last handshake message and arms its retransmission.
    fn send_confirm(&mut self, key: usize) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let (tunnel, peer, path_id, gen) = (p.tunnel, p.peer_label, p.path_id, p.gen());
        let Some(s) = p.secure.as_mut() else { return };
        s.confirms += 1;
        let attempts = s.confirms;
        let message = s.message.clone();
        let msg = Message::Confirm(Confirm {
            receiver_label: peer,
            path_id,
            handshake: &message,
        });
        self.send_control(tunnel, &msg);
        self.send_grants(key);
        let at = self
            .now
            .saturating_add(rto(self.cfg.limits.setup_rto_ms, attempts));
        self.arm_retransmit(key, gen, at);
    }

    pub(crate) fn on_reject(&mut self, tunnel: Option<usize>, r: &Reject<'_>) {
        let Some(key) = self.addressed_path(tunnel, r.receiver_label, r.path_id) else {
            return;
        };
        let Some(p) = self.paths.get(key) else { return };
        let unconfirmed = p.state == State::Up && p.secure.as_ref().is_some_and(|s| !s.confirmed);
        // Gateways pass the reason on as they got it; the initiator says what it was.
        let text = match p.role {
            Role::Relay { .. } => r.text.to_string(),
            _ => format!("{}: {}", r.reason, r.text),
        };
        match (p.role, p.state) {
            (_, State::Connecting { .. }) => self.fail_setup(key, Failure::new(r.reason, text)),
            // The destination refused the initiator after accepting (its certificate, its
            // allow list): pass the refusal back and let go of both halves.
            (Role::Relay { .. }, State::Up) => self.fail_setup(key, Failure::new(r.reason, text)),
            // The responder refused our certificate after we thought the path was up.
            _ if unconfirmed => self.path_down(key, &text, None),
            _ => {}
        }
    }

    /// A busy next hop wants proof that our address is real: echo its cookie.
    pub(crate) fn on_cookie(&mut self, tunnel: Option<usize>, c: &CookieReply) {
        let Some(key) = self.addressed_path(tunnel, c.receiver_label, c.path_id) else {
            return;
        };
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let (State::Connecting { .. }, Some(spec)) = (p.state, p.setup.as_mut()) else {
            return;
        };
        if spec.cookie == Some(c.cookie) {
            return;
        }
        spec.cookie = Some(c.cookie);
        self.send_setup(key);
    }
}
