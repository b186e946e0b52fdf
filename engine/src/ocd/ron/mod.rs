//! The `ron` overlay (Andersen et al., "Resilient Overlay Networks", SOSP 2001; paper §4.2):
//! a small, configured set of members that probe each other, share what they measured, and
//! send each packet either straight to its destination or through one intermediate member,
//! whichever path is best by the tunnel's metric. When a direct link dies, traffic moves to a
//! working one-hop path within a few probe periods (about a second with the defaults, where
//! RON took 18 s).
//!
//! The members are this node and the overlay's address book (the same set at every member).
//! Control traffic (probes, answers, link state) carries a MAC under the members' shared
//! `auth_key`, so an outsider cannot steer routes. Each name with options is its own tunnel
//! (`bob.mindelay.ron` and `bob.ron` route independently); the receiving member answers on the
//! metric the sender chose.
//!
//! Files: `wire.rs` (packets), `links.rs` (one link's probing), `routes.rs` (metrics and the
//! path choice), this file (members, tunnels, timers, forwarding).

pub mod links;
pub mod routes;
pub mod wire;

use self::links::{Change, Link};
use self::routes::{choose, Hop, Measure, Metric};
use self::wire::{DataHeader, Key, LinkReport, ReadError, RonPacket, DATA_HEADER_LEN, LOSS_DOWN};
use super::{Datagram, HopSpec, Overlay, OverlayDrop, OverlayEvent, Peer, Received, TunnelRef};
use crate::config::{ConfigError, HexBytes, Limits, OverlayConfig};
use crate::packet::{Packet, PacketPool};
use crate::time::Instant;
use serde::Deserialize;
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `[overlays.ron]`: the RON-specific part of an overlay entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RonConfig {
    /// The members' shared key for probes and link state (32 bytes, hex). Required.
    pub auth_key: Option<HexBytes>,
    /// Milliseconds between probes of each link.
    pub probe_ms: u64,
    /// Probes lost in a row that take a link down (and answers in a row that bring it back).
    pub misses: u32,
    /// Milliseconds between link-state reports to the other members (a link that goes up or
    /// down is reported at once).
    pub link_state_ms: u64,
}

impl Default for RonConfig {
    fn default() -> Self {
        RonConfig {
            auth_key: None,
            probe_ms: 250,
            misses: 3,
            link_state_ms: 1000,
        }
    }
}

/// A member's id: the hash of its overlay name.
pub fn member_id(name: &str) -> u64 {
    use blake2::{Blake2s256, Digest};
    let mut h = Blake2s256::new();
    h.update(b"ocala ron member v1\0");
    h.update(name.to_ascii_lowercase().as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[derive(Debug)]
struct Member {
    name: String,
    id: u64,
    addr: SocketAddr,
    /// Our direct link to it (unused for ourselves).
    link: Link,
    /// What it last reported of its own links, by member index.
    reported: Vec<Option<Measure>>,
    report_version: u32,
    report_at: Option<Instant>,
}

#[derive(Debug)]
struct Tunnel {
    /// `None` when the name is no member (the setup failed).
    member: Option<usize>,
    metric: Metric,
    /// The far end's tunnel, once known (0 before).
    remote_tunnel: u16,
    route: Option<Hop>,
    /// Since when no path at all leads to the member.
    unreachable_since: Option<Instant>,
    /// Whether OC-I was told the tunnel is dead (once per outage).
    reported_dead: bool,
    /// Packets that found no path.
    no_route: u64,
}

/// The module.
pub struct RonOverlay {
    suffix: String,
    key: Key,
    /// Sorted by name; `me` is ours.
    members: Vec<Member>,
    me: usize,
    by_id: BTreeMap<u64, usize>,
    probe: Duration,
    misses: u32,
    link_state: Duration,
    /// How long a tunnel may have no path at all before its paths are given up.
    dead_after: Duration,
    tunnels: Slab<Tunnel>,
    /// Tunnels we accepted, by (member, the member's tunnel).
    by_remote: BTreeMap<(usize, u16), TunnelRef>,
    next_probe: Instant,
    next_links: Instant,
    links_version: u32,
    /// Bytes of probes, answers and link state sent, for the overhead report.
    control_bytes: u64,
    relayed: u64,
    events: VecDeque<OverlayEvent>,
}

impl RonOverlay {
    /// A module for one `[[overlays]]` entry with `module = "ron"`.
    pub fn new(
        index: usize,
        cfg: &OverlayConfig,
        limits: &Limits,
    ) -> Result<RonOverlay, ConfigError> {
        let key = |k: &str| format!("overlays[{index}].ron.{k}");
        let c = &cfg.ron;
        let auth: Key = match &c.auth_key {
            None => {
                return Err(ConfigError::new(
                    key("auth_key"),
                    "a RON overlay needs the members' shared key (32 bytes, hex)",
                ))
            }
            Some(k) => k.0.as_slice().try_into().map_err(|_| {
                ConfigError::new(key("auth_key"), "must be 32 bytes (64 hex digits)")
            })?,
        };
        if !(20..=60_000).contains(&c.probe_ms) {
            return Err(ConfigError::new(key("probe_ms"), "must be 20..=60000"));
        }
        if !(1..=20).contains(&c.misses) {
            return Err(ConfigError::new(key("misses"), "must be 1..=20"));
        }
        if c.link_state_ms < c.probe_ms || c.link_state_ms > 600_000 {
            return Err(ConfigError::new(
                key("link_state_ms"),
                "must be at least probe_ms and at most 600000",
            ));
        }
        let local = cfg.local_name.to_ascii_lowercase();
        let mut names: BTreeMap<String, SocketAddr> = cfg
            .address_book
            .iter()
            .map(|(n, a)| (n.to_ascii_lowercase(), *a))
            .collect();
        if names.len() > wire::MAX_LINKS {
            return Err(ConfigError::new(
                format!("overlays[{index}].address_book"),
                format!("a RON overlay has at most {} members", wire::MAX_LINKS),
            ));
        }
        // Our own address is not needed: others know it from their books.
        names
            .entry(local.clone())
            .or_insert(SocketAddr::from(([0, 0, 0, 0], cfg.port)));
        let n = names.len();
        let members: Vec<Member> = names
            .into_iter()
            .map(|(name, addr)| Member {
                id: member_id(&format!("{name}.{}", cfg.name.to_ascii_lowercase())),
                name,
                addr,
                link: Link::default(),
                reported: vec![None; n],
                report_version: 0,
                report_at: None,
            })
            .collect();
        let mut by_id = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            if by_id.insert(m.id, i).is_some() {
                return Err(ConfigError::new(
                    format!("overlays[{index}].address_book"),
                    format!("two members hash to one id ('{}')", m.name),
                ));
            }
        }
        let me = members.iter().position(|m| m.name == local).unwrap_or(0);
        let probe = Duration::from_millis(c.probe_ms);
        Ok(RonOverlay {
            suffix: cfg.name.to_ascii_lowercase(),
            key: auth,
            members,
            me,
            by_id,
            probe,
            misses: c.misses,
            link_state: Duration::from_millis(c.link_state_ms),
            dead_after: Duration::from_secs(cfg.keepalive_secs.max(1))
                .max(probe * limits.keepalive_misses.max(1)),
            tunnels: Slab::new(),
            by_remote: BTreeMap::new(),
            next_probe: Instant::ZERO,
            next_links: Instant::ZERO,
            links_version: 0,
            control_bytes: 0,
            relayed: 0,
            events: VecDeque::new(),
        })
    }

    fn transmit(&mut self, to: SocketAddr, p: &RonPacket<'_>) {
        let mut payload = Packet::from_slice(&[]);
        p.encode(&self.key, payload.tail_vec());
        self.control_bytes += payload.len() as u64;
        self.events
            .push_back(OverlayEvent::Transmit(Datagram { to, payload }));
    }

    fn notice(&mut self, text: String) {
        self.events.push_back(OverlayEvent::Notice(text));
    }

    fn others(&self) -> impl Iterator<Item = usize> {
        let me = self.me;
        (0..self.members.len()).filter(move |&i| i != me)
    }

    /// Whether member `i`'s link-state report is recent enough to route by.
    fn fresh(&self, i: usize, now: Instant) -> bool {
        self.members[i]
            .report_at
            .is_some_and(|at| at.saturating_add(self.link_state * 3) > now)
    }

    /// The usable paths to member `dst`: direct, and through each member whose link to us
    /// and whose reported link to `dst` are up.
    fn candidates(&self, now: Instant, dst: usize) -> Vec<(Hop, Measure)> {
        let mut out = Vec::new();
        if let Some(m) = self.members[dst].link.measure() {
            out.push((Hop::Direct, m));
        }
        for via in self.others().filter(|&v| v != dst) {
            let first = self.members[via].link.measure();
            let second = self.members[via].reported[dst].filter(|_| self.fresh(via, now));
            if let (Some(a), Some(b)) = (first, second) {
                out.push((Hop::Via(via), a.then(b)));
            }
        }
        out
    }

    /// Picks each tunnel's path again; notices say where one moved.
    fn reroute(&mut self, now: Instant) {
        let keys: Vec<usize> = self.tunnels.iter().map(|(k, _)| k).collect();
        for k in keys {
            let Some((Some(dst), metric, current)) =
                self.tunnels.get(k).map(|t| (t.member, t.metric, t.route))
            else {
                continue;
            };
            let cands = self.candidates(now, dst);
            let chosen = choose(metric, current, cands.into_iter());
            let route = chosen.map(|(h, _)| h);
            let dead = self.tunnel_dead_check(k, now, route.is_none());
            if let Some(t) = self.tunnels.get_mut(k) {
                t.route = route;
            }
            if dead {
                self.events
                    .push_back(OverlayEvent::TunnelDead(k as TunnelRef));
                continue;
            }
            if route != current && (current.is_some() || route.is_some()) {
                let text = format!(
                    "{} ({}): {} (was {})",
                    self.members[dst].name,
                    metric.option(),
                    self.hop_text(route, chosen.map(|(_, m)| m)),
                    self.hop_text(current, None)
                );
                self.notice(text);
            }
        }
    }

    /// Tracks how long a tunnel has had no path; whether it has had none for too long.
    fn tunnel_dead_check(&mut self, k: usize, now: Instant, no_path: bool) -> bool {
        let dead_after = self.dead_after;
        let Some(t) = self.tunnels.get_mut(k) else {
            return false;
        };
        if !no_path {
            t.unreachable_since = None;
            t.reported_dead = false;
            return false;
        }
        let since = *t.unreachable_since.get_or_insert(now);
        let dead = !t.reported_dead && since.saturating_add(dead_after) <= now;
        t.reported_dead |= dead;
        dead
    }

    fn hop_text(&self, hop: Option<Hop>, m: Option<Measure>) -> String {
        let rtt = m.map_or(String::new(), |m| {
            format!(
                ", {:.1} ms, {:.1} % loss",
                f64::from(m.rtt_us) / 1000.0,
                f64::from(m.loss_pm) / 10.0
            )
        });
        match hop {
            None => "no path".into(),
            Some(Hop::Direct) => format!("direct{rtt}"),
            Some(Hop::Via(v)) => format!("via {}{rtt}", self.members[v].name),
        }
    }

    /// Our links as we report them.
    fn report(&self) -> Vec<LinkReport> {
        self.others()
            .map(|i| {
                let m = &self.members[i];
                match m.link.measure() {
                    Some(x) => LinkReport {
                        peer: m.id,
                        rtt_us: x.rtt_us,
                        loss_pm: x.loss_pm,
                    },
                    None => LinkReport {
                        peer: m.id,
                        rtt_us: 0,
                        loss_pm: LOSS_DOWN,
                    },
                }
            })
            .collect()
    }

    fn send_link_state(&mut self, now: Instant) {
        self.links_version = self.links_version.wrapping_add(1);
        let p = RonPacket::Links {
            src: self.members[self.me].id,
            version: self.links_version,
            links: self.report(),
        };
        let to: Vec<SocketAddr> = self.others().map(|i| self.members[i].addr).collect();
        for addr in to {
            self.transmit(addr, &p);
        }
        self.next_links = now.saturating_add(self.link_state);
    }

    fn on_link_state(&mut self, now: Instant, src: usize, version: u32, links: &[LinkReport]) {
        let stale = !self.fresh(src, now);
        let m = &mut self.members[src];
        // Versions only go up while reports keep coming; after a silence (a restart) any
        // version is taken, so a replayed report can only repeat a recent one.
        if !stale && version <= m.report_version {
            return;
        }
        m.report_version = version;
        m.report_at = Some(now);
        m.reported.iter_mut().for_each(|r| *r = None);
        for l in links {
            if let Some(&i) = self.by_id.get(&l.peer) {
                self.members[src].reported[i] = (l.loss_pm < LOSS_DOWN).then_some(Measure {
                    rtt_us: l.rtt_us,
                    loss_pm: l.loss_pm,
                });
            }
        }
        self.reroute(now);
    }

    /// Links that went up or down: noticed, reported to the others at once (they route
    /// through us) in one link-state message, and every tunnel routed again.
    fn on_link_changes(&mut self, now: Instant, changes: &[(usize, Change)]) {
        for &(i, change) in changes {
            let name = self.members[i].name.clone();
            self.notice(format!(
                "link to {name} {}",
                match change {
                    Change::Up => "is up",
                    Change::Down => "is down",
                }
            ));
        }
        if !changes.is_empty() {
            self.send_link_state(now);
        }
        self.reroute(now);
    }

    /// The peer token of a sender: its member id, its tunnel and its metric.
    fn token(id: u64, tunnel: u16, metric: u8) -> Peer {
        let mut b = [0u8; 11];
        b[..8].copy_from_slice(&id.to_be_bytes());
        b[8..10].copy_from_slice(&tunnel.to_be_bytes());
        b[10] = metric;
        Peer::new(&b).unwrap_or(Peer::id(&[0; 32]))
    }

    fn sender_of(&self, p: &Peer) -> Option<(usize, u16, Metric)> {
        let b = p.as_bytes();
        let id = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let tunnel = u16::from_be_bytes(b.get(8..10)?.try_into().ok()?);
        let metric = Metric::from_code(*b.get(10)?);
        Some((*self.by_id.get(&id)?, tunnel, metric))
    }

    /// An OCALA message for member `dst`, addressed to the first hop of `route` (the direct
    /// link while nothing is measured yet, unless that link is known to be down).
    fn send_data(
        &mut self,
        dst: usize,
        route: Option<Hop>,
        tunnels: (u16, u16),
        metric: Metric,
        mut datagram: Packet,
    ) -> Result<Datagram, Packet> {
        let first = match route {
            Some(Hop::Via(v)) => v,
            Some(Hop::Direct) => dst,
            None if !self.members[dst].link.known_down() => dst,
            None => return Err(datagram),
        };
        let h = DataHeader {
            flags: 0,
            src: self.members[self.me].id,
            dst: self.members[dst].id,
            src_tunnel: tunnels.0,
            dst_tunnel: tunnels.1,
            metric: metric.code(),
        };
        match datagram.prepend(DATA_HEADER_LEN) {
            Some(head) => wire::write_data_header(head, &h),
            None => {
                let mut p = Packet::from_slice(&[0u8; DATA_HEADER_LEN]);
                wire::write_data_header(&mut p, &h);
                p.extend_from_slice(&datagram);
                datagram = p;
            }
        }
        Ok(Datagram {
            to: self.members[first].addr,
            payload: datagram,
        })
    }

    /// A DATA packet for another member: relayed once, between members only.
    fn relay(
        &mut self,
        from: SocketAddr,
        h: &DataHeader,
        raw: &[u8],
        pool: &mut PacketPool,
    ) -> Received<'static> {
        let (Some(&src), Some(&dst)) = (self.by_id.get(&h.src), self.by_id.get(&h.dst)) else {
            return Received::Dropped(OverlayDrop::NotAMember);
        };
        if h.flags & wire::FLAG_RELAYED != 0 {
            return Received::Dropped(OverlayDrop::RelayedTwice);
        }
        // Only the source member itself may ask us to relay.
        if self.members[src].addr != from {
            return Received::Dropped(OverlayDrop::NotAMember);
        }
        let mut buf = pool.take();
        buf.extend_from_slice(raw);
        wire::set_relayed(&mut buf);
        self.relayed += 1;
        let to = self.members[dst].addr;
        self.events
            .push_back(OverlayEvent::Transmit(Datagram { to, payload: buf }));
        Received::Consumed
    }

    /// The tunnel a DATA packet for us belongs to, if we know it.
    fn tunnel_of(&mut self, src: usize, h: &DataHeader) -> Option<TunnelRef> {
        let own = h.dst_tunnel.checked_sub(1).map(usize::from);
        if let Some(k) = own.filter(|&k| self.tunnels.get(k).is_some_and(|t| t.member == Some(src)))
        {
            if let Some(t) = self.tunnels.get_mut(k) {
                if t.remote_tunnel == 0 {
                    t.remote_tunnel = h.src_tunnel;
                }
            }
            return Some(k as TunnelRef);
        }
        self.by_remote.get(&(src, h.src_tunnel)).copied()
    }

    fn new_tunnel(
        &mut self,
        member: Option<usize>,
        metric: Metric,
        remote_tunnel: u16,
    ) -> TunnelRef {
        self.tunnels.insert(Tunnel {
            member,
            metric,
            remote_tunnel,
            route: None,
            unreachable_since: None,
            reported_dead: false,
            no_route: 0,
        }) as TunnelRef
    }

    /// Our tunnel's number on the wire (slot + 1; 0 means none). Tunnels past 65 534 are not
    /// numbered, and their answers are matched by the sender's tunnel instead.
    fn wire_tunnel(t: TunnelRef) -> u16 {
        u16::try_from(t + 1).unwrap_or(0)
    }

    /// Probe overhead: control bytes this member sent so far.
    pub fn control_bytes(&self) -> u64 {
        self.control_bytes
    }

    /// [`Overlay::send`], with the buffer moved through the module's encoders.
    fn send_datagram(&mut self, tunnel: TunnelRef, datagram: Packet) -> Result<Datagram, Packet> {
        let Some(t) = self.tunnels.get(tunnel as usize) else {
            return Err(datagram);
        };
        let Some(dst) = t.member else {
            return Err(datagram);
        };
        let (route, metric, remote) = (t.route, t.metric, t.remote_tunnel);
        let sent = self.send_data(
            dst,
            route,
            (Self::wire_tunnel(tunnel), remote),
            metric,
            datagram,
        );
        if sent.is_err() {
            if let Some(t) = self.tunnels.get_mut(tunnel as usize) {
                t.no_route += 1;
            }
        }
        sent
    }
}

impl Overlay for RonOverlay {
    fn parse_hop(&self, prefix: &str) -> Result<HopSpec, String> {
        match prefix.rsplit_once('.') {
            Some((host, option)) => match Metric::from_option(option) {
                Some(_) => {
                    let mut hop = HopSpec::host_only(host)?;
                    hop.options.push(option.into());
                    Ok(hop)
                }
                None => Err(format!(
                    "'{option}' is no RON option (mindelay, minloss, maxbw)"
                )),
            },
            None => HopSpec::host_only(prefix),
        }
    }

    fn setup(&mut self, now: Instant, hop: &HopSpec) -> TunnelRef {
        let host = hop.host.to_ascii_lowercase();
        let metric = hop
            .options
            .iter()
            .find_map(|o| Metric::from_option(o))
            .unwrap_or(Metric::Default);
        let member = self
            .members
            .iter()
            .position(|m| m.name == host)
            .filter(|&i| i != self.me);
        let r = self.new_tunnel(member, metric, 0);
        match member {
            None => self.events.push_back(OverlayEvent::SetupFailed(
                r,
                format!("{host} is not a member of overlay {}", self.suffix),
            )),
            Some(_) => {
                self.reroute(now);
                self.events.push_back(OverlayEvent::SetupDone(r));
            }
        }
        r
    }

    fn accept(&mut self, now: Instant, from: &Peer) -> TunnelRef {
        let Some((member, remote, metric)) = self.sender_of(from) else {
            return self.new_tunnel(None, Metric::Default, 0);
        };
        if let Some(&t) = self.by_remote.get(&(member, remote)) {
            if self.tunnels.contains(t as usize) {
                return t;
            }
        }
        let t = self.new_tunnel(Some(member), metric, remote);
        self.by_remote.insert((member, remote), t);
        self.reroute(now);
        t
    }

    fn reply(&mut self, now: Instant, to: &Peer, datagram: Packet) {
        let Some((member, remote, metric)) = self.sender_of(to) else {
            return;
        };
        let route = choose(metric, None, self.candidates(now, member).into_iter()).map(|(h, _)| h);
        if let Ok(d) = self.send_data(member, route, (0, remote), metric, datagram) {
            self.events.push_back(OverlayEvent::Transmit(d));
        }
    }

    fn close(&mut self, tunnel: TunnelRef) {
        let Some(t) = self.tunnels.try_remove(tunnel as usize) else {
            return;
        };
        if let Some(m) = t.member {
            if self.by_remote.get(&(m, t.remote_tunnel)) == Some(&tunnel) {
                self.by_remote.remove(&(m, t.remote_tunnel));
            }
        }
    }

    fn send(
        &mut self,
        _now: Instant,
        tunnel: TunnelRef,
        datagram: &mut Packet,
    ) -> Option<SocketAddr> {
        super::send_moved(datagram, |d| self.send_datagram(tunnel, d))
    }

    fn receive<'a>(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        payload: &'a [u8],
        pool: &mut PacketPool,
    ) -> Received<'a> {
        let from = *from;
        let p = match RonPacket::parse(payload, &self.key) {
            Ok(p) => p,
            Err(ReadError::Malformed(e)) => return Received::Malformed(e),
            Err(ReadError::BadMac) => return Received::Dropped(OverlayDrop::BadMac),
        };
        let src = match &p {
            RonPacket::Data(h, _) => h.src,
            RonPacket::Probe { src, .. }
            | RonPacket::Ack { src, .. }
            | RonPacket::Links { src, .. } => *src,
        };
        let Some(&i) = self.by_id.get(&src).filter(|&&i| i != self.me) else {
            return Received::Dropped(OverlayDrop::NotAMember);
        };
        match p {
            RonPacket::Data(h, message) if h.dst == self.members[self.me].id => {
                let tunnel = self.tunnel_of(i, &h);
                Received::Message {
                    tunnel,
                    peer: Self::token(h.src, h.src_tunnel, h.metric),
                    message,
                }
            }
            RonPacket::Data(h, _) => self.relay(from, &h, payload, pool),
            RonPacket::Probe { seq, .. } => {
                let ack = RonPacket::Ack {
                    src: self.members[self.me].id,
                    seq,
                };
                self.transmit(from, &ack);
                Received::Consumed
            }
            RonPacket::Ack { seq, .. } => {
                let misses = self.misses;
                if let Some(change) = self.members[i].link.answered(now, seq, misses) {
                    self.on_link_changes(now, &[(i, change)]);
                }
                Received::Consumed
            }
            RonPacket::Links { version, links, .. } => {
                self.on_link_state(now, i, version, &links);
                Received::Consumed
            }
        }
    }

    fn resolved(&mut self, _now: Instant, _token: u64, _result: Result<Vec<IpAddr>, String>) {
        // Members come from the config; RON never asks the driver.
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_probe {
            self.next_probe = now.saturating_add(self.probe);
            let (period, misses, me) = (self.probe, self.misses, self.members[self.me].id);
            let mut changes = Vec::new();
            for i in self.others().collect::<Vec<_>>() {
                let (seq, change) = self.members[i].link.probe(now, period, misses);
                if let Some(c) = change {
                    changes.push((i, c));
                }
                let addr = self.members[i].addr;
                self.transmit(addr, &RonPacket::Probe { src: me, seq });
            }
            self.on_link_changes(now, &changes);
        }
        if now >= self.next_links {
            self.send_link_state(now);
        }
    }

    fn poll_timeout(&self) -> Instant {
        self.next_probe.min(self.next_links)
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
        let Some(dst) = t.member else {
            return "no member".into();
        };
        let m = match t.route {
            Some(Hop::Direct) => self.members[dst].link.measure(),
            _ => None,
        };
        format!(
            "{} ({}), {}; {} packets found no path; {} relayed for others, {} control bytes sent",
            self.members[dst].name,
            t.metric.option(),
            self.hop_text(t.route, m),
            t.no_route,
            self.relayed,
            self.control_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [0x5a; 32];

    fn addr(host: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, host], 4791))
    }

    fn module(name: &str, key: Option<Key>) -> Result<RonOverlay, ConfigError> {
        let cfg = OverlayConfig {
            name: "ron".into(),
            module: "ron".into(),
            local_name: name.into(),
            port: 4791,
            keepalive_secs: 25,
            address_book: [("alice", 1), ("bob", 2), ("carol", 3)]
                .into_iter()
                .filter(|(n, _)| *n != name)
                .map(|(n, h)| (n.to_string(), addr(h)))
                .collect(),
            i3: Default::default(),
            ron: RonConfig {
                auth_key: key.map(|k| HexBytes(k.to_vec())),
                ..RonConfig::default()
            },
        };
        RonOverlay::new(0, &cfg, &Limits::default())
    }

    fn encode(p: &RonPacket<'_>, key: &Key) -> Vec<u8> {
        let mut b = Vec::new();
        p.encode(key, &mut b);
        b
    }

    fn sent(m: &mut RonOverlay) -> Vec<SocketAddr> {
        std::iter::from_fn(|| m.poll_event())
            .filter_map(|e| match e {
                OverlayEvent::Transmit(Datagram { to, .. }) => Some(to),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_members_key_is_required() {
        let e = module("alice", None).err().map(|e| e.key);
        assert_eq!(e.as_deref(), Some("overlays[0].ron.auth_key"));
    }

    #[test]
    fn only_members_probe_and_relay_and_only_once() {
        let mut carol = module("carol", Some(KEY)).unwrap();
        let mut pool = PacketPool::default();
        let now = Instant::ZERO;
        let (alice, bob) = (member_id("alice.ron"), member_id("bob.ron"));
        // A probe under another key is refused; a member's is answered.
        let forged = encode(&RonPacket::Probe { src: alice, seq: 1 }, &[1; 32]);
        assert_eq!(
            carol.receive(now, &addr(1), &forged, &mut pool),
            Received::Dropped(OverlayDrop::BadMac)
        );
        let probe = encode(&RonPacket::Probe { src: alice, seq: 1 }, &KEY);
        assert_eq!(
            carol.receive(now, &addr(1), &probe, &mut pool),
            Received::Consumed
        );
        assert_eq!(sent(&mut carol), [addr(1)]);
        // DATA from alice for bob is relayed to bob, once, and only if alice sent it.
        let h = DataHeader {
            flags: 0,
            src: alice,
            dst: bob,
            src_tunnel: 1,
            dst_tunnel: 0,
            metric: 0,
        };
        let data = encode(&RonPacket::Data(h, b"ocala"), &KEY);
        assert_eq!(
            carol.receive(now, &addr(1), &data, &mut pool),
            Received::Consumed
        );
        assert_eq!(sent(&mut carol), [addr(2)]);
        assert_eq!(
            carol.receive(now, &addr(9), &data, &mut pool),
            Received::Dropped(OverlayDrop::NotAMember),
            "from an address that is not alice's"
        );
        let again = encode(
            &RonPacket::Data(
                DataHeader {
                    flags: wire::FLAG_RELAYED,
                    ..h
                },
                b"ocala",
            ),
            &KEY,
        );
        assert_eq!(
            carol.receive(now, &addr(1), &again, &mut pool),
            Received::Dropped(OverlayDrop::RelayedTwice)
        );
        let stranger = encode(
            &RonPacket::Data(
                DataHeader {
                    src: member_id("mallory.ron"),
                    ..h
                },
                b"x",
            ),
            &KEY,
        );
        assert_eq!(
            carol.receive(now, &addr(1), &stranger, &mut pool),
            Received::Dropped(OverlayDrop::NotAMember)
        );
        assert!(sent(&mut carol).is_empty());
    }

    #[test]
    fn a_member_that_never_answers_is_reported_dead_once() {
        let mut alice = module("alice", Some(KEY)).unwrap();
        let hop = alice.parse_hop("bob.mindelay").unwrap();
        assert_eq!(hop.options, ["mindelay"]);
        assert!(alice.parse_hop("bob.fastest").is_err());
        let t = alice.setup(Instant::ZERO, &hop);
        let mut dead = Vec::new();
        let mut probes = 0;
        for step in 0..=160u64 {
            alice.handle_timeout(Instant::from_nanos(step * 250_000_000));
            while let Some(e) = alice.poll_event() {
                match e {
                    OverlayEvent::TunnelDead(r) => dead.push((r, step)),
                    OverlayEvent::Transmit(Datagram { to, .. }) if to == addr(2) => probes += 1,
                    _ => {}
                }
            }
        }
        // 25 s (keepalive_secs) without any path: dead once, at 25 s.
        assert_eq!(dead, [(t, 100)]);
        assert!(probes > 100, "bob is still probed: {probes}");
    }
}
