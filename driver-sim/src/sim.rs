//! The simulator: a virtual clock, a `(time, seq)`-ordered event queue, seeded randomness,
//! nodes running real engines behind simulated TUNs, and links with latency, jitter, loss
//! and bandwidth. Everything that happens is hashed (XXH3-128) into a trace digest, so two runs with
//! the same seed can be compared byte for byte.

use crate::apps::{ms, App, Phase, DNS_RETRY, DNS_TRIES};
use crate::hoststack::{self, ECHO_PORT};
use crate::nat::Nat;
use crate::outcome::{
    millis, DropCount, FaultNote, Frame, LinkTraffic, NetworkTotals, NodeCount, NodeNote, Outcome,
    PathSetup,
};
use crate::resolver;
use crate::scenario::{AppKind, FaultKind, Scenario};
use blake2::{Blake2b512, Digest};
use ocala_engine::{Config, Ecn, Engine, Event, Input, Instant, Output, OverlayId, QueryId};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use xxhash_rust::xxh3::Xxh3Default;

mod checkpoints;
mod faults;
mod fleet_summary;
mod invariants;
mod stacks;
mod tcp_apps;

use fleet_summary::Groups;
pub use stacks::Stack;

/// Steps between two calls of a run's progress callback: rare enough to cost nothing.
pub const PROGRESS_STEPS: u64 = 1024;

/// Something scheduled to happen.
#[derive(Debug)]
enum Ev {
    Datagram {
        node: usize,
        overlay: OverlayId,
        from: SocketAddr,
        payload: Vec<u8>,
        /// The ECN field of its IP header, as the sender set it.
        ecn: Ecn,
    },
    Tun {
        node: usize,
        packet: Vec<u8>,
    },
    /// A packet from a gateway arriving at a legacy host on its LAN.
    Lan {
        host: usize,
        packet: Vec<u8>,
    },
    Wake {
        node: usize,
    },
    App {
        app: usize,
    },
    Fault {
        index: usize,
    },
    /// A host's TCP stack asked to run again (timers: retransmission, delayed ACKs, the
    /// next request).
    TcpPoll {
        stack: Stack,
    },
    Upstream {
        node: usize,
        id: QueryId,
        answer: Option<Vec<u8>>,
    },
}

/// An event in the queue, which pops the earliest `(at, seq)` first: by time, and in the
/// order scheduled at the same time. The event itself waits in `Sim::events` (`slot`), so
/// the heap moves 24 bytes per level rather than a whole event.
struct Queued {
    at: Instant,
    seq: u64,
    slot: usize,
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

/// Whether a node is a legacy client gateway for `ip`: its packets then go to that host as
/// they are, not through the masquerade in front of legacy servers.
fn serves_lan(cfg: &Config, ip: IpAddr) -> bool {
    cfg.legacy_client.as_ref().is_some_and(|c| c.serves(ip))
}

/// One direction of a link.
#[derive(Debug, Clone)]
struct Direction {
    busy_until: Instant,
    /// In the bad state of the link's Gilbert–Elliott model.
    bad: bool,
}

#[derive(Debug, Clone)]
struct Link {
    latency: Duration,
    jitter: Duration,
    loss: f64,
    bits_per_sec: f64,
    duplicate: f64,
    corrupt: f64,
    burst: Option<crate::scenario::BurstSpec>,
    /// Share of datagrams held back by `reorder_delay`, so later ones overtake them.
    reorder: f64,
    reorder_delay: Duration,
    up: bool,
    /// Partitions that cut this link now (`Partition` faults); it carries nothing until
    /// every one of them healed.
    cuts: u32,
    dirs: [Direction; 2],
}

/// A simulated host.
struct Node {
    name: String,
    ip: IpAddr,
    cfg: Config,
    engine: Engine,
    deadline: Instant,
    incarnation: u64,
    drops: BTreeMap<String, u64>,
    relayed_paths: u64,
    setups: Vec<(String, Duration, ocala_engine::config::Protection)>,
    failures: Vec<String>,
    downs: Vec<String>,
    notices: Vec<String>,
    /// The NAT it sits behind.
    nat: Option<usize>,
    /// Its masquerade towards the legacy hosts on its LAN (kernel state: a restart of the
    /// engine keeps it).
    masquerade: crate::legacy::Masquerade,
    /// Bytes of RON probes, answers and link state it sent.
    ron_control: u64,
    /// Its TCP/IP stack, from the first TCP packet or app on it.
    tcp: Option<crate::tcp::TcpHost>,
    /// Its handle checkpoint, as its state file would hold it (kept across restarts).
    checkpoint: checkpoints::Checkpoint,
    /// Addresses its apps learned for names, and the handle version last checked.
    learned: BTreeMap<IpAddr, invariants::Learned>,
    seen_version: u64,
    /// Its engine's tables as last checked in full.
    checked: ocala_engine::TablesChecked,
    /// The fleet it belongs to, shown as one line in the summary.
    fleet: Option<String>,
}

pub struct Sim {
    sc: Scenario,
    seed: u64,
    now: Instant,
    queue: BinaryHeap<Queued>,
    events: slab::Slab<Ev>,
    seq: u64,
    rng: ChaCha20Rng,
    nodes: Vec<Node>,
    links: BTreeMap<(usize, usize), Link>,
    apps: Vec<App>,
    trace: Xxh3Default,
    trace_events: u64,
    errors: Vec<String>,
    /// Invariants broken (`check`), the first per node, and how many checks ran.
    violations: Vec<String>,
    checks: u64,
    datagrams: u64,
    lost: u64,
    /// Datagrams links corrupted and duplicated.
    corrupted: u64,
    duplicated: u64,
    /// Datagrams links held back so later ones overtook them.
    reordered: u64,
    /// Datagrams and packets handed to an engine or a host's stack.
    deliveries: u64,
    /// Nodes by underlay address, and apps by stack and port: looked up for every datagram
    /// and reply (never iterated, so a hash map cannot reach the output).
    by_ip: HashMap<IpAddr, usize>,
    apps_by_port: HashMap<(Stack, u16), usize>,
    /// Packets hosts' stacks dropped for a bad checksum (corrupted on the wire).
    bad_checksums: u64,
    nats: Vec<Nat>,
    /// Hosts without ocala behind gateway nodes.
    legacy: Vec<LegacyHost>,
    /// Datagrams a NAT had no mapping for, or filtered.
    nat_refused: u64,
    control: Vec<String>,
    keep_control: bool,
    /// Whether to write each app's RTT and goodput over time (`Outcome::rtt_csv`).
    keep_series: bool,
    sent: BTreeMap<String, Vec<Vec<u8>>>,
    /// What the links asked for (`capture`) carried, by link; empty, and costing nothing,
    /// in runs that asked for none.
    captures: BTreeMap<(usize, usize), Vec<Frame>>,
}

/// A host without ocala, and what its stack saw and sent.
struct LegacyHost {
    name: String,
    ip: IpAddr,
    behind: usize,
    latency: Duration,
    received: u64,
    sent: u64,
    /// Its TCP/IP stack, from the first TCP packet or app on it.
    tcp: Option<crate::tcp::TcpHost>,
}

fn node_seed(seed: u64, name: &str, incarnation: u64) -> [u8; 32] {
    let mut h = Blake2b512::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    h.update(incarnation.to_le_bytes());
    let out = h.finalize();
    let mut s = [0u8; 32];
    s.copy_from_slice(&out[..32]);
    s
}

impl Sim {
    /// Builds every node's engine; errors name the node and the config key.
    pub fn new(sc: Scenario, seed: Option<u64>) -> Result<Sim, String> {
        let seed = seed.unwrap_or(sc.seed);
        let mut nodes = Vec::new();
        let mut names = BTreeMap::new();
        for (i, n) in sc.nodes.iter().enumerate() {
            if names.insert(n.name.clone(), i).is_some() {
                return Err(format!("nodes[{i}].name: '{}' appears twice", n.name));
            }
            let cfg = sc.node_config(i, seed)?;
            let engine = Engine::new(cfg.clone(), node_seed(seed, &n.name, 0), Instant::ZERO)
                .map_err(|e| format!("nodes[{i}] ({}): config.{e}", n.name))?;
            nodes.push(Node {
                name: n.name.clone(),
                ip: n.ip,
                cfg,
                engine,
                deadline: Instant::MAX,
                incarnation: 0,
                drops: BTreeMap::new(),
                relayed_paths: 0,
                setups: Vec::new(),
                failures: Vec::new(),
                downs: Vec::new(),
                notices: Vec::new(),
                ron_control: 0,
                tcp: None,
                nat: None,
                masquerade: Default::default(),
                checkpoint: Default::default(),
                learned: BTreeMap::new(),
                seen_version: 0,
                checked: Default::default(),
                fleet: n.fleet.clone(),
            });
        }
        let find = |what: &str, name: &str| {
            names
                .get(name)
                .copied()
                .ok_or_else(|| format!("{what}: no node named '{name}'"))
        };
        let mut nats = Vec::new();
        for (i, spec) in sc.nats.iter().enumerate() {
            if nodes.iter().any(|n| n.ip == spec.public_ip) {
                return Err(format!(
                    "nats[{i}].public_ip: {} is a node's address",
                    spec.public_ip
                ));
            }
            for inside in &spec.inside {
                let n = find(&format!("nats[{i}].inside"), inside)?;
                if nodes[n].nat.replace(i).is_some() {
                    return Err(format!("nats[{i}].inside: '{inside}' is behind two NATs"));
                }
            }
            nats.push(Nat::new(spec));
        }
        let mut legacy = Vec::new();
        for (i, l) in sc.legacy_hosts.iter().enumerate() {
            let behind = find(&format!("legacy_hosts[{i}].behind"), &l.behind)?;
            if legacy
                .iter()
                .any(|h: &LegacyHost| h.behind == behind && h.ip == l.ip)
            {
                return Err(format!(
                    "legacy_hosts[{i}].ip: {} is taken on {}'s LAN",
                    l.ip, l.behind
                ));
            }
            legacy.push(LegacyHost {
                name: l.name.clone(),
                ip: l.ip,
                behind,
                latency: Duration::from_secs_f64(l.latency_ms.max(0.0) / 1000.0),
                received: 0,
                sent: 0,
                tcp: None,
            });
        }
        let mut links = BTreeMap::new();
        for (i, l) in sc.links.iter().enumerate() {
            let (a, b) = (
                find(&format!("links[{i}].a"), &l.a)?,
                find(&format!("links[{i}].b"), &l.b)?,
            );
            for (key, p) in [("loss", l.loss), ("reorder", l.reorder)] {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("links[{i}].{key}: {p} is not a probability"));
                }
            }
            if let Some(b) = l.burst {
                for (key, p) in [("enter", b.enter), ("leave", b.leave), ("loss", b.loss)] {
                    if !(0.0..=1.0).contains(&p) {
                        return Err(format!("links[{i}].burst.{key}: {p} is not a probability"));
                    }
                }
            }
            let dir = Direction {
                busy_until: Instant::ZERO,
                bad: false,
            };
            links.insert(
                (a.min(b), a.max(b)),
                Link {
                    latency: Duration::from_secs_f64(l.latency_ms.max(0.0) / 1000.0),
                    jitter: Duration::from_secs_f64(l.jitter_ms.max(0.0) / 1000.0),
                    loss: l.loss,
                    bits_per_sec: l.bandwidth_mbps.max(0.0) * 1e6,
                    duplicate: l.duplicate.clamp(0.0, 1.0),
                    corrupt: l.corrupt.clamp(0.0, 1.0),
                    burst: l.burst,
                    reorder: l.reorder.clamp(0.0, 1.0),
                    reorder_delay: Duration::from_secs_f64(l.reorder_ms.max(0.0) / 1000.0),
                    up: true,
                    cuts: 0,
                    dirs: [dir.clone(), dir],
                },
            );
        }
        let mut apps = Vec::new();
        for (i, a) in sc.apps.iter().enumerate() {
            // An app on a legacy host runs behind its gateway, which must serve its LAN.
            let on_lan = legacy.iter().position(|h| h.name == a.node);
            let node = match on_lan {
                Some(h) => legacy[h].behind,
                None => find(&format!("apps[{i}].node"), &a.node)?,
            };
            if let AppKind::Garbage { target, .. } | AppKind::Flood { target, .. } = &a.kind {
                find(&format!("apps[{i}].target"), target)?;
            }
            let start = Instant::from_nanos(a.at_ms * 1_000_000);
            let mut app = App::new(node, a.kind.clone(), start, 40000 + i as u16);
            app.paper = a.paper.clone();
            app.fleet = a.fleet.clone();
            app.secret = app
                .name()
                .is_some_and(|name| invariants::asks_for_encryption(&nodes[node].cfg, name));
            if let Some(host) = on_lan {
                let h = &legacy[host];
                if !serves_lan(&nodes[node].cfg, h.ip) {
                    return Err(format!(
                        "apps[{i}].node: legacy host '{}' is on no LAN that {} serves \
                         ([legacy_client] lan)",
                        h.name, nodes[node].name
                    ));
                }
                app.lan = Some(host);
            }
            apps.push(app);
        }
        for (i, f) in sc.faults.iter().enumerate() {
            if let Some((a, b)) = f.kind.link() {
                let (x, y) = (
                    find(&format!("faults[{i}].a"), a)?,
                    find(&format!("faults[{i}].b"), b)?,
                );
                if !links.contains_key(&(x.min(y), x.max(y))) {
                    return Err(format!("faults[{i}]: no link between '{a}' and '{b}'"));
                }
                continue;
            }
            match &f.kind {
                FaultKind::Restart { node, .. } => {
                    find(&format!("faults[{i}].node"), node)?;
                }
                FaultKind::Partition { nodes: side } | FaultKind::Heal { nodes: side } => {
                    for n in side {
                        find(&format!("faults[{i}].nodes"), n)?;
                    }
                }
                FaultKind::Move { node, ip, behind } => {
                    find(&format!("faults[{i}].node"), node)?;
                    // Its own address is free to move back to.
                    let other = |n: &&Node| &n.name != node && n.ip == *ip;
                    if nodes.iter().any(|n| other(&n)) || nats.iter().any(|n| n.public_ip == *ip) {
                        return Err(format!("faults[{i}].ip: {ip} is taken"));
                    }
                    if let Some(b) = behind {
                        nat_index(&nats, b).ok_or(format!("faults[{i}].behind: no NAT '{b}'"))?;
                    }
                }
                FaultKind::NatRebind { nat } => {
                    nat_index(&nats, nat).ok_or(format!("faults[{i}].nat: no NAT '{nat}'"))?;
                }
                // Link faults were checked above.
                _ => {}
            }
        }
        let mut rng_seed = [0u8; 32];
        rng_seed.copy_from_slice(&node_seed(seed, "network", 0));
        let mut sim = Sim {
            sc,
            seed,
            now: Instant::ZERO,
            queue: BinaryHeap::new(),
            events: slab::Slab::new(),
            seq: 0,
            rng: ChaCha20Rng::from_seed(rng_seed),
            nodes,
            links,
            apps,
            trace: Xxh3Default::new(),
            trace_events: 0,
            errors: Vec::new(),
            violations: Vec::new(),
            checks: 0,
            datagrams: 0,
            lost: 0,
            corrupted: 0,
            duplicated: 0,
            reordered: 0,
            deliveries: 0,
            by_ip: HashMap::new(),
            apps_by_port: HashMap::new(),
            bad_checksums: 0,
            nats,
            legacy,
            nat_refused: 0,
            control: Vec::new(),
            keep_control: false,
            keep_series: false,
            sent: BTreeMap::new(),
            captures: BTreeMap::new(),
        };
        sim.by_ip = sim
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.ip, i))
            .collect();
        sim.apps_by_port = (0..sim.apps.len())
            .map(|app| ((sim.app_stack(app), sim.apps[app].port), app))
            .collect();
        for i in 0..sim.apps.len() {
            let at = sim.apps[i].start;
            sim.wake_app(i, at);
        }
        for i in 0..sim.sc.faults.len() {
            let at = Instant::from_nanos(sim.sc.faults[i].at_ms * 1_000_000);
            sim.push(at, Ev::Fault { index: i });
        }
        for node in 0..sim.nodes.len() {
            sim.drain(node, &[]);
        }
        Ok(sim)
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        let slot = self.events.insert(ev);
        self.queue.push(Queued {
            at,
            seq: self.seq,
            slot,
        });
    }

    fn record(&mut self, node: usize, tag: &str, bytes: &[u8]) {
        self.trace.update(&self.now.as_nanos().to_le_bytes());
        self.trace.update(&(node as u64).to_le_bytes());
        self.trace.update(tag.as_bytes());
        self.trace.update(&(bytes.len() as u64).to_le_bytes());
        self.trace.update(bytes);
        self.trace_events += 1;
        if self.keep_control && (tag == "tx" || tag == "rx") {
            self.log_control(node, tag, bytes);
        }
    }

    /// Keeps a line for every control message sent and received (`Outcome::control`): the
    /// setup handshakes the snapshot tests keep. Off unless asked, since describing every
    /// datagram costs a large run a twentieth of its time.
    pub fn keep_control_log(&mut self) {
        self.keep_control = true;
    }

    /// Writes each app's RTT and goodput over time into the outcome (`Outcome::rtt_csv`,
    /// `Outcome::goodput_csv`), for `--csv` and reports' plots. Off unless asked: a thousand
    /// apps' series cost a large run a twentieth of its time.
    pub fn keep_series(&mut self) {
        self.keep_series = true;
    }

    fn log_control(&mut self, node: usize, tag: &str, bytes: &[u8]) {
        let Some(text) = crate::control::describe(bytes) else {
            return;
        };
        let dir = if tag == "tx" { "sent" } else { "recv" };
        let line = format!(
            "{:>10} {:<6} {dir} {text}",
            self.now.to_string(),
            self.nodes[node].name
        );
        self.control.push(line);
    }

    /// Keeps every datagram the links named in `links` carry, for pcap files (`Outcome::
    /// links`); every link when `links` is empty. A link is named after its two nodes,
    /// `a-b` in either order. Only a run that calls this keeps payloads for it.
    pub fn capture(&mut self, links: &[String]) -> Result<(), String> {
        if links.is_empty() {
            self.captures = self.links.keys().map(|k| (*k, Vec::new())).collect();
        }
        for spec in links {
            let key = spec
                .match_indices('-')
                .find_map(|(i, _)| {
                    let node = |name: &str| self.nodes.iter().position(|n| n.name == name);
                    let (a, b) = (node(&spec[..i])?, node(&spec[i + 1..])?);
                    let key = (a.min(b), a.max(b));
                    self.links.contains_key(&key).then_some(key)
                })
                .ok_or_else(|| format!("link '{spec}': no link joins two nodes of these names"))?;
            self.captures.insert(key, Vec::new());
        }
        Ok(())
    }

    /// Runs until the scenario's duration and reports.
    pub fn run(self) -> Outcome {
        self.run_watched(&mut |_, _| {})
    }

    /// Like [`run`](Sim::run), and calls `progress(now, end)` every [`PROGRESS_STEPS`]
    /// steps with the simulated time and the scenario's end: for a progress bar, which
    /// sees the run but has no way to change it.
    pub fn run_watched(mut self, progress: &mut dyn FnMut(Instant, Instant)) -> Outcome {
        let end = Instant::from_nanos(self.sc.duration_ms.saturating_mul(1_000_000));
        let mut to_report = PROGRESS_STEPS;
        while let Some(next) = self.queue.peek() {
            if next.at > end {
                break;
            }
            let Some(Queued { at, slot, .. }) = self.queue.pop() else {
                break;
            };
            let Some(ev) = self.events.try_remove(slot) else {
                break;
            };
            self.now = at;
            self.step(ev);
            to_report -= 1;
            if to_report == 0 {
                to_report = PROGRESS_STEPS;
                progress(self.now, end);
            }
        }
        self.now = end;
        progress(end, end);
        self.finish()
    }

    fn input(&mut self, node: usize, input: Input<'_>) {
        self.feed(node, input);
        self.drain(node, &[]);
        self.check(node);
    }

    fn feed(&mut self, node: usize, input: Input<'_>) {
        let now = self.now;
        if let Err(e) = self.nodes[node].engine.handle_input(now, input) {
            self.errors
                .push(format!("{}: engine error: {e}", self.nodes[node].name));
        }
    }

    /// A packet a node's engine delivers to its host.
    fn write_tun(&mut self, node: usize, p: &[u8]) {
        self.deliveries += 1;
        self.persist(node);
        self.record(node, "tun-out", p);
        self.deliver_to_host(node, p);
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Datagram {
                node,
                overlay,
                from,
                payload,
                ecn,
            } => {
                self.deliveries += 1;
                self.record(node, "rx", &payload);
                let mut payload = payload;
                self.feed(
                    node,
                    Input::Datagram {
                        overlay,
                        from: &from,
                        payload: &mut payload,
                        // Hosts read their sockets at once: no receive queue builds.
                        queued: Duration::ZERO,
                        ecn,
                    },
                );
                self.drain(node, &payload);
                self.check(node);
            }
            Ev::Tun { node, packet } => {
                self.deliveries += 1;
                self.record(node, "tun-in", &packet);
                self.input(node, Input::TunPacket(&packet));
            }
            Ev::Lan { host, packet } => {
                self.deliveries += 1;
                self.lan_arrival(host, packet)
            }
            Ev::Wake { node } => {
                if self.nodes[node].deadline <= self.now {
                    self.input(node, Input::Timeout);
                }
            }
            Ev::App { app } => self.app_step(app),
            Ev::Fault { index } => self.fault(index),
            Ev::TcpPoll { stack } => self.tcp_wake(stack),
            Ev::Upstream { node, id, answer } => {
                let result = answer
                    .as_deref()
                    .ok_or(ocala_engine::UpstreamError::Timeout);
                self.input(node, Input::Resolved { id, result });
            }
        }
    }

    /// Carries out everything a node's engine asked for; what it delivered in place lies in
    /// `lent`, the payload of the datagram it was last fed.
    fn drain(&mut self, node: usize, lent: &[u8]) {
        loop {
            let out = self.nodes[node].engine.poll_output();
            match out {
                Output::Timeout(at) => {
                    // One wake-up per deadline: a deadline already queued is not queued
                    // again (a wake-up for one that moved is ignored when it comes).
                    let before = std::mem::replace(&mut self.nodes[node].deadline, at);
                    if at != Instant::MAX && at != before {
                        self.push(at.max(self.now), Ev::Wake { node });
                    }
                    return;
                }
                Output::WriteTun(p) => {
                    self.write_tun(node, &p);
                    self.nodes[node].engine.recycle(p);
                }
                Output::WriteTunInPlace(d) => match lent.get(d.range) {
                    Some(p) if d.datagram == 0 => self.write_tun(node, p),
                    _ => self.errors.push(format!(
                        "{}: delivered in place outside its datagram",
                        self.nodes[node].name
                    )),
                },
                Output::Transmit {
                    overlay,
                    to,
                    payload,
                    ecn,
                } => {
                    self.record(node, "tx", &payload);
                    let n = &mut self.nodes[node];
                    let ron = n
                        .cfg
                        .overlays
                        .get(usize::from(overlay.0))
                        .is_some_and(|o| o.module == "ron");
                    if ron && ocala_engine::ocd::ron::wire::is_control(&payload) {
                        n.ron_control += payload.len() as u64;
                    }
                    if !self.captures.is_empty() {
                        let name = self.nodes[node].name.clone();
                        self.sent.entry(name).or_default().push(payload.to_vec());
                    }
                    self.check_wire(node, &payload);
                    self.transmit(node, overlay, to, &payload, ecn);
                    self.nodes[node].engine.recycle(payload);
                }
                Output::UpstreamDns { id, query } => {
                    let answer = resolver::upstream_answer(&self.sc.dns, &query);
                    let at = self.now.saturating_add(Duration::from_millis(2));
                    self.push(at, Ev::Upstream { node, id, answer });
                }
                Output::Event(e) => self.on_event(node, e),
            }
        }
    }

    fn on_event(&mut self, node: usize, e: Event) {
        self.record(node, "event", format!("{e:?}").as_bytes());
        let n = &mut self.nodes[node];
        match e {
            Event::Dropped { reason } => *n.drops.entry(reason.to_string()).or_insert(0) += 1,
            Event::PathUp {
                name,
                setup,
                protection,
                ..
            } => n.setups.push((name, setup, protection)),
            Event::PathRelayed { .. } => n.relayed_paths += 1,
            Event::SetupFailed { name, reason } => n.failures.push(format!("{name}: {reason}")),
            Event::PathDown { name, reason } => n.downs.push(format!("{name}: {reason}")),
            Event::OverlayNotice { overlay, text } => {
                n.notices.push(format!("{} {overlay}: {text}", self.now))
            }
            _ => {}
        }
    }

    /// Sends a datagram across the link between two nodes, if there is one and it is up.
    /// True with probability `p`, from the network's seeded generator.
    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn transmit(
        &mut self,
        node: usize,
        overlay: OverlayId,
        to: SocketAddr,
        payload: &[u8],
        ecn: Ecn,
    ) {
        self.datagrams += 1;
        let from_port = self.nodes[node]
            .cfg
            .overlays
            .get(usize::from(overlay.0))
            .map_or(0, |o| o.port);
        let Some((from, dst, dst_port)) = self.route(node, from_port, to) else {
            return;
        };
        if let Some(frames) = self.captures.get_mut(&(node.min(dst), node.max(dst))) {
            // A tap at the sender's end: what is put on the link, before the link loses,
            // corrupts or duplicates it.
            frames.push(Frame {
                at: self.now,
                from,
                to,
                payload: payload.to_vec(),
            });
        }
        let Some(dst_overlay) = self.nodes[dst]
            .cfg
            .overlays
            .iter()
            .position(|o| o.port == dst_port)
        else {
            self.lost += 1;
            return;
        };
        if dst == node {
            // To its own address: the host's loopback, no link.
            let ev = Ev::Datagram {
                node,
                overlay: OverlayId(dst_overlay as u16),
                from,
                payload: payload.to_vec(),
                ecn,
            };
            let now = self.now;
            self.push(now, ev);
            return;
        }
        let key = (node.min(dst), node.max(dst));
        let dir = usize::from(node > dst);
        let draw = self.rng.next_u64();
        let jitter_draw = self.rng.next_u64();
        // Only bursty links draw for their state, so other scenarios keep their streams.
        let burst_draw = match self.links.get(&key).and_then(|l| l.burst) {
            Some(_) => self.rng.next_u64() as f64 / u64::MAX as f64,
            None => 0.0,
        };
        let Some(link) = self.links.get_mut(&key) else {
            self.lost += 1;
            return;
        };
        let loss = match link.burst {
            Some(b) => {
                let d = &mut link.dirs[dir];
                d.bad = if d.bad {
                    burst_draw >= b.leave
                } else {
                    burst_draw < b.enter
                };
                if d.bad {
                    b.loss
                } else {
                    link.loss
                }
            }
            None => link.loss,
        };
        if !link.up || link.cuts > 0 || (draw as f64 / u64::MAX as f64) < loss {
            self.lost += 1;
            return;
        }
        let wire_bytes = payload.len() + 28;
        let serialize = if link.bits_per_sec > 0.0 {
            Duration::from_secs_f64(wire_bytes as f64 * 8.0 / link.bits_per_sec)
        } else {
            Duration::ZERO
        };
        let start = link.dirs[dir].busy_until.max(self.now);
        let done = start.saturating_add(serialize);
        link.dirs[dir].busy_until = done;
        let jitter = link.jitter.mul_f64(jitter_draw as f64 / u64::MAX as f64);
        let mut at = done.saturating_add(link.latency + jitter);
        let (duplicate, corrupt) = (link.duplicate, link.corrupt);
        let (reorder, reorder_delay) = (link.reorder, link.reorder_delay);
        // Only links that reorder draw for it, so other scenarios keep their random streams.
        if reorder > 0.0 && self.chance(reorder) {
            at = at.saturating_add(reorder_delay);
            self.reordered += 1;
        }
        let mut bytes = payload.to_vec();
        // Only links that corrupt or duplicate draw for it, so other scenarios keep their
        // random streams.
        if corrupt > 0.0 && self.chance(corrupt) && !bytes.is_empty() {
            let bit = self.rng.next_u64() as usize % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            self.corrupted += 1;
        }
        if duplicate > 0.0 && self.chance(duplicate) {
            let ev = Ev::Datagram {
                node: dst,
                overlay: OverlayId(dst_overlay as u16),
                from,
                payload: bytes.clone(),
                ecn,
            };
            self.push(at.saturating_add(Duration::from_millis(1)), ev);
            self.duplicated += 1;
        }
        let ev = Ev::Datagram {
            node: dst,
            overlay: OverlayId(dst_overlay as u16),
            from,
            payload: bytes,
            ecn,
        };
        self.push(at, ev);
    }

    /// Where a datagram from `node`'s `port` to `to` leaves from and arrives: the source as
    /// the receiver sees it (translated by the sender's NAT unless both sit behind the same
    /// one), and the receiving node and port (through a NAT's mapping when `to` is a NAT's
    /// public address). `None` when it goes nowhere, counted as lost.
    fn route(
        &mut self,
        node: usize,
        port: u16,
        to: SocketAddr,
    ) -> Option<(SocketAddr, usize, u16)> {
        let now = self.now;
        let local = SocketAddr::new(self.nodes[node].ip, port);
        let inside = self.by_ip.get(&to.ip()).copied();
        let my_nat = self.nodes[node].nat;
        let from = match (my_nat, inside) {
            (Some(n), Some(d)) if self.nodes[d].nat == Some(n) => local,
            (Some(n), _) => self.nats[n].outbound(now, node, port, to),
            (None, _) => local,
        };
        let arrival = match inside {
            // A private address behind another NAT is not routable from here.
            Some(d) if self.nodes[d].nat.is_none() || self.nodes[d].nat == my_nat => {
                Some((d, to.port()))
            }
            Some(_) => None,
            None => match self.nats.iter().position(|n| n.public_ip == to.ip()) {
                Some(n) => {
                    let admitted = self.nats[n].inbound(now, from, to.port()).ok();
                    if admitted.is_none() {
                        self.nat_refused += 1;
                    }
                    admitted
                }
                None => None,
            },
        };
        match arrival {
            Some((dst, dst_port)) => Some((from, dst, dst_port)),
            None => {
                self.lost += 1;
                None
            }
        }
    }

    fn host_addrs(&self, node: usize) -> (IpAddr, IpAddr, IpAddr, IpAddr) {
        let h = &self.nodes[node].cfg.handles;
        (
            h.tun_v4.into(),
            h.tun_v6.into(),
            h.dns_v4.into(),
            h.dns_v6.into(),
        )
    }

    /// The source address of an app's packets: the node's TUN address, or a LAN client's
    /// own.
    fn app_source(&self, app: usize, v4: bool) -> IpAddr {
        let a = &self.apps[app];
        let (tun4, tun6, _, _) = self.host_addrs(a.node);
        match a.lan {
            Some(host) => self.legacy[host].ip,
            None if v4 => tun4,
            None => tun6,
        }
    }

    /// The host an app runs on, as the summary names it (`pc1 via gw` on a LAN).
    fn app_host(&self, a: &App) -> String {
        let node = &self.nodes[a.node].name;
        match a.lan.and_then(|host| self.legacy.get(host)) {
            Some(h) => format!("{} via {node}", h.name),
            None => node.clone(),
        }
    }

    fn send_query(&mut self, app: usize) {
        let (_, _, dns4, _) = self.host_addrs(self.apps[app].node);
        let src = self.app_source(app, true);
        let Some(name) = self.apps[app].name().map(str::to_string) else {
            return;
        };
        let qtype = self.apps[app].qtype();
        match resolver::query(app as u16, &name, &qtype) {
            Ok(q) => {
                let port = self.apps[app].port;
                let packet =
                    hoststack::udp(SocketAddr::new(src, port), SocketAddr::new(dns4, 53), &q);
                self.stack_send(self.app_stack(app), packet);
            }
            Err(e) => self.errors.push(format!("app {app}: {e}")),
        }
    }

    /// Schedules app `app`'s next step; an earlier wake-up still queued (a DNS retry whose
    /// answer came) is then ignored.
    fn wake_app(&mut self, app: usize, at: Instant) {
        self.apps[app].wake = Some(at);
        self.push(at, Ev::App { app });
    }

    fn app_step(&mut self, app: usize) {
        let now = self.now;
        if self.apps[app].wake != Some(now) {
            return;
        }
        match self.apps[app].phase.clone() {
            Phase::NotStarted => {
                match self.apps[app].kind.clone() {
                    AppKind::Garbage {
                        target,
                        count,
                        port,
                    } => return self.spray(&target, count, port, false),
                    AppKind::Flood {
                        target,
                        count,
                        port,
                    } => return self.spray(&target, count, port, true),
                    _ => {}
                }
                self.apps[app].phase = Phase::Resolving { tries: 1 };
                self.send_query(app);
                self.wake_app(app, now.saturating_add(DNS_RETRY));
            }
            Phase::Resolving { tries } => {
                if tries < DNS_TRIES {
                    self.apps[app].phase = Phase::Resolving { tries: tries + 1 };
                    self.send_query(app);
                    self.wake_app(app, now.saturating_add(DNS_RETRY));
                } else {
                    self.apps[app].phase = Phase::Done;
                }
            }
            Phase::Talking { target, next_seq } => {
                let (count, interval) = self.apps[app].schedule();
                if next_seq >= count {
                    self.apps[app].phase = Phase::Done;
                    return;
                }
                self.send_probe(app, target, next_seq);
                self.apps[app].phase = Phase::Talking {
                    target,
                    next_seq: next_seq + 1,
                };
                self.wake_app(app, now.saturating_add(interval));
            }
            Phase::Done => {}
        }
    }

    fn send_probe(&mut self, app: usize, target: IpAddr, seq: u32) {
        let src = self.app_source(app, target.is_ipv4());
        let a = &mut self.apps[app];
        a.on_send(self.now, seq);
        let packet = match &a.kind {
            AppKind::Ping { size, .. } => {
                let mut payload = invariants::tag(app, seq).to_vec();
                payload.resize(*size, 0x61);
                hoststack::echo(src, target, true, a.port, seq as u16, &payload)
            }
            AppKind::Udp { size, .. } => {
                let mut payload = seq.to_be_bytes().to_vec();
                payload.extend_from_slice(&invariants::tag(app, seq));
                payload.resize((*size).max(4), 0x62);
                hoststack::udp(
                    SocketAddr::new(src, a.port),
                    SocketAddr::new(target, ECHO_PORT),
                    &payload,
                )
            }
            _ => return,
        };
        self.stack_send(self.app_stack(app), packet);
        self.used(app, target);
    }

    fn on_dns_answer(&mut self, app: usize, message: &[u8]) {
        let Phase::Resolving { .. } = self.apps[app].phase else {
            return;
        };
        let Some(answer) = resolver::read_answer(message) else {
            self.errors
                .push(format!("app {app}: unreadable DNS answer"));
            return;
        };
        self.check_answer(app, &answer);
        let now = self.now;
        let a = &mut self.apps[app];
        a.lookup_time = Some(now.since(a.start));
        let target = answer.addrs.first().copied();
        a.answer = Some(answer);
        match (&a.kind, target) {
            (AppKind::Ping { .. } | AppKind::Udp { .. }, Some(target)) => {
                a.phase = Phase::Talking {
                    target,
                    next_seq: 0,
                };
                self.wake_app(app, now);
            }
            (AppKind::TcpBulk { .. } | AppKind::TcpRequest { .. }, Some(target)) => {
                a.phase = Phase::Talking {
                    target,
                    next_seq: 0,
                };
                self.tcp_connect(app, target);
            }
            _ => a.phase = Phase::Done,
        }
    }

    /// Garbage (`setups` false) or forged secure setups (`setups` true) from spoofed sources.
    fn spray(&mut self, target: &str, count: u32, port: u16, setups: bool) {
        let Some(node) = self.nodes.iter().position(|n| n.name == target) else {
            return;
        };
        let Some(overlay) = self.nodes[node]
            .cfg
            .overlays
            .iter()
            .position(|o| o.port == port)
        else {
            return;
        };
        for i in 0..count {
            let payload = if setups {
                self.forged_setup()
            } else {
                let len = (self.rng.next_u64() % 64) as usize;
                let mut payload = vec![0u8; len];
                self.rng.fill_bytes(&mut payload);
                // Some sprays look like OCALA messages with random labels, to reach deeper parsers.
                if i % 2 == 0 && !payload.is_empty() {
                    payload[0] = 0x10 | ((i / 2 % 6) as u8 + 1);
                }
                payload
            };
            let from = SocketAddr::new(
                IpAddr::from([203, 0, (113 + i / 250) as u8, (i % 250) as u8 + 1]),
                9999,
            );
            let now = self.now;
            self.push(
                now,
                Ev::Datagram {
                    node,
                    overlay: OverlayId(overlay as u16),
                    from,
                    payload,
                    ecn: Ecn::NotEct,
                },
            );
        }
    }

    /// A well-formed encrypt setup with a random ephemeral key: costs the responder a
    /// Diffie-Hellman and half-open state unless cookies stop it.
    fn forged_setup(&mut self) -> Vec<u8> {
        use ocala_engine::wire::message::{Message, Setup};
        let mut key = [0u8; 32];
        self.rng.fill_bytes(&mut key);
        let msg = Message::Setup(Setup {
            sender_label: self.rng.next_u64() as u32,
            path_id: self.rng.next_u64(),
            hop_count: 0,
            options: 1,
            return_name: "attacker.udp",
            remaining: "",
            handshake: &key,
            sources: Default::default(),
        });
        let mut out = Vec::new();
        let _ = msg.encode(&mut out);
        out
    }

    fn finish(mut self) -> Outcome {
        let mut s = String::new();
        let mut failures = std::mem::take(&mut self.errors);
        failures.extend(self.violations.iter().cloned());
        s.push_str(&format!("scenario {} (seed {})\n", self.sc.name, self.seed));
        for line in self.sc.description.trim().lines() {
            s.push_str(&format!("  {}\n", line.trim()));
        }
        s.push_str("nodes:\n");
        let mut fleets = Groups::default();
        for n in &self.nodes {
            let overlays: Vec<String> = n
                .cfg
                .overlays
                .iter()
                .map(|o| format!("{}.{}", o.local_name, o.name))
                .collect();
            let role = if n.cfg.gateway { ", gateway" } else { "" };
            match &n.fleet {
                Some(label) => fleets.add(label, n),
                None => s.push_str(&format!(
                    "  {:<8} {:<15} {}{role}\n",
                    n.name,
                    n.ip.to_string(),
                    overlays.join(" ")
                )),
            }
        }
        for (label, members) in fleets.iter() {
            let overlays: Vec<&str> = members[0]
                .cfg
                .overlays
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            s.push_str(&format!(
                "  {label}: {} hosts from {}, on {}\n",
                members.len(),
                members[0].ip,
                overlays.join(" ")
            ));
        }
        s.push_str("apps:\n");
        let mut apps = Vec::new();
        let mut fleet_apps = Groups::default();
        for (i, a) in self.apps.iter().enumerate() {
            let host = self.app_host(a);
            let (line, fails) = a.report(&host);
            match &a.fleet {
                Some(label) => fleet_apps.add(label, (a, !fails.is_empty())),
                None => s.push_str(&format!("  {line}\n")),
            }
            failures.extend(fails);
            apps.push(a.result(i, &host));
        }
        for (label, members) in fleet_apps.iter() {
            s.push_str(&format!("  {}\n", fleet_summary::apps_line(label, members)));
        }
        if self.apps.iter().any(|a| a.paper.is_some()) {
            s.push_str("beside the paper:\n");
            for a in self.apps.iter().filter(|a| a.paper.is_some()) {
                let ours = a.headline().unwrap_or_else(|| "none".into());
                s.push_str(&format!(
                    "  {} {}: ours {ours} | paper {}\n",
                    self.app_host(a),
                    a.name().unwrap_or("-"),
                    a.paper.as_deref().unwrap_or_default()
                ));
            }
        }
        s.push_str("paths:\n");
        let (mut paths, mut relayed, mut setup_failures, mut paths_down) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let note = |node: &Node, text: &String| NodeNote {
            node: node.name.clone(),
            text: text.clone(),
        };
        let mut fleet_paths = Groups::default();
        for n in &self.nodes {
            for (name, setup, protection) in &n.setups {
                let protection = format!("{protection:?}").to_lowercase();
                match &n.fleet {
                    Some(label) => fleet_paths.add(label, (*setup, protection.clone())),
                    None => s.push_str(&format!(
                        "  {} -> {name}: up ({protection}), setup took {}\n",
                        n.name,
                        ms(*setup)
                    )),
                }
                paths.push(PathSetup {
                    node: n.name.clone(),
                    name: name.clone(),
                    protection,
                    setup_ms: millis(*setup),
                });
            }
            if n.relayed_paths > 0 {
                s.push_str(&format!(
                    "  {}: relayed {} path(s) as a gateway\n",
                    n.name, n.relayed_paths
                ));
                relayed.push(NodeCount {
                    node: n.name.clone(),
                    count: n.relayed_paths,
                });
            }
            for f in &n.failures {
                s.push_str(&format!("  {}: setup failed: {f}\n", n.name));
                setup_failures.push(note(n, f));
            }
            for d in &n.downs {
                s.push_str(&format!("  {}: path down: {d}\n", n.name));
                paths_down.push(note(n, d));
            }
        }
        for (label, setups) in fleet_paths.iter() {
            s.push_str(&format!("  {}\n", fleet_summary::paths_line(label, setups)));
        }
        let mut faults: Vec<FaultNote> = self
            .sc
            .faults
            .iter()
            .map(|f| FaultNote {
                at_ms: f.at_ms,
                text: f.kind.to_string(),
            })
            .collect();
        faults.sort_by_key(|f| f.at_ms);
        if !faults.is_empty() {
            s.push_str("faults injected:\n");
            for f in &faults {
                let at = Instant::from_nanos(f.at_ms.saturating_mul(1_000_000));
                s.push_str(&format!("  {at}: {}\n", f.text));
            }
        }
        if self.nodes.iter().any(|n| !n.notices.is_empty()) {
            s.push_str("overlay notices:\n");
            for n in &self.nodes {
                for t in &n.notices {
                    s.push_str(&format!("  {}: {t}\n", n.name));
                }
            }
        }
        for h in &self.legacy {
            s.push_str(&format!(
                "legacy host {} ({} behind {}, no ocala): {} packets in, {} out\n",
                h.name, h.ip, self.nodes[h.behind].name, h.received, h.sent
            ));
        }
        let middleboxes: Vec<NodeNote> = self
            .nodes
            .iter()
            .filter_map(|n| Some(note(n, &n.engine.status().middlebox?.to_string())))
            .collect();
        for m in &middleboxes {
            s.push_str(&format!("middlebox {}: {}\n", m.node, m.text));
        }
        let secs = (self.sc.duration_ms as f64 / 1000.0).max(0.001);
        let overhead: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.ron_control > 0)
            .map(|n| format!("{} {:.0} B/s", n.name, n.ron_control as f64 / secs))
            .collect();
        if !overhead.is_empty() {
            s.push_str(&format!(
                "ron probe overhead (probes, answers, link state sent): {}\n",
                overhead.join(", ")
            ));
        }
        s.push_str("drops:\n");
        let drops: Vec<DropCount> = self
            .nodes
            .iter()
            .flat_map(|n| {
                n.drops.iter().map(|(reason, count)| DropCount {
                    node: n.name.clone(),
                    reason: reason.clone(),
                    count: *count,
                })
            })
            .collect();
        for d in &drops {
            s.push_str(&format!("  {}: {} x {}\n", d.node, d.count, d.reason));
        }
        if drops.is_empty() {
            s.push_str("  none\n");
        }
        for e in &self.sc.expect_drops {
            let got: u64 = drops
                .iter()
                .filter(|d| d.node == e.node && d.reason.contains(&e.reason))
                .map(|d| d.count)
                .sum();
            if got < e.at_least {
                failures.push(format!(
                    "{}: expected at least {} drops '{}', got {got}",
                    e.node, e.at_least, e.reason
                ));
            }
        }
        let network = NetworkTotals {
            datagrams: self.datagrams,
            lost: self.lost,
            nat_refused: self.nat_refused,
            corrupted: self.corrupted,
            duplicated: self.duplicated,
            reordered: self.reordered,
            deliveries: self.deliveries,
            bad_checksums: self.bad_checksums,
            trace_events: self.trace_events,
        };
        s.push_str(&format!(
            "network: {} datagrams sent, {} lost ({} refused by NATs); {} deliveries to engines and hosts; {} trace events\n",
            network.datagrams, network.lost, network.nat_refused, network.deliveries, network.trace_events
        ));
        if network.corrupted + network.duplicated > 0 {
            s.push_str(&format!(
                "links corrupted {} and duplicated {} datagrams; hosts dropped {} packets with bad checksums\n",
                network.corrupted, network.duplicated, network.bad_checksums
            ));
        }
        if network.reordered > 0 {
            s.push_str(&format!(
                "links held back {} datagrams for later ones to overtake\n",
                network.reordered
            ));
        }
        if self.violations.is_empty() {
            s.push_str(&format!(
                "invariants: held after every one of {} steps\n",
                self.checks
            ));
        }
        if failures.is_empty() {
            s.push_str("expectations: all met\n");
        } else {
            s.push_str("expectations FAILED:\n");
            for f in &failures {
                s.push_str(&format!("  {f}\n"));
            }
        }
        let csv = |keep: fn(&AppKind) -> bool, body: fn(&App) -> String| -> Vec<(String, String)> {
            self.apps
                .iter()
                .enumerate()
                .filter(|(_, a)| self.keep_series && keep(&a.kind))
                .map(|(i, a)| {
                    let node = self.app_host(a).replace(" via ", "-via-");
                    let name = a.name().unwrap_or("app");
                    (format!("app{i}-{node}-{name}.csv"), body(a))
                })
                .collect()
        };
        let rtt_csv = csv(
            |k| {
                matches!(
                    k,
                    AppKind::Ping { .. } | AppKind::Udp { .. } | AppKind::TcpRequest { .. }
                )
            },
            App::rtt_csv,
        );
        let goodput_csv = csv(|k| matches!(k, AppKind::TcpBulk { .. }), App::goodput_csv);
        let digest = format!("{:032x}", self.trace.digest128());
        let mut links: Vec<LinkTraffic> = std::mem::take(&mut self.captures)
            .into_iter()
            .map(|((a, b), frames)| {
                let mut names = [&self.nodes[a].name, &self.nodes[b].name];
                names.sort();
                LinkTraffic {
                    name: format!("{}-{}", names[0], names[1]),
                    frames,
                }
            })
            .collect();
        links.sort_by(|x, y| x.name.cmp(&y.name));
        Outcome {
            summary: s,
            failures,
            violations: self.violations,
            digest,
            control: self.control,
            sent: self.sent,
            rtt_csv,
            goodput_csv,
            scenario: self.sc.name.clone(),
            description: self.sc.description.trim().to_string(),
            seed: self.seed,
            duration_ms: self.sc.duration_ms,
            apps,
            paths,
            relayed,
            setup_failures,
            paths_down,
            drops,
            middleboxes,
            faults,
            network,
            checks: self.checks,
            links,
        }
    }
}

fn nat_index(nats: &[Nat], name: &str) -> Option<usize> {
    nats.iter().position(|n| n.name == name)
}
