//! The engine: one per host, driven by its driver (DESIGN.md §2). `handle_input` takes one
//! timestamped input; `poll_output` is then called until it returns `Output::Timeout`.
//! Control-plane work lives in `oci/setup.rs`, the data path in `oci/forward.rs`, DNS in
//! `dns/intercept.rs`; this file owns the tables, the timers and the drain.

use crate::api::{
    ApiError, Command, Counters, DropReason, Event, HandleBinding, InPlace, Input, Output,
    OverlayId, QueryId,
};
use crate::config::{Config, ConfigError};
use crate::dns::intercept::Upstream;
use crate::dns::rules::Rules;
use crate::middlebox::Filter;
use crate::ocd::{self, Datagram, Overlay, OverlayEvent, TunnelRef};
use crate::oci::forward::Arrival;
use crate::oci::handles::Handles;
use crate::oci::paths::{Paths, MAX_PATHS};
use crate::oci::tunnels::Tunnels;
use crate::packet::{Packet, PacketPool};
use crate::rng::Rng;
use crate::security::handshake::Credentials;
use crate::time::Instant;
use crate::timers::{Timer, Timers};
use crate::wire::ecn::Ecn;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// One overlay the node is attached to.
pub(crate) struct OverlaySlot {
    /// The suffix that selects it.
    pub(crate) name: String,
    /// This node's host name there.
    pub(crate) local_name: String,
    pub(crate) module: Box<dyn Overlay>,
    /// Its traffic, for status.
    pub(crate) traffic: crate::api::OverlayCounters,
    /// Congestion control on its socket's receive queue.
    pub(crate) queue: crate::codel::Codel,
}

/// The OCALA state machine of one host.
pub struct Engine {
    pub(crate) cfg: Config,
    pub(crate) now: Instant,
    pub(crate) rng: Rng,
    pub(crate) overlays: Vec<OverlaySlot>,
    pub(crate) rules: Rules,
    pub(crate) handles: Handles,
    pub(crate) paths: Paths,
    pub(crate) tunnels: Tunnels,
    pub(crate) timers: Timers,
    pub(crate) out: VecDeque<Output>,
    /// Packets for local apps built in the engine's buffers, handed out after the other
    /// outputs of a drain.
    pub(crate) deliveries: VecDeque<Packet>,
    /// Packets for local apps left in the batch's datagrams, handed out last. No flow has
    /// packets in both queues: only plain paths' packets are left in place, and a plain path
    /// holds none while it comes up (only a secure responder does, until the confirm) and
    /// has a handle of its own, so its packets are a flow apart.
    pub(crate) in_place: VecDeque<InPlace>,
    /// Which datagram of the batch is being handled ([`InPlace::datagram`]).
    pub(crate) datagram_index: usize,
    /// The module tunnel last told its peer was heard ([`crate::ocd::Overlay::authenticated`])
    /// in this batch: a batch's packets mostly come over one tunnel, and telling its module
    /// once an instant is enough (the call is indirect, a twentieth of a packet's receive
    /// time). Forgotten at each batch and whenever a module's tunnels change.
    pub(crate) heard: Option<(OverlayId, TunnelRef)>,
    /// Expanded AEAD keys of the secure paths in use.
    pub(crate) key_cache: crate::security::keycache::KeyCache,
    pub(crate) pool: PacketPool,
    pub(crate) upstream: BTreeMap<QueryId, Upstream>,
    pub(crate) next_query: u64,
    /// App queries waiting on paths, across all paths.
    pub(crate) waiting_queries: usize,
    pub(crate) drops: BTreeMap<DropReason, u64>,
    pub(crate) counters: Counters,
    /// Replies to strangers (rejects, unknown-label closes) left in the current window, so
    /// forged datagrams cannot turn the node into a reflector.
    pub(crate) reply_budget: u32,
    pub(crate) cookie_budget: u32,
    pub(crate) reply_window: Instant,
    /// This node's identity, trusted CAs and policy.
    pub(crate) credentials: Credentials,
    /// Key for stateless setup cookies, drawn from the seed.
    pub(crate) cookie_secret: [u8; 32],
    /// The middlebox this node runs on paths through it, if configured.
    pub(crate) middlebox: Option<Filter>,
    /// Keys granted to this middlebox for the paths it sees in transit.
    pub(crate) granted: crate::middlebox::granted::Granted,
    /// The legacy server gateway's rules and lookups, if this node is one.
    pub(crate) legacy: Option<crate::legacy::LegacyServer>,
    /// The ECN field for the datagrams a module sends while it carries one data packet
    /// (`OverlayEvent::Transmit` has none: modules pass data through unchanged); `NotEct`
    /// the rest of the time.
    pub(crate) ecn_out: Ecn,
}

/// Inputs that arrived together, fed one at a time ([`Engine::batch`]).
pub struct Batch<'e> {
    engine: &'e mut Engine,
}

impl Batch<'_> {
    /// Feeds one input of the batch.
    pub fn input(&mut self, input: Input<'_>) {
        self.engine.dispatch(input);
    }
}

/// Stateless replies allowed per 100 ms window.
const REPLY_BUDGET: u32 = 32;
/// Cookie replies allowed per 100 ms window.
const COOKIE_BUDGET: u32 = 1024;

impl Engine {
    /// A node with this configuration, randomness from `seed`, started at `now`.
    pub fn new(cfg: Config, seed: [u8; 32], now: Instant) -> Result<Engine, ConfigError> {
        let mut overlays = Vec::new();
        // The static key (when configured) seeds what must survive a restart.
        let stable: Option<[u8; 32]> = cfg
            .security
            .static_key
            .as_ref()
            .and_then(|k| k.0.as_slice().try_into().ok());
        for (i, o) in cfg.overlays.iter().enumerate() {
            if o.name.is_empty()
                || !o
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(ConfigError::new(
                    format!("overlays[{i}].name"),
                    format!(
                        "'{}' must be a single DNS label (letters, digits, '-')",
                        o.name
                    ),
                ));
            }
            if o.name.eq_ignore_ascii_case("oci") {
                return Err(ConfigError::new(
                    format!("overlays[{i}].name"),
                    "'oci' is reserved for path options",
                ));
            }
            if o.name.eq_ignore_ascii_case(crate::legacy::SUFFIX) {
                return Err(ConfigError::new(
                    format!("overlays[{i}].name"),
                    "'ip' is reserved for hops to legacy hosts",
                ));
            }
            if overlays
                .iter()
                .any(|s: &OverlaySlot| s.name.eq_ignore_ascii_case(&o.name))
            {
                return Err(ConfigError::new(
                    format!("overlays[{i}].name"),
                    format!("overlay '{}' is configured twice", o.name),
                ));
            }
            if o.local_name.is_empty() || o.local_name.contains('_') {
                return Err(ConfigError::new(
                    format!("overlays[{i}].local_name"),
                    "must be a non-empty host name without '_'",
                ));
            }
            let seeds = ocd::Seeds {
                fresh: module_seed(&seed, i),
                stable: stable.map(|k| module_seed(&k, i)),
            };
            let module = ocd::new_module(i, o, &cfg.limits, seeds)?;
            overlays.push(OverlaySlot {
                name: o.name.to_ascii_lowercase(),
                local_name: o.local_name.to_ascii_lowercase(),
                module,
                traffic: crate::api::OverlayCounters {
                    overlay: o.name.to_ascii_lowercase(),
                    ..Default::default()
                },
                queue: crate::codel::Codel::new(
                    std::time::Duration::from_micros(cfg.limits.queue_target_us),
                    std::time::Duration::from_micros(cfg.limits.queue_interval_us),
                ),
            });
        }
        if overlays.len() > usize::from(u16::MAX) {
            return Err(ConfigError::new("overlays", "too many overlays"));
        }
        let pairs: Vec<(String, String)> = cfg
            .rules
            .iter()
            .map(|r| (r.pattern.clone(), r.replace.clone()))
            .collect();
        let rules = Rules::new(&pairs)
            .map_err(|e| ConfigError::new(format!("rules[{}].pattern", e.index), e.message))?;
        if cfg.limits.max_paths > MAX_PATHS {
            return Err(ConfigError::new(
                "limits.max_paths",
                format!("at most {MAX_PATHS}"),
            ));
        }
        if cfg.limits.path_mtu < 576 {
            return Err(ConfigError::new(
                "limits.path_mtu",
                "must be at least 576 (the IPv4 minimum)",
            ));
        }
        if cfg.limits.queue_target_us > 0
            && !(cfg.limits.queue_target_us..=1_000_000).contains(&cfg.limits.queue_interval_us)
        {
            return Err(ConfigError::new(
                "limits.queue_interval_us",
                "must be at least limits.queue_target_us and at most 1000000 (1 s)",
            ));
        }
        if cfg.limits.max_hops == 0 || cfg.limits.max_hops > 8 {
            return Err(ConfigError::new(
                "limits.max_hops",
                "must be between 1 and 8",
            ));
        }
        let legacy = match &cfg.legacy_server {
            Some(_) if !cfg.gateway => {
                return Err(ConfigError::new(
                    "legacy_server",
                    "a legacy server gateway relays: set gateway = true",
                ))
            }
            Some(l) => Some(crate::legacy::LegacyServer::new(
                l,
                cfg.limits.max_half_open,
            )?),
            None => None,
        };
        if let Some(c) = &cfg.legacy_client {
            c.validate(&cfg.handles)?;
        }
        let handles = Handles::new(&cfg.handles, cfg.limits.max_handles, &seed)?;
        let credentials = Credentials::from_config(&cfg.security)?;
        let mut rng = Rng::new(seed);
        let mut cookie_secret = [0u8; 32];
        for chunk in cookie_secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Ok(Engine {
            rng,
            credentials,
            cookie_secret,
            now,
            overlays,
            rules,
            handles,
            paths: Paths::default(),
            tunnels: Tunnels::default(),
            timers: Timers::default(),
            out: VecDeque::new(),
            deliveries: VecDeque::new(),
            in_place: VecDeque::new(),
            datagram_index: 0,
            heard: None,
            key_cache: Default::default(),
            pool: PacketPool::default(),
            upstream: BTreeMap::new(),
            next_query: 1,
            waiting_queries: 0,
            drops: BTreeMap::new(),
            counters: Counters::default(),
            reply_budget: REPLY_BUDGET,
            cookie_budget: COOKIE_BUDGET,
            reply_window: now,
            middlebox: cfg.middlebox.clone().map(Filter::new),
            granted: crate::middlebox::granted::Granted::new(cfg.limits.max_paths),
            legacy,
            ecn_out: Ecn::NotEct,
            cfg,
        })
    }

    /// Feeds one input. `Err` only for a caller's mistake; bad input is counted and dropped.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), ApiError> {
        self.handle_batch(now, [input])
    }

    /// Feeds a batch of inputs that arrived together at `now` — the segments of one TUN
    /// read, the datagrams of one receive — checking timers once for the batch. Outputs queue
    /// as for single inputs; drain them with [`Engine::poll_output`] after the batch and send
    /// them together. Payloads are borrowed, never copied into the queue.
    pub fn handle_batch<'a>(
        &mut self,
        now: Instant,
        inputs: impl IntoIterator<Item = Input<'a>>,
    ) -> Result<(), ApiError> {
        let mut batch = self.batch(now)?;
        for input in inputs {
            batch.input(input);
        }
        Ok(())
    }

    /// Starts a batch at `now`, checking timers once, for inputs that cannot be listed up
    /// front: the segments of a TUN super-packet, each cut in the read buffer over the one
    /// before once the engine has taken it. Outputs queue as for [`Engine::handle_batch`].
    pub fn batch(&mut self, now: Instant) -> Result<Batch<'_>, ApiError> {
        if now < self.now {
            return Err(ApiError::TimeWentBackwards {
                last: self.now,
                now,
            });
        }
        self.now = now;
        self.heard = None;
        self.datagram_index = 0;
        // The driver may have reused the last batch's buffers: what still lies there is lost.
        for _ in 0..self.in_place.len() {
            self.drop_input(DropReason::NotDrained);
        }
        self.in_place.clear();
        self.fire_timers();
        Ok(Batch { engine: self })
    }

    fn dispatch(&mut self, input: Input<'_>) {
        // Both kinds of TUN packet share one call, which the compiler then inlines.
        let (packet, partial) = match input {
            Input::Timeout => return,
            Input::TunPacket(packet) => (packet, None),
            Input::TunPartial { packet, checksum } => (packet, Some(checksum)),
            Input::Datagram {
                overlay,
                from,
                payload,
                queued,
                ecn,
            } => {
                self.on_datagram(overlay, from, payload, Arrival { queued, ecn });
                self.datagram_index += 1;
                return;
            }
            Input::Resolved { id, result } => return self.on_resolved(id, result),
            Input::Command(cmd) => return self.on_command(cmd),
            Input::NetworkChanged => return self.on_network_changed(),
        };
        self.on_tun_packet(packet, partial);
    }

    /// The next thing to do; `Output::Timeout` when there is nothing until that instant.
    /// Datagrams and events come first, in the order they were made, then packets for local
    /// apps in theirs. Inlined into the driver's loop (with [`Engine::recycle`]): it runs for
    /// every packet.
    #[inline]
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if let Some(p) = self.deliveries.pop_front() {
            return Output::WriteTun(p);
        }
        match self.in_place.pop_front() {
            Some(d) => {
                self.counters.tun_out += 1;
                Output::WriteTunInPlace(d)
            }
            None => Output::Timeout(self.next_deadline()),
        }
    }

    /// The earliest deadline of the engine's timers and its modules'.
    fn next_deadline(&self) -> Instant {
        let mut next = self.timers.next();
        for slot in &self.overlays {
            next = next.min(slot.module.poll_timeout());
        }
        next
    }

    /// Gives a buffer from `WriteTun`, `Transmit` or `UpstreamDns` back for reuse, so the
    /// data path does not allocate once warm.
    #[inline]
    pub fn recycle(&mut self, packet: Packet) {
        self.pool.give(packet);
    }

    /// Counts and reports a drop.
    pub(crate) fn drop_input(&mut self, reason: DropReason) {
        *self.drops.entry(reason).or_insert(0) += 1;
        self.out.push_back(Output::Event(Event::Dropped { reason }));
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// Whether a reply to an unknown sender fits the rate limit.
    /// Cookie replies have a budget of their own, larger since a cookie is no bigger than
    /// the setup it answers: a flood of spoofed setups must not use up the replies a real
    /// peer's setup needs.
    pub(crate) fn may_reply(&mut self, cookie: bool) -> bool {
        if self.now.since(self.reply_window) >= Duration::from_millis(100) {
            self.reply_window = self.now;
            self.reply_budget = REPLY_BUDGET;
            self.cookie_budget = COOKIE_BUDGET;
        }
        let budget = if cookie {
            &mut self.cookie_budget
        } else {
            &mut self.reply_budget
        };
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        true
    }

    pub(crate) fn overlay_id(&self, name: &str) -> Option<OverlayId> {
        self.overlays
            .iter()
            .position(|s| s.name == name)
            .map(|i| OverlayId(i as u16))
    }

    pub(crate) fn module(&mut self, id: OverlayId) -> Option<&mut Box<dyn Overlay>> {
        self.overlays
            .get_mut(usize::from(id.0))
            .map(|s| &mut s.module)
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for i in 0..self.overlays.len() {
            if self.overlays[i].module.poll_timeout() <= now {
                self.overlays[i].module.handle_timeout(now);
                self.drain_overlay(OverlayId(i as u16));
            }
        }
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Setup { path, gen } => self.on_setup_timer(path, gen),
                Timer::HandleIdle { handle, gen } => self.on_handle_idle(handle, gen),
                Timer::Upstream(id) => self.on_upstream_timeout(id),
                Timer::Rekey { path, gen } => self.on_rekey_timer(path, gen),
                Timer::Retire { path, gen } => self.on_retire_timer(path, gen),
            }
        }
    }

    /// [`Engine::drain_overlay`] right after a module was handed a datagram that carries ECN
    /// field `ecn`: what it sends now leaves with that field.
    pub(crate) fn drain_overlay_carrying(&mut self, id: OverlayId, ecn: Ecn) {
        let slot = self.overlays.get(usize::from(id.0));
        if !slot.is_some_and(|s| s.module.has_events()) {
            return;
        }
        self.ecn_out = ecn;
        self.drain_overlay(id);
        self.ecn_out = Ecn::NotEct;
    }

    /// Turns a module's events into outputs and OC-I actions.
    pub(crate) fn drain_overlay(&mut self, id: OverlayId) {
        loop {
            let Some(event) = self.module(id).and_then(|m| m.poll_event()) else {
                return;
            };
            self.heard = None;
            match event {
                OverlayEvent::Transmit(d) => self.transmit(id, d, self.ecn_out),
                OverlayEvent::SetupDone(r) => self.on_tunnel_up(id, r),
                OverlayEvent::SetupFailed(r, why) => self.on_tunnel_failed(id, r, &why),
                OverlayEvent::TunnelDead(r) => self.on_tunnel_dead(id, r),
                OverlayEvent::SameAs { tunnel, existing } => {
                    self.on_tunnel_same(id, tunnel, existing)
                }
                OverlayEvent::Resolve { token, host } => self.lookup(
                    &host,
                    crate::dns::intercept::LookupFor::Overlay { overlay: id, token },
                ),
                OverlayEvent::Notice(text) => {
                    let overlay = self
                        .overlays
                        .get(usize::from(id.0))
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    self.event(Event::OverlayNotice { overlay, text });
                }
            }
        }
    }

    /// Queues a datagram for overlay `id`'s socket, counted as its traffic.
    pub(crate) fn transmit(&mut self, id: OverlayId, d: Datagram, ecn: Ecn) {
        self.count_out(id, d.payload.len());
        self.out.push_back(Output::Transmit {
            overlay: id,
            to: d.to,
            payload: d.payload,
            ecn,
        });
    }

    fn count_out(&mut self, id: OverlayId, len: usize) {
        self.counters.datagrams_out += 1;
        if let Some(slot) = self.overlays.get_mut(usize::from(id.0)) {
            slot.traffic.datagrams_out += 1;
            slot.traffic.bytes_out += len as u64;
        }
    }

    /// Sends `datagram` over module tunnel `r` of overlay `id` with `ecn`, or gives it back
    /// to the pool if the tunnel cannot carry it.
    pub(crate) fn send_on_tunnel(
        &mut self,
        id: OverlayId,
        r: TunnelRef,
        datagram: Packet,
        ecn: Ecn,
    ) {
        stage_datagram(&mut self.out, id, datagram, ecn);
        self.send_staged(id, r);
    }

    /// Sends the datagram staged last ([`stage_datagram`]) over module tunnel `r` of overlay
    /// `id`: the module encapsulates it where it lies and names where it goes. One the
    /// tunnel cannot carry is taken back.
    pub(crate) fn send_staged(&mut self, id: OverlayId, r: TunnelRef) {
        let now = self.now;
        let sent = match (
            self.overlays.get_mut(usize::from(id.0)),
            self.out.back_mut(),
        ) {
            (Some(slot), Some(Output::Transmit { to, payload, .. })) => {
                slot.module.send(now, r, payload).map(|dest| {
                    *to = dest;
                    payload.len()
                })
            }
            _ => None,
        };
        match sent {
            Some(len) => self.count_out(id, len),
            None => self.unstage(),
        }
    }

    /// Takes back the datagram staged last, which cannot go out after all, and returns its
    /// buffer to the pool.
    pub(crate) fn unstage(&mut self) {
        match self.out.pop_back() {
            Some(Output::Transmit { payload, .. }) => self.pool.give(payload),
            Some(other) => self.out.push_back(other),
            None => {}
        }
    }

    /// Every module renews what it keeps at others from the host's new underlay address.
    fn on_network_changed(&mut self) {
        let now = self.now;
        for i in 0..self.overlays.len() {
            self.overlays[i].module.network_changed(now);
            self.drain_overlay(OverlayId(i as u16));
        }
    }

    fn on_handle_idle(&mut self, key: usize, gen: u32) {
        let idle = Duration::from_secs(self.cfg.handles.idle_timeout_secs);
        let Some(h) = self.handles.get(key).filter(|h| h.gen == gen) else {
            return;
        };
        let expires = h.last_used.saturating_add(idle);
        if expires > self.now {
            self.timers
                .schedule(expires, Timer::HandleIdle { handle: key, gen });
            return;
        }
        self.release_handle(key, "idle");
    }

    /// Binds (or refreshes) the handle for a canonical name, arming its idle timer when new.
    pub(crate) fn bind_handle(&mut self, name: &str) -> Option<usize> {
        self.bind_handle_preferring(name, Default::default())
    }

    /// Like [`Engine::bind_handle`]; a new handle takes the `preferred` addresses where they
    /// are free (address negotiation).
    pub(crate) fn bind_handle_preferring(
        &mut self,
        name: &str,
        preferred: crate::wire::message::Sources,
    ) -> Option<usize> {
        let (key, new) = self.handles.bind(name, self.now, preferred)?;
        if new {
            let idle = Duration::from_secs(self.cfg.handles.idle_timeout_secs);
            if let Some(h) = self.handles.get(key) {
                let (gen, v4, v6) = (h.gen, h.v4, h.v6);
                self.timers.schedule(
                    self.now.saturating_add(idle),
                    Timer::HandleIdle { handle: key, gen },
                );
                self.event(Event::HandleBound {
                    name: name.to_string(),
                    v4: v4.into(),
                    v6: v6.into(),
                });
            }
        }
        Some(key)
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Status => {
                let status = self.status();
                self.event(Event::Status(Box::new(status)));
            }
            Command::Shutdown => {
                let keys: Vec<usize> = self
                    .paths
                    .iter()
                    .filter(|(_, p)| {
                        !matches!(
                            p.role,
                            crate::oci::paths::Role::Relay {
                                downstream: true,
                                ..
                            }
                        )
                    })
                    .map(|(k, _)| k)
                    .collect();
                for k in keys {
                    self.close_path(
                        k,
                        crate::wire::message::CloseReason::Shutdown,
                        "shutting down",
                    );
                }
            }
            Command::ClosePath(name) => {
                // The same name as DNS would bind: rules applied, default options dropped.
                let lower = name.trim_end_matches('.').to_ascii_lowercase();
                let rewritten = self.rules.apply(&lower).into_owned();
                let canonical = match self.parse(&rewritten) {
                    Ok(Some(parsed)) => self.handle_name_of(&parsed),
                    _ => rewritten,
                };
                for key in self
                    .handles
                    .by_name(&canonical)
                    .map(|h| self.paths_of_handle(h))
                    .unwrap_or_default()
                {
                    self.close_path(
                        key,
                        crate::wire::message::CloseReason::Idle,
                        "closed by operator",
                    );
                }
            }
        }
    }

    /// The LAN client an app's packet or query comes from, when this node is a legacy client
    /// gateway for its address; `None` for local apps.
    pub(crate) fn lan_client(&self, src: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let served = self
            .cfg
            .legacy_client
            .as_ref()
            .is_some_and(|c| c.serves(src));
        served.then_some(src)
    }

    /// A number that changes whenever a name is bound to a handle or released: a driver
    /// checkpoints when it differs from the one it saved last, so a crash loses as few
    /// bindings as possible without writing on every packet.
    pub fn handles_version(&self) -> u64 {
        self.handles.version()
    }

    /// Every handle bound to a name, for a driver's checkpoint.
    pub fn handle_bindings(&self) -> Vec<HandleBinding> {
        // Egress handles belong to sessions with legacy hosts, which a restart ends.
        self.handles
            .iter_by_name()
            .filter(|h| h.legacy.is_none())
            .map(|h| HandleBinding {
                name: h.name.clone(),
                v4: h.v4,
                v6: h.v6,
            })
            .collect()
    }

    /// The bindings made since `version` (an earlier [`Engine::handles_version`]), oldest
    /// first: what a driver appends to its checkpoint's journal instead of writing every
    /// binding again. Releases are not listed; they reach the checkpoint with the next full
    /// one.
    pub fn handle_bindings_since(&self, version: u64) -> Vec<HandleBinding> {
        let mut since: Vec<&crate::oci::handles::Handle> = self
            .handles
            .slab
            .iter()
            .map(|(_, h)| h)
            .filter(|h| h.bound_at > version && h.legacy.is_none())
            .collect();
        since.sort_by_key(|h| h.bound_at);
        since
            .into_iter()
            .map(|h| HandleBinding {
                name: h.name.clone(),
                v4: h.v4,
                v6: h.v6,
            })
            .collect()
    }

    /// Binds names to the addresses a checkpoint recorded, so apps that still hold them keep
    /// working: their next packet sets up a path. Returns how many were restored; bindings
    /// that conflict with the pools or with each other are skipped.
    pub fn restore_handles(&mut self, bindings: &[HandleBinding]) -> usize {
        let idle = Duration::from_secs(self.cfg.handles.idle_timeout_secs);
        let mut restored = 0;
        for b in bindings {
            if let Some(key) = self.handles.bind_exact(&b.name, b.v4, b.v6, self.now) {
                if let Some(h) = self.handles.get(key) {
                    let gen = h.gen;
                    self.timers.schedule(
                        self.now.saturating_add(idle),
                        Timer::HandleIdle { handle: key, gen },
                    );
                }
                restored += 1;
            }
        }
        restored
    }
}

/// Queues `payload` as a datagram for overlay `id` before it is filled or encapsulated, and
/// returns it to be written where it stays ([`Engine::send_staged`] sends it,
/// [`Engine::unstage`] takes it back). A data packet built in place is never copied with its
/// fields freshly written: a wide copy of narrow stores stalls the CPU until they retire,
/// and such copies were a third of the time a packet took to send.
pub(crate) fn stage_datagram(
    out: &mut VecDeque<Output>,
    id: OverlayId,
    payload: Packet,
    ecn: Ecn,
) -> Option<&mut Packet> {
    out.push_back(Output::Transmit {
        overlay: id,
        to: SocketAddr::from(([0, 0, 0, 0], 0)),
        payload,
        ecn,
    });
    match out.back_mut() {
        Some(Output::Transmit { payload, .. }) => Some(payload),
        _ => None,
    }
}

/// Each overlay module's own randomness (private trigger ids, probe nonces), drawn from the
/// node's seed so runs stay reproducible, and apart from the engine's stream.
fn module_seed(seed: &[u8; 32], index: usize) -> [u8; 32] {
    use blake2::digest::{FixedOutput, KeyInit, Update};
    let mut mac = blake2::Blake2sMac256::new(seed.into());
    mac.update(b"ocala module seed");
    mac.update(&(index as u64).to_be_bytes());
    mac.finalize_fixed().into()
}
