//! The `i3` overlay (paper §4.3; Stoica et al., "Internet Indirection Infrastructure"): hosts
//! reach each other through rendezvous servers by 256-bit ids instead of addresses, so a host
//! behind a NAT is reachable by name. One module plays both roles on its socket: the host side
//! (public and private triggers, sending by id) and, where configured, the server side
//! (trigger table and forwarding, `server.rs`).
//!
//! Setting up a tunnel to `bob.i3` costs nothing on the wire: the id is the hash of the name,
//! and the tunnel's private trigger is inserted while the first message (OC-I's path setup)
//! rides to bob's public trigger, carrying the private id as its return address. bob answers
//! from a private trigger of his own, and from then on both sides send only to private ids.
//!
//! With the `shortcut` option (`bob.shortcut.i3`) the ends then find each other's addresses
//! and send directly while that works (`shortcut.rs`); the relay stays ready underneath.

pub mod id;
mod liveness;
mod middlebox;
mod relay;
pub mod server;
pub mod servers;
pub mod shortcut;
pub mod wire;

use self::id::{Id, ID_LEN};
use self::middlebox::Held;
use self::server::Triggers;
use self::servers::Servers;
use self::shortcut::Shortcut;
use self::wire::{
    data_header_len, write_data_header, DataView, I3Packet, Stack, FLAG_DELIVERED, FLAG_SHORTCUT,
    KEY_LEN,
};
use super::{Datagram, HopSpec, Overlay, OverlayDrop, OverlayEvent, Peer, Received, TunnelRef};
use crate::config::{ConfigError, Limits, OverlayConfig};
use crate::packet::{Packet, PacketPool};
use crate::time::Instant;
use crate::wire::message::SETUP_TYPE_BYTE;
use crate::wire::WireError;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Deserialize;
use slab::Slab;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `[overlays.i3]`: the i3-specific part of an overlay entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct I3Config {
    /// Every i3 server's address, the same list at every node: they share the id space.
    pub servers: Vec<SocketAddr>,
    /// Run the server role on this overlay's socket, as this member of `servers`.
    pub serve_as: Option<SocketAddr>,
    /// Seconds between trigger refreshes (and server probes). Triggers live three times as
    /// long; a server silent for three periods counts as failed.
    pub refresh_secs: u64,
    /// Most triggers a server keeps.
    pub max_triggers: usize,
    /// Milliseconds between probes of a shortcut's direct path; after three unanswered
    /// probes the tunnel is back on the relay.
    pub probe_ms: u64,
    /// Require everyone who reaches this host to pass through the middlebox node with this
    /// name on the overlay (`through = "fw"`: the i3 host `fw.i3`, which runs `[middlebox]`).
    /// A guarded host takes no shortcuts.
    pub through: Option<String>,
}

impl Default for I3Config {
    fn default() -> Self {
        I3Config {
            servers: Vec::new(),
            serve_as: None,
            refresh_secs: 2,
            max_triggers: 100_000,
            probe_ms: 500,
            through: None,
        }
    }
}

/// A trigger this host keeps inserted.
#[derive(Debug)]
struct OwnTrigger {
    id: Id,
    key: [u8; KEY_LEN],
    /// On a guarded host, the id this trigger's stack ends in, which delivers to us.
    inner: Option<Id>,
}

#[derive(Debug)]
struct Tunnel {
    host: String,
    /// Where packets go: the peer's public id until it answers from a private one.
    remote: Id,
    /// The peer's private id is known.
    negotiated: bool,
    /// The peer's public id, for tunnels we set up (an accepted peer is known only by the
    /// private id it answers at).
    public: Option<Id>,
    /// Our private trigger for this tunnel (index into `own`).
    private: usize,
    /// The direct path, for tunnels with the `shortcut` option (or whose peer asked for one).
    shortcut: Option<Shortcut>,
    alive: liveness::Liveness,
}

/// The module.
pub struct I3Overlay {
    suffix: String,
    servers: Servers,
    serving: Option<(SocketAddr, Triggers)>,
    /// Our triggers; index 0 is the public one.
    own: Slab<OwnTrigger>,
    tunnels: Slab<Tunnel>,
    by_private: BTreeMap<Id, TunnelRef>,
    /// Tunnels by the peer's private id, once known.
    by_remote: BTreeMap<Id, TunnelRef>,
    /// Shortcut probe deadlines.
    probes: BTreeSet<(Instant, TunnelRef)>,
    /// Our address as the servers last saw it: when it changes, we moved.
    observed: Option<SocketAddr>,
    /// The middlebox this host's triggers are stacked through (`through`).
    through: Option<Id>,
    /// Inner ids of a guarded host, to the trigger each stands for.
    by_inner: BTreeMap<Id, usize>,
    /// A message in transit through us as a middlebox, until OC-I's verdict.
    held: Option<Held>,
    rng: ChaCha20Rng,
    refresh: Duration,
    probe_every: Duration,
    /// A quiet tunnel's keepalive period; `misses` of them silent make it dead.
    keepalive: Duration,
    misses: u32,
    started: bool,
    next_tick: Instant,
    nonce: u64,
    events: VecDeque<OverlayEvent>,
}

const PUBLIC: usize = 0;

/// The option label that asks for a direct path.
const SHORTCUT: &str = "shortcut";

impl I3Overlay {
    /// A module for one `[[overlays]]` entry with `module = "i3"`.
    pub fn new(
        index: usize,
        cfg: &OverlayConfig,
        limits: &Limits,
        seeds: super::Seeds,
    ) -> Result<I3Overlay, ConfigError> {
        let c = &cfg.i3;
        let key = |k: &str| format!("overlays[{index}].i3.{k}");
        if c.servers.is_empty() {
            return Err(ConfigError::new(
                key("servers"),
                "list at least one i3 server",
            ));
        }
        if c.refresh_secs == 0 || c.refresh_secs > 3600 {
            return Err(ConfigError::new(key("refresh_secs"), "must be 1..=3600"));
        }
        if !(50..=60_000).contains(&c.probe_ms) {
            return Err(ConfigError::new(key("probe_ms"), "must be 50..=60000"));
        }
        if let Some(me) = c.serve_as {
            if !c.servers.contains(&me) {
                return Err(ConfigError::new(
                    key("serve_as"),
                    format!("{me} is not in overlays[{index}].i3.servers"),
                ));
            }
        }
        let suffix = cfg.name.to_ascii_lowercase();
        let through = match c.through.as_deref() {
            None => None,
            Some(fw) if fw.eq_ignore_ascii_case(&cfg.local_name) => {
                return Err(ConfigError::new(
                    key("through"),
                    "a host cannot be its own middlebox",
                ));
            }
            Some(fw) => {
                let hop =
                    HopSpec::host_only(fw).map_err(|e| ConfigError::new(key("through"), e))?;
                Some(Id::of_name(&format!(
                    "{}.{suffix}",
                    hop.host.to_ascii_lowercase()
                )))
            }
        };
        let refresh = Duration::from_secs(c.refresh_secs);
        let misses = limits.keepalive_misses.clamp(2, 10);
        let mut rng = ChaCha20Rng::from_seed(seeds.fresh);
        let public = Id::of_name(&format!("{}.{suffix}", cfg.local_name));
        // A restarted host must be able to take its name back from the trigger it left
        // live at the server: with a static key, the public trigger's owner key is derived
        // from it and so is the same on every start.
        let key = match seeds.stable {
            Some(s) => random_key(&mut ChaCha20Rng::from_seed(s)),
            None => random_key(&mut rng),
        };
        let mut module = I3Overlay {
            suffix,
            servers: Servers::new(&c.servers, refresh * misses),
            serving: c
                .serve_as
                .map(|me| (me, Triggers::new(c.max_triggers, refresh * 3, &seeds.fresh))),
            own: Slab::new(),
            tunnels: Slab::new(),
            by_private: BTreeMap::new(),
            by_remote: BTreeMap::new(),
            probes: BTreeSet::new(),
            observed: None,
            through,
            by_inner: BTreeMap::new(),
            held: None,
            rng,
            refresh,
            probe_every: Duration::from_millis(c.probe_ms),
            keepalive: Duration::from_secs(cfg.keepalive_secs.max(1)),
            misses: limits.keepalive_misses.max(1),
            started: false,
            next_tick: Instant::ZERO,
            nonce: 0,
            events: VecDeque::new(),
        };
        let k = module.own.vacant_key();
        let inner = module.new_inner(k);
        module.own.insert(OwnTrigger {
            id: public,
            key,
            inner,
        });
        Ok(module)
    }

    fn lifetime_secs(&self) -> u16 {
        (self.refresh.as_secs() * 3).min(u64::from(u16::MAX)) as u16
    }

    fn transmit(&mut self, to: SocketAddr, p: &I3Packet<'_>) {
        self.transmit_in(to, p, Packet::from_slice(&[]));
    }

    /// Sends `p` encoded into `buf` (a pooled buffer on the data path).
    fn transmit_in(&mut self, to: SocketAddr, p: &I3Packet<'_>, mut buf: Packet) {
        p.encode(buf.tail_vec());
        self.transmit_buf(to, buf);
    }

    /// Sends a datagram that is ready.
    fn transmit_buf(&mut self, to: SocketAddr, payload: Packet) {
        self.events
            .push_back(OverlayEvent::Transmit(Datagram { to, payload }));
    }

    /// (Re)inserts one of our triggers at the server now responsible for its id.
    fn insert(&mut self, k: usize) {
        let Some(&OwnTrigger { id, key, inner }) = self.own.get(k) else {
            return;
        };
        let lifetime_secs = self.lifetime_secs();
        let ids = [(id, self.target_of(inner))]
            .into_iter()
            .chain(inner.map(|inner| (inner, Stack::new())));
        for (id, target) in ids {
            if let Some(to) = self.servers.responsible(&id) {
                let p = I3Packet::Insert {
                    lifetime_secs,
                    key,
                    id,
                    target,
                };
                self.transmit(to, &p);
            }
        }
    }

    /// Asks the servers to drop one of our triggers (and its inner id).
    fn remove(&mut self, k: usize) {
        let Some(own) = self.own.try_remove(k) else {
            return;
        };
        self.by_private.remove(&own.id);
        for id in [own.id].into_iter().chain(own.inner) {
            self.by_inner.remove(&id);
            if let Some(to) = self.servers.responsible(&id) {
                let p = I3Packet::Remove { key: own.key, id };
                self.transmit(to, &p);
            }
        }
    }

    /// A fresh private trigger, inserted now.
    fn new_private(&mut self) -> usize {
        let mut id = [0u8; ID_LEN];
        self.rng.fill_bytes(&mut id);
        let key = random_key(&mut self.rng);
        let inner = self.new_inner(self.own.vacant_key());
        let k = self.own.insert(OwnTrigger {
            id: Id(id),
            key,
            inner,
        });
        self.insert(k);
        k
    }

    fn new_tunnel(
        &mut self,
        now: Instant,
        host: String,
        remote: Id,
        negotiated: bool,
        shortcut: bool,
    ) -> TunnelRef {
        let private = self.new_private();
        let r = self.tunnels.insert(Tunnel {
            host,
            remote,
            negotiated,
            public: (!negotiated).then_some(remote),
            private,
            shortcut: shortcut.then(Shortcut::default),
            alive: liveness::Liveness::new(now),
        }) as TunnelRef;
        if let Some(t) = self.own.get(private) {
            self.by_private.insert(t.id, r);
        }
        if negotiated {
            self.by_remote.insert(remote, r);
        }
        r
    }

    /// An OCALA datagram for an id, with `ret` as the id to answer at, addressed to the
    /// server responsible for it, or with `direct`, straight to the host behind it.
    fn send_to_id(
        &mut self,
        to: &Id,
        ret: &Id,
        flags: u8,
        direct: Option<SocketAddr>,
        mut datagram: Packet,
    ) -> Result<Datagram, Packet> {
        let (dest, flags) = match direct {
            Some(addr) => (addr, flags | FLAG_DELIVERED),
            None => match self.servers.responsible(to) {
                Some(server) => (server, flags),
                None => return Err(datagram),
            },
        };
        let len = data_header_len(1, true);
        match datagram.prepend(len) {
            Some(head) => write_data_header(head, flags, &[*to], Some(ret)),
            None => {
                // A buffer without headroom (a whole control message): copy once.
                let mut p = Packet::from_slice(&vec![0u8; len]);
                write_data_header(&mut p, flags, &[*to], Some(ret));
                p.extend_from_slice(&datagram);
                datagram = p;
            }
        }
        Ok(Datagram {
            to: dest,
            payload: datagram,
        })
    }

    /// The host side of a delivered DATA packet.
    fn deliver<'a>(
        &mut self,
        now: Instant,
        flags: u8,
        stack: &Stack,
        return_id: Option<Id>,
        payload: &'a [u8],
    ) -> Received<'a> {
        let Some(top) = stack.first().copied() else {
            return Received::Dropped(OverlayDrop::NoTrigger);
        };
        if stack.len() > 1 {
            return self.hold(flags, stack, return_id, payload);
        }
        let top = match self.delivered_at(top) {
            Ok(id) => id,
            Err(d) => return Received::Dropped(d),
        };
        let public = self.own.get(PUBLIC).map(|t| t.id);
        if Some(top) == public {
            let Some(ret) = return_id else {
                return Received::Dropped(OverlayDrop::NoReturnId);
            };
            let tunnel = self.by_remote.get(&ret).copied();
            if let Some(consumed) = tunnel.and_then(|r| self.heard(now, r, payload)) {
                return consumed;
            }
            return Received::Message {
                tunnel,
                peer: peer_of(&ret),
                message: payload,
            };
        }
        let Some(&r) = self.by_private.get(&top) else {
            // A private trigger we no longer hold (we restarted, or closed the tunnel) that
            // the server still matched: OC-I answers a stale label with a close to the return
            // id, so the sender's path goes down and comes back, instead of sending into the
            // void until the trigger expires.
            return match return_id {
                Some(ret) => Received::Message {
                    tunnel: None,
                    peer: peer_of(&ret),
                    message: payload,
                },
                None => Received::Dropped(OverlayDrop::NoTrigger),
            };
        };
        let Some(t) = self.tunnels.get_mut(r as usize) else {
            return Received::Dropped(OverlayDrop::NoTrigger);
        };
        // The first answer names the peer's private trigger; later claims cannot redirect us.
        if let (false, Some(ret)) = (t.negotiated, return_id) {
            t.remote = ret;
            t.negotiated = true;
            self.by_remote.insert(ret, r);
        }
        // A peer that wants a shortcut gets our half of it: we probe it too.
        if flags & FLAG_SHORTCUT != 0 && t.shortcut.is_none() && self.through.is_none() {
            t.shortcut = Some(Shortcut::default());
        }
        let peer = peer_of(&t.remote);
        if let Some(consumed) = self.heard(now, r, payload) {
            return consumed;
        }
        Received::Message {
            tunnel: Some(r),
            peer,
            message: payload,
        }
    }

    /// A server answered one of our requests; `observed` is our address as it saw it.
    fn heard_from_server(
        &mut self,
        now: Instant,
        from: SocketAddr,
        observed: Option<SocketAddr>,
    ) -> Received<'static> {
        if !self.servers.contains(&from) {
            return Received::Dropped(OverlayDrop::NotFromServer);
        }
        if self.servers.heard(now, &from) {
            // A server came back: the ids it owns return to it.
            self.notice(format!("i3 server {from} answers again"));
            self.refresh_all();
        }
        if let Some(seen) = observed {
            let moved = self.observed.is_some_and(|was| was != seen);
            self.observed = Some(seen);
            if moved {
                self.notice(format!("our address changed to {seen}"));
                self.network_changed(now);
            }
        }
        Received::Consumed
    }

    fn notice(&mut self, text: String) {
        self.events.push_back(OverlayEvent::Notice(text));
    }

    fn refresh_all(&mut self) {
        let keys: Vec<usize> = self.own.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.insert(k);
        }
    }

    /// Pings servers that hold none of our triggers, so we know which are live when sending.
    fn ping_idle_servers(&mut self) {
        let homes: Vec<SocketAddr> = self
            .own
            .iter()
            .filter_map(|(_, t)| self.servers.responsible(&t.id))
            .collect();
        let idle: Vec<SocketAddr> = self
            .servers
            .addrs()
            .filter(|a| !homes.contains(a))
            .collect();
        for to in idle {
            self.nonce += 1;
            let nonce = self.nonce;
            self.transmit(to, &I3Packet::Ping { nonce });
        }
    }

    /// [`Overlay::send`], with the buffer moved through the module's encoders.
    fn send_datagram(
        &mut self,
        now: Instant,
        tunnel: TunnelRef,
        datagram: Packet,
    ) -> Result<Datagram, Packet> {
        let every = self.refresh;
        let Some(t) = self.tunnels.get_mut(tunnel as usize) else {
            return Err(datagram);
        };
        let Some(ret) = self.own.get(t.private).map(|o| o.id) else {
            return Err(datagram);
        };
        // A new path on a tunnel whose peer already answered goes to the peer's public
        // trigger again, and its answer fixes the peer's private id anew: the peer may have
        // restarted, and its old private trigger may still be matched at the server.
        if let (true, Some(public)) = (t.negotiated, t.public) {
            if datagram.first() == Some(&SETUP_TYPE_BYTE) {
                if self.by_remote.get(&t.remote) == Some(&tunnel) {
                    self.by_remote.remove(&t.remote);
                }
                t.remote = public;
                t.negotiated = false;
            }
        }
        let (to, direct, ask) = match t.shortcut.as_mut() {
            // Only a negotiated tunnel asks: probes carry the peer's private id.
            Some(s) => (t.remote, s.direct(), t.negotiated && s.ask(now, every)),
            None => (t.remote, None, false),
        };
        let flags = if ask { FLAG_SHORTCUT } else { 0 };
        self.send_to_id(&to, &ret, flags, direct, datagram)
    }
}

fn random_key(rng: &mut ChaCha20Rng) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    rng.fill_bytes(&mut k);
    k
}

/// The peer token for a return id: the id's bytes.
fn peer_of(id: &Id) -> Peer {
    Peer::id(&id.0)
}

impl Overlay for I3Overlay {
    fn parse_hop(&self, prefix: &str) -> Result<HopSpec, String> {
        match prefix.rsplit_once('.') {
            Some((host, SHORTCUT)) => {
                let mut hop = HopSpec::host_only(host)?;
                hop.options.push(SHORTCUT.into());
                Ok(hop)
            }
            _ => HopSpec::host_only(prefix),
        }
    }

    fn setup(&mut self, now: Instant, hop: &HopSpec) -> TunnelRef {
        let host = hop.host.to_ascii_lowercase();
        let remote = Id::of_name(&format!("{host}.{}", self.suffix));
        let shortcut = hop.options.iter().any(|o| o == SHORTCUT);
        if shortcut && self.guarded() {
            self.notice(format!(
                "no shortcut to {host}: this host is guarded by a middlebox, so its paths stay on the relay"
            ));
        }
        let shortcut = shortcut && !self.guarded();
        let r = self.new_tunnel(now, host, remote, false, shortcut);
        self.events.push_back(if self.servers.live() > 0 {
            OverlayEvent::SetupDone(r)
        } else {
            OverlayEvent::SetupFailed(r, "no i3 server is answering".into())
        });
        r
    }

    fn accept(&mut self, now: Instant, from: &Peer) -> TunnelRef {
        let ret = Id::from_slice(from.as_bytes()).unwrap_or(Id([0; ID_LEN]));
        if let Some(&r) = self.by_remote.get(&ret) {
            if self.tunnels.contains(r as usize) {
                return r;
            }
        }
        self.new_tunnel(now, format!("{ret}"), ret, true, false)
    }

    fn reply(&mut self, _now: Instant, to: &Peer, datagram: Packet) {
        let (Some(to), Some(public)) = (Id::from_slice(to.as_bytes()), self.own.get(PUBLIC)) else {
            return;
        };
        let ret = public.id;
        // Nowhere to send it is the same as a lost reply: the sender retries.
        if let Ok(d) = self.send_to_id(&to, &ret, 0, None, datagram) {
            self.events.push_back(OverlayEvent::Transmit(d));
        }
    }

    fn close(&mut self, tunnel: TunnelRef) {
        let Some(t) = self.tunnels.try_remove(tunnel as usize) else {
            return;
        };
        if self.by_remote.get(&t.remote) == Some(&tunnel) {
            self.by_remote.remove(&t.remote);
        }
        if let Some(s) = &t.shortcut {
            self.probes.remove(&(s.next_probe(), tunnel));
        }
        self.remove(t.private);
    }

    fn send(
        &mut self,
        now: Instant,
        tunnel: TunnelRef,
        datagram: &mut Packet,
    ) -> Option<SocketAddr> {
        super::send_moved(datagram, |d| self.send_datagram(now, tunnel, d))
    }

    fn receive<'a>(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        payload: &'a [u8],
        pool: &mut PacketPool,
    ) -> Received<'a> {
        let from = *from;
        // DATA is read in place (a server forwards it without copying the stack out); the
        // rest is parsed whole.
        let p = match DataView::parse(payload) {
            Ok(Some(v)) if v.flags & FLAG_DELIVERED != 0 => {
                return self.deliver(now, v.flags, &v.stack(), v.return_id, v.payload)
            }
            Ok(Some(v)) => return self.forward(now, from, &v, pool),
            Ok(None) => I3Packet::parse(payload),
            Err(e) => Err(e),
        };
        let p = match p {
            Ok(p) => p,
            Err(e) => return Received::Malformed(e),
        };
        match p {
            I3Packet::Data { .. } => Received::Malformed(WireError::BadHeader),
            I3Packet::Insert { .. } | I3Packet::Remove { .. } | I3Packet::Ping { .. } => {
                self.serve(now, from, p)
            }
            I3Packet::Ack { observed, .. } | I3Packet::Pong { observed, .. } => {
                self.heard_from_server(now, from, Some(observed))
            }
            I3Packet::Refused { .. } => {
                self.heard_from_server(now, from, None);
                Received::Dropped(OverlayDrop::TriggerRefused)
            }
            I3Packet::Shortcut { id, addr } => {
                if !self.servers.contains(&from) {
                    return Received::Dropped(OverlayDrop::NotFromServer);
                }
                self.learned(now, &id, addr)
            }
            I3Packet::Probe { nonce, id } => self.probed(now, from, nonce, id),
            I3Packet::ProbeAck { nonce, id } => self.probe_answered(from, nonce, &id),
        }
    }

    fn resolved(&mut self, _now: Instant, _token: u64, _result: Result<Vec<IpAddr>, String>) {
        // i3 resolves names by hashing them; it never asks the driver.
    }

    fn transit(
        &mut self,
        _now: Instant,
        message: &[u8],
        pool: &mut PacketPool,
    ) -> Result<(), OverlayDrop> {
        self.send_on(message, pool)
    }

    fn network_changed(&mut self, now: Instant) {
        // Triggers point at the old address until re-inserted from the new one; direct
        // paths learn it from our probes.
        self.refresh_all();
        let renew: Vec<TunnelRef> = self
            .tunnels
            .iter()
            .filter(|(_, t)| t.shortcut.is_some())
            .map(|(r, _)| r as TunnelRef)
            .collect();
        for r in renew {
            self.reschedule(r, |s| s.renew(now));
        }
        self.probe_due(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, triggers)) = self.serving.as_mut() {
            triggers.expire(now);
        }
        self.probe_due(now);
        if now < self.next_tick {
            return;
        }
        if !self.started {
            self.started = true;
            self.servers.start(now);
        }
        // Servers that died move their ids to the next live one: refreshing every trigger at
        // its responsible server re-inserts those at once.
        let me = self.serving.as_ref().map(|(me, _)| *me);
        for dead in self.servers.expire(now, me) {
            self.notice(format!(
                "i3 server {dead} stopped answering; its ids move to the next live server"
            ));
        }
        self.refresh_all();
        self.ping_idle_servers();
        self.check_liveness(now);
        self.next_tick = now.saturating_add(self.refresh);
    }

    fn poll_timeout(&self) -> Instant {
        let serving = self
            .serving
            .as_ref()
            .map_or(Instant::MAX, |(_, t)| t.next_deadline());
        let probe = self.probes.first().map_or(Instant::MAX, |(at, _)| *at);
        self.next_tick.min(serving).min(probe)
    }

    fn poll_event(&mut self) -> Option<OverlayEvent> {
        self.events.pop_front()
    }

    fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn describe(&self, tunnel: TunnelRef) -> String {
        let Some(t) = self.tunnels.get(tunnel as usize) else {
            return "closed".into();
        };
        let via = if t.negotiated { "private" } else { "public" };
        match t.shortcut.as_ref().and_then(Shortcut::direct) {
            Some(addr) => format!(
                "{} direct at {addr} (relay: {via} trigger {})",
                t.host, t.remote
            ),
            None => format!("{} via {via} trigger {}", t.host, t.remote),
        }
    }
}
