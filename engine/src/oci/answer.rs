//! Path setup from the other side: a setup arrives and this node answers it as the
//! destination, hands it to the gateway code, or refuses it. On a secure path the answer
//! carries the responder's half of the handshake, and the path is up only once the
//! initiator's confirm proves who it is; until then it is *half-open*, bounded, and under
//! load setups must echo a stateless cookie first.

use crate::api::{DropReason, Event, OverlayId};
use crate::config::Protection;
use crate::engine::Engine;
use crate::legacy::Egress;
use crate::ocd::Peer;
use crate::oci::handles::handle_name;
use crate::oci::paths::{PartialForm, Path, Role, State};
use crate::oci::setup::Failure;
use crate::security::handshake::{protection_of, HandshakeError, COOKIE_BIT};
use crate::security::noise::MAX_HANDSHAKE;
use crate::security::parameters::{plain_answer, PARTIAL_BIT};
use crate::security::session::Secure;
use crate::wire::message::{
    Accept, Confirm, CookieReply, Families, Message, Reject, RejectReason, Setup, COOKIE_LEN,
};
use blake2::digest::{FixedOutput, KeyInit, Update};
use std::time::Duration;

/// How long a responder keeps a half-open handshake.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Cookies are valid for the current and the previous period of this length.
const COOKIE_PERIOD_SECS: u64 = 60;

type Refusal = (DropReason, Failure);

/// The handshake field of the accept a path's far end sends, and sends again: a secure path's
/// answer as kept, or a plain path's answer to an initiator that takes partial checksums
/// (rebuilt rather than kept, so that plain paths hold no bytes for it).
fn answer_of(p: &Path) -> Vec<u8> {
    match p.partial.send {
        true => plain_answer(p.partial.receive),
        false => p.answer.clone(),
    }
}

impl Engine {
    /// A setup from a peer: answer it as the destination, relay it as a gateway, or refuse.
    pub(crate) fn on_setup(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        known: Option<usize>,
        s: &Setup<'_>,
    ) {
        if let Some(t) = known {
            if let Some(existing) = self.paths.by_peer(t, s.sender_label) {
                if self
                    .paths
                    .get(existing)
                    .is_some_and(|p| p.path_id == s.path_id)
                {
                    return self.repeat_accept(existing, t, s.sender_label);
                }
            }
        }
        if self.paths.initiated(s.path_id) {
            // Our own setup came back to us: answering it would authenticate us to ourselves.
            return self.drop_input(DropReason::Reflected);
        }
        let (cookie, handshake) = match split_cookie(s).filter(|(_, h)| h.len() <= MAX_HANDSHAKE) {
            Some(parts) => parts,
            None => {
                return self.drop_input(DropReason::DatagramMalformed(
                    crate::wire::WireError::BadLength,
                ))
            }
        };
        // Every setup this node accepts leaves state (a path, a tunnel, for plain paths a
        // handle), so under load every one must first prove its source address.
        if self.under_load() {
            let valid = cookie.is_some_and(|c| self.cookie_valid(from, s.path_id, c));
            if !valid {
                self.drop_input(DropReason::CookieRequired);
                let reply = CookieReply {
                    receiver_label: s.sender_label,
                    path_id: s.path_id,
                    cookie: self.cookie(from, s.path_id, 0),
                };
                return self.reply_stateless(overlay, from, &Message::Cookie(reply));
            }
            self.evict_half_open();
        }
        let result = if s.hop_count >= self.cfg.limits.max_hops {
            let text = format!("more than {} hops", self.cfg.limits.max_hops);
            Err((
                DropReason::HopLimit,
                Failure::new(RejectReason::HopLimit, text),
            ))
        } else if self.paths.len() + 2 > self.cfg.limits.max_paths {
            Err((
                DropReason::NoResources,
                Failure::new(RejectReason::NoResources, "path table full"),
            ))
        } else if s.remaining.is_empty() {
            self.accept_setup(overlay, from, known, s, handshake, None)
        } else if let Some(host) = crate::legacy::legacy_host(s.remaining) {
            self.legacy_setup(overlay, from, known, s, handshake, host)
        } else {
            self.relay_setup(overlay, from, known, s, handshake)
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

    /// A retransmitted setup: repeat the accept (with the same handshake answer) if one was
    /// sent and the initiator may have missed it — not once its confirm came, which it could
    /// only send with the accept in hand.
    fn repeat_accept(&mut self, key: usize, tunnel: usize, receiver_label: u32) {
        let Some(p) = self.paths.get(key) else { return };
        if !matches!(p.state, State::Up | State::AwaitConfirm) || p.confirmed {
            return;
        }
        let answer = answer_of(p);
        let msg = Message::Accept(Accept {
            sender_label: p.label,
            receiver_label,
            path_id: p.path_id,
            handshake: &answer,
            families: p.families,
        });
        self.send_control(tunnel, &msg);
    }

    /// The tunnel a peer's setup came over, created now that the setup is accepted.
    pub(crate) fn accept_tunnel(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        known: Option<usize>,
    ) -> Option<usize> {
        if let Some(t) = known {
            return Some(t);
        }
        let now = self.now;
        let r = self.module(overlay)?.accept(now, &from);
        // What the module set up for the tunnel goes out before the answer.
        self.drain_overlay(overlay);
        Some(self.tunnels.register(overlay, r, None, true))
    }

    /// Answers a setup as the path's far end: for local apps, or (with `egress`) for the
    /// legacy server the path leads on to.
    pub(crate) fn accept_setup(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        known: Option<usize>,
        s: &Setup<'_>,
        handshake: &[u8],
        egress: Option<Egress<'_>>,
    ) -> Result<(), Refusal> {
        let protection = protection_of(s.options);
        let name = handle_name(
            &self.return_hops(s.return_name)?,
            protection,
            self.cfg.security.default,
        );
        let name = match egress {
            Some(e) => e.handle_name(&name),
            None => name,
        };
        let legacy = egress.map(|e| e.end);
        let mut secure = match protection {
            Protection::Plain if !self.cfg.security.accept_plain => {
                return Err((
                    DropReason::Refused,
                    Failure::new(
                        RejectReason::Refused,
                        "this node accepts only authenticated paths",
                    ),
                ))
            }
            Protection::Plain => None,
            _ if handshake.is_empty() => {
                return Err((
                    DropReason::AuthFailed,
                    Failure::new(RejectReason::Refused, "a secure setup without a handshake"),
                ))
            }
            _ => Some(
                self.answer_handshake(s, handshake)
                    .map_err(|f| (DropReason::AuthFailed, f))?,
            ),
        };
        let handle = match secure {
            Some(_) => None,
            None => Some(self.bind_peer_handle(&name, legacy, s.sources)?),
        };
        let tunnel = self.accept_tunnel(overlay, from, known).ok_or_else(|| {
            (
                DropReason::UnknownOverlay,
                Failure::new(RejectReason::UnknownOverlay, "overlay not running"),
            )
        })?;
        let key = self.add_path(
            tunnel,
            s.path_id,
            Role::Responder { handle },
            name.clone(),
            None,
            s.sender_label,
        );
        let label = self.paths.get(key).map_or(0, |p| p.label);
        let families = legacy.map_or(Families::BOTH, |l| l.families());
        // A plain path's initiator that takes partial checksums gets them, and the accept
        // answers whether this end takes them too.
        let partial = match secure {
            None if s.options & PARTIAL_BIT != 0 => PartialForm {
                send: true,
                receive: self.cfg.security.partial_checksums,
            },
            _ => PartialForm::default(),
        };
        if let Some(p) = self.paths.get_mut(key) {
            p.legacy = legacy;
            p.families = families;
            p.sources = s.sources;
            p.partial = partial;
        }
        // The path keeps the answer to repeat it (`repeat_accept`); the session needs no copy.
        let answer = secure
            .as_mut()
            .map(|x| std::mem::take(&mut x.message))
            .unwrap_or_default();
        match secure {
            Some(secure) => {
                self.paths.set_state(key, State::AwaitConfirm);
                let gen = self.paths.get(key).map_or(0, |p| p.gen());
                if let Some(p) = self.paths.get_mut(key) {
                    p.secure = Some(secure);
                }
                let at = self.now.saturating_add(HALF_OPEN_TIMEOUT);
                self.arm_retransmit(key, gen, at);
            }
            None => self.path_accepted(key),
        }
        let Some(p) = self.paths.get_mut(key) else {
            return Ok(());
        };
        p.answer = answer;
        let answer = answer_of(p);
        let msg = Message::Accept(Accept {
            sender_label: label,
            receiver_label: s.sender_label,
            path_id: s.path_id,
            handshake: &answer,
            families,
        });
        self.send_control(tunnel, &msg);
        Ok(())
    }

    /// A setup's return name, checked against the name grammar: hops only, since options
    /// travel in the option bits a handshake covers. A return name claiming `.oci` options
    /// could otherwise pass for another path's handle.
    pub(crate) fn return_hops(&self, return_name: &str) -> Result<String, Refusal> {
        let bad = |why: String| {
            (
                DropReason::Refused,
                Failure::new(RejectReason::BadName, format!("return name: {why}")),
            )
        };
        match self.parse(return_name) {
            Ok(Some(n)) if n.security.is_none() => Ok(n
                .hops
                .iter()
                .map(|h| h.element())
                .collect::<Vec<_>>()
                .join("_")),
            Ok(Some(_)) => Err(bad("options are not allowed here".into())),
            Ok(None) => Err(bad(format!(
                "'{return_name}' does not lead back over an overlay here"
            ))),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// The handle local apps see the peer under; apps will see packets from it. On a legacy
    /// server gateway it is the path's egress address, and `legacy` the server behind it.
    /// A new handle takes the addresses the initiator proposed where they are free here.
    fn bind_peer_handle(
        &mut self,
        name: &str,
        legacy: Option<crate::legacy::LegacyEnd>,
        proposed: crate::wire::message::Sources,
    ) -> Result<usize, Refusal> {
        let Some(handle) = self.bind_handle_preferring(name, proposed) else {
            self.event(Event::PoolExhausted {
                name: name.to_string(),
            });
            return Err((
                DropReason::NoResources,
                Failure::new(RejectReason::NoResources, "no free handle"),
            ));
        };
        if let Some(h) = self.handles.get_mut(handle) {
            h.handed_out = true;
            h.legacy = legacy;
        }
        Ok(handle)
    }

    /// A responder's path is fully open: its handle points at it.
    fn path_accepted(&mut self, key: usize) {
        let Some(p) = self.paths.get(key) else { return };
        let (name, label) = (p.name.clone(), p.label);
        if let Role::Responder { handle: Some(h) } = p.role {
            // A newer path from the same peer (a rekey) takes over; a path this node opened
            // itself to the same name and still uses (a simultaneous open) stays.
            let current = self
                .handles
                .get(h)
                .and_then(|x| x.path)
                .and_then(|c| self.paths.get(c));
            let keep = current
                .is_some_and(|c| c.state == State::Up && matches!(c.role, Role::Initiator { .. }));
            if let (false, Some(h)) = (keep, self.handles.get_mut(h)) {
                h.path = Some(key);
                self.handles.touch();
            }
        }
        self.event(Event::PathAccepted { name, label });
    }

    /// The initiator's confirm: the last handshake message, with its certificate.
    pub(crate) fn on_confirm(&mut self, tunnel: Option<usize>, c: &Confirm<'_>) {
        let Some(key) = self.addressed_path(tunnel, c.receiver_label, c.path_id) else {
            return;
        };
        let Some(p) = self.paths.get(key) else { return };
        match (p.role, p.state) {
            (Role::Relay { twin, .. }, _) => self.relay_confirm(key, twin, c),
            // A repeated confirm: our acknowledgement was lost, send it again.
            (Role::Responder { .. }, State::Up) => self.acknowledge(key),
            (Role::Responder { .. }, State::AwaitConfirm) => {
                let Some(mut secure) = self.paths.get_mut(key).and_then(|p| p.secure.take()) else {
                    return;
                };
                let result = self.finish_responder(&mut secure, c.handshake);
                self.finish_confirm(key, secure, result);
            }
            _ => self.drop_input(DropReason::UnexpectedHandshake),
        }
    }

    fn finish_confirm(
        &mut self,
        key: usize,
        secure: Box<Secure>,
        result: Result<(), HandshakeError>,
    ) {
        let peer_name = secure.peer_name.clone();
        if let Some(p) = self.paths.get_mut(key) {
            p.secure = Some(secure);
        }
        let f = match result {
            Ok(()) => None,
            // Unlike an accept, a confirm cannot be read again: its first field is decrypted
            // under the key a failed read may already have replaced, which snow does not
            // restore. The path fails, and the initiator's next packet sets up a new one.
            Err(HandshakeError::Tampered) => Some(Failure::new(
                RejectReason::Refused,
                "authentication failed: the confirm did not decrypt",
            )),
            Err(HandshakeError::Refused(f)) => Some(f),
        };
        if let Some(f) = f {
            self.drop_input(DropReason::AuthFailed);
            self.reject_upstream(key, &f);
            return self.remove_path(key);
        }
        let (name, legacy, proposed) = self
            .paths
            .get(key)
            .map(|p| (p.name.clone(), p.legacy, p.sources))
            .unwrap_or((peer_name, None, Default::default()));
        let handle = match self.bind_peer_handle(&name, legacy, proposed) {
            Ok(h) => h,
            Err((drop, _)) => {
                self.drop_input(drop);
                return self.remove_path(key);
            }
        };
        self.paths.set_state(key, State::Up);
        self.paths.touch();
        if let Some(p) = self.paths.get_mut(key) {
            p.role = Role::Responder {
                handle: Some(handle),
            };
            p.confirmed = true;
            p.answer = Vec::new();
        }
        self.path_accepted(key);
        self.acknowledge(key);
        // Data that overtook the confirm can be opened now.
        let early = self
            .paths
            .get_mut(key)
            .map(|p| std::mem::take(&mut p.pending))
            .unwrap_or_default();
        for buf in early {
            self.open_and_deliver(key, handle, &buf, crate::wire::ecn::Ecn::NotEct);
            self.pool.give(buf);
        }
    }

    /// Tells the initiator its confirm arrived: an authenticated empty data packet.
    fn acknowledge(&mut self, key: usize) {
        self.send_on_path(key, &[], None, None);
    }

    /// Whether unauthenticated state has reached half its bound: new setups must then show a
    /// cookie, so spoofed sources cannot fill the table.
    fn under_load(&self) -> bool {
        self.paths.half_open() * 2 >= self.cfg.limits.max_half_open
    }

    /// At the bound, the oldest half-open entry makes room: real handshakes finish within a
    /// round trip, so the oldest is the likeliest to be junk.
    fn evict_half_open(&mut self) {
        if self.paths.half_open() < self.cfg.limits.max_half_open {
            return;
        }
        let oldest = self
            .paths
            .iter()
            .filter(|(_, p)| p.half_open())
            .min_by_key(|(_, p)| p.started)
            .map(|(k, _)| k);
        if let Some(k) = oldest {
            // A relay half takes its twin with it.
            self.path_down(k, "evicted under load", None);
        }
    }

    /// A MAC over the sender's return address (the module's peer token), the path id and the time period, under a secret
    /// from the seed: checkable later without having stored anything.
    fn cookie(&self, from: Peer, path_id: u64, periods_ago: u64) -> [u8; COOKIE_LEN] {
        let period =
            (self.now.as_nanos() / 1_000_000_000 / COOKIE_PERIOD_SECS).saturating_sub(periods_ago);
        let mut mac = blake2::Blake2sMac256::new(&self.cookie_secret.into());
        mac.update(&[from.as_bytes().len() as u8]);
        mac.update(from.as_bytes());
        mac.update(&path_id.to_be_bytes());
        mac.update(&period.to_be_bytes());
        let full: [u8; 32] = mac.finalize_fixed().into();
        let mut out = [0u8; COOKIE_LEN];
        out.copy_from_slice(&full[..COOKIE_LEN]);
        out
    }

    fn cookie_valid(&self, from: Peer, path_id: u64, cookie: &[u8; COOKIE_LEN]) -> bool {
        (0..2).any(|ago| &self.cookie(from, path_id, ago) == cookie)
    }
}

/// Splits a setup's handshake field into the echoed cookie (if the option bit says there is
/// one) and the Noise message. `None` when the bit is set but the field is too short.
fn split_cookie<'a>(s: &Setup<'a>) -> Option<(Option<&'a [u8; COOKIE_LEN]>, &'a [u8])> {
    if s.options & COOKIE_BIT == 0 {
        return Some((None, s.handshake));
    }
    let (cookie, rest) = s.handshake.split_at_checked(COOKIE_LEN)?;
    Some((Some(cookie.try_into().ok()?), rest))
}
