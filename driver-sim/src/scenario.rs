//! Scenario files (TOML): the nodes and their engine configs, the links between them, the
//! apps that run on them, the faults injected, and what must come out.

use ocala_engine::config::OverlayConfig;
use ocala_engine::Config;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the summary.
    pub name: String,
    /// What the scenario shows, shown in the summary.
    #[serde(default)]
    pub description: String,
    /// Default seed (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time to run.
    pub duration_ms: u64,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// NAT boxes in front of some nodes.
    #[serde(default)]
    pub nats: Vec<crate::nat::NatSpec>,
    /// Hosts that run no ocala, each on a gateway node's LAN.
    #[serde(default)]
    pub legacy_hosts: Vec<crate::legacy::LegacySpec>,
    /// Names the simulated upstream resolver knows: name → address.
    #[serde(default)]
    pub dns: BTreeMap<String, IpAddr>,
    /// Drop counts that must be reached at least, by node and drop reason text.
    #[serde(default)]
    pub expect_drops: Vec<DropExpectation>,
    /// Many alike hosts from one description each (`fleets.rs`), added to `nodes`, `links`
    /// and `apps` when the file is parsed.
    #[serde(default)]
    pub fleets: Vec<crate::fleets::FleetSpec>,
}

fn default_seed() -> u64 {
    1
}

/// One host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub name: String,
    /// Its underlay address; overlay sockets listen on it at each overlay's port.
    pub ip: IpAddr,
    /// The engine config. Without overlays the node gets one `udp` overlay named after it.
    #[serde(default)]
    pub config: Config,
    /// Fill each overlay's address book with every scenario node on the same overlay.
    #[serde(default = "yes")]
    pub auto_address_book: bool,
    /// The certificate the node is given (a valid one unless a scenario shows a failure).
    #[serde(default)]
    pub cert: crate::identity::CertKind,
    /// Names for the node's certificate; empty: `local_name.overlay` for each overlay.
    #[serde(default)]
    pub cert_names: Vec<String>,
    /// Middleboxes (node names) this node certifies to read its secure paths: it presents a
    /// chain with a delegation to each in place of its bare certificate.
    #[serde(default)]
    pub delegate: Vec<String>,
    /// The fleet it belongs to (`a1..a600`), which the summary shows as one line.
    #[serde(skip)]
    pub fleet: Option<String>,
}

fn yes() -> bool {
    true
}

/// A bidirectional link between two nodes. Nodes without a link cannot reach each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub a: String,
    pub b: String,
    #[serde(default = "default_latency")]
    pub latency_ms: f64,
    #[serde(default)]
    pub jitter_ms: f64,
    /// Probability in [0, 1] that a datagram is lost, each direction.
    #[serde(default)]
    pub loss: f64,
    /// Megabits per second each direction; 0 means unlimited.
    #[serde(default)]
    pub bandwidth_mbps: f64,
    /// Probability in [0, 1] that a datagram arrives twice (the copy 1 ms later).
    #[serde(default)]
    pub duplicate: f64,
    /// Probability in [0, 1] that a datagram arrives with one bit flipped.
    #[serde(default)]
    pub corrupt: f64,
    /// Bursty loss (Gilbert–Elliott): each direction is in a good or a bad state; `loss`
    /// applies in the good one.
    #[serde(default)]
    pub burst: Option<BurstSpec>,
    /// Probability in [0, 1] that a datagram is held back `reorder_ms`, so the ones sent
    /// after it overtake it.
    #[serde(default)]
    pub reorder: f64,
    #[serde(default = "default_reorder_ms")]
    pub reorder_ms: f64,
}

fn default_reorder_ms() -> f64 {
    10.0
}

impl LinkSpec {
    /// A link between `a` and `b` with every default.
    pub fn between(a: &str, b: &str) -> LinkSpec {
        LinkSpec {
            a: a.into(),
            b: b.into(),
            latency_ms: default_latency(),
            jitter_ms: 0.0,
            loss: 0.0,
            bandwidth_mbps: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            burst: None,
            reorder: 0.0,
            reorder_ms: default_reorder_ms(),
        }
    }
}

/// The Gilbert–Elliott two-state loss model of a link direction, stepped once per datagram.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// Probability of going from good to bad before a datagram.
    pub enter: f64,
    /// Probability of going from bad back to good (mean burst: 1/leave datagrams).
    pub leave: f64,
    /// Loss probability in the bad state.
    #[serde(default = "all")]
    pub loss: f64,
}

fn all() -> f64 {
    1.0
}

fn default_latency() -> f64 {
    5.0
}

/// An app model on a node. (Unknown keys are caught by [`AppKind`], which gets every key
/// but these.)
#[derive(Debug, Clone, Deserialize)]
pub struct AppSpec {
    /// The node it runs on, or a legacy host on a LAN its gateway serves (`[legacy_client]`);
    /// left out in a fleet's apps, which run on every member.
    #[serde(default)]
    pub node: String,
    pub at_ms: u64,
    /// The paper's figure for the same measurement, printed beside ours in the summary
    /// (`"1.42 ms (Table 3, i3, no encryption)"`).
    #[serde(default)]
    pub paper: Option<String>,
    #[serde(flatten)]
    pub kind: AppKind,
    /// On a fleet, what every member runs (`a1..a600: ping {next}.i3`), which the summary
    /// shows as one line.
    #[serde(skip)]
    pub fleet: Option<String>,
}

/// What an app does and what it must see.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AppKind {
    /// One DNS query; `expect` is the rcode (`noerror`, `nxdomain`, `servfail`, `formerr`).
    Lookup {
        name: String,
        #[serde(default = "default_qtype")]
        qtype: String,
        #[serde(default)]
        expect: Option<String>,
        /// Text the Extended DNS Error must contain.
        #[serde(default)]
        expect_ede: Option<String>,
    },
    /// Resolve `name`, then send `count` ICMP echo requests to the handle.
    Ping {
        name: String,
        #[serde(default = "default_count")]
        count: u32,
        #[serde(default = "default_interval")]
        interval_ms: u64,
        #[serde(default = "default_size")]
        size: usize,
        #[serde(default)]
        ipv6: bool,
        /// Echo replies that must arrive.
        #[serde(default)]
        expect_replies: Option<u32>,
        /// The range `[low, high]` in milliseconds the median RTT must lie in: which way
        /// the packets went (direct, or around through a relay).
        #[serde(default)]
        expect_median_rtt_ms: Option<[f64; 2]>,
        /// The longest outage (from the first unanswered request to the next answered one)
        /// must not exceed this many milliseconds.
        #[serde(default)]
        expect_max_outage_ms: Option<f64>,
    },
    /// Resolve `name`, then UDP requests to the echo service (port 7) on the far host.
    Udp {
        name: String,
        #[serde(default = "default_count")]
        count: u32,
        #[serde(default = "default_interval")]
        interval_ms: u64,
        #[serde(default = "default_size")]
        size: usize,
        #[serde(default)]
        expect_replies: Option<u32>,
        /// The range `[low, high]` in milliseconds the median RTT must lie in: which way
        /// the packets went (direct, or around through a relay).
        #[serde(default)]
        expect_median_rtt_ms: Option<[f64; 2]>,
        /// The longest outage (from the first unanswered request to the next answered one)
        /// must not exceed this many milliseconds.
        #[serde(default)]
        expect_max_outage_ms: Option<f64>,
    },
    /// Resolve `name`, then send `bytes` over one TCP connection to the far host's discard
    /// service (port 5001) as fast as TCP allows: goodput over time and in all.
    TcpBulk {
        name: String,
        #[serde(default = "default_bulk_bytes")]
        bytes: u64,
        /// The range `[low, high]` in Mbit/s the goodput (from connect to the last byte
        /// acknowledged) must lie in.
        #[serde(default)]
        expect_goodput_mbps: Option<[f64; 2]>,
    },
    /// Resolve `name`, then make `count` requests over one TCP connection to the far host's
    /// request service (port 80), one at a time and at most one per `interval_ms`, each
    /// answered with `response_bytes`: latency per request.
    TcpRequest {
        name: String,
        #[serde(default = "default_count")]
        count: u32,
        #[serde(default = "default_interval")]
        interval_ms: u64,
        #[serde(default = "default_request_bytes")]
        request_bytes: usize,
        #[serde(default = "default_response_bytes")]
        response_bytes: usize,
        /// Requests that must be answered.
        #[serde(default)]
        expect_replies: Option<u32>,
        /// The range `[low, high]` in milliseconds the median request latency must lie in.
        #[serde(default)]
        expect_median_rtt_ms: Option<[f64; 2]>,
    },
    /// Forged secure setups from spoofed addresses, as fast as they can be sent: a
    /// handshake flood against `target`.
    Flood {
        target: String,
        #[serde(default = "default_count")]
        count: u32,
        #[serde(default = "default_garbage_port")]
        port: u16,
    },
    /// A raw datagram sprayed at a node's overlay socket (bad input).
    Garbage {
        target: String,
        #[serde(default = "default_count")]
        count: u32,
        #[serde(default = "default_garbage_port")]
        port: u16,
    },
}

impl AppKind {
    /// Its `kind` in a scenario file.
    pub fn tag(&self) -> &'static str {
        match self {
            AppKind::Lookup { .. } => "lookup",
            AppKind::Ping { .. } => "ping",
            AppKind::Udp { .. } => "udp",
            AppKind::TcpBulk { .. } => "tcp_bulk",
            AppKind::TcpRequest { .. } => "tcp_request",
            AppKind::Flood { .. } => "flood",
            AppKind::Garbage { .. } => "garbage",
        }
    }

    /// The name it looks up, if it looks one up.
    pub fn name(&self) -> Option<&str> {
        match self {
            AppKind::Lookup { name, .. }
            | AppKind::Ping { name, .. }
            | AppKind::Udp { name, .. }
            | AppKind::TcpBulk { name, .. }
            | AppKind::TcpRequest { name, .. } => Some(name),
            AppKind::Garbage { .. } | AppKind::Flood { .. } => None,
        }
    }
}

fn default_qtype() -> String {
    "A".into()
}
fn default_count() -> u32 {
    5
}
fn default_interval() -> u64 {
    200
}
fn default_size() -> usize {
    56
}
fn default_bulk_bytes() -> u64 {
    1_000_000
}
fn default_request_bytes() -> usize {
    200
}
fn default_response_bytes() -> usize {
    2_000
}
fn default_garbage_port() -> u16 {
    4789
}

/// A fault at a point in time (unknown keys are caught by [`FaultKind`]).
#[derive(Debug, Clone, Deserialize)]
pub struct FaultSpec {
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// Every datagram on the link is lost until `link_up`.
    LinkDown {
        a: String,
        b: String,
    },
    LinkUp {
        a: String,
        b: String,
    },
    /// The link starts losing this share of datagrams each way (0 heals it).
    LinkLoss {
        a: String,
        b: String,
        loss: f64,
    },
    /// The link starts corrupting (one bit flipped) and duplicating these shares of
    /// datagrams (0 heals it).
    LinkCorrupt {
        a: String,
        b: String,
        #[serde(default)]
        corrupt: f64,
        #[serde(default)]
        duplicate: f64,
    },
    /// The link starts holding back this share of datagrams by `delay_ms`, so later ones
    /// overtake them (0 heals it).
    LinkReorder {
        a: String,
        b: String,
        share: f64,
        #[serde(default = "default_reorder_ms")]
        delay_ms: f64,
    },
    /// Every link between these nodes and the rest is cut until a `heal` of the same nodes
    /// (links inside each side keep working).
    Partition {
        nodes: Vec<String>,
    },
    Heal {
        nodes: Vec<String>,
    },
    /// The node crashes and starts again: a fresh engine (paths and sessions lost) that
    /// restores its handles from its checkpoint, as ocalad does from its state file.
    Restart {
        node: String,
        /// The state file is lost too: apps' addresses are forgotten.
        #[serde(default)]
        forget: bool,
    },
    /// The node moves to a new underlay address, behind a NAT or on the open network, and
    /// its engine is told the network changed. Its links stay (they model latency).
    Move {
        node: String,
        ip: IpAddr,
        #[serde(default)]
        behind: Option<String>,
    },
    /// A NAT forgets every mapping (a reboot, or a carrier rebinding): inside sockets
    /// appear on new ports.
    NatRebind {
        nat: String,
    },
}

/// A fault as the summary lists it: `link alice-bob loses 30 %`.
impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pc = |share: f64| share * 100.0;
        match self {
            FaultKind::LinkDown { a, b } => write!(f, "link {a}-{b} down"),
            FaultKind::LinkUp { a, b } => write!(f, "link {a}-{b} up"),
            FaultKind::LinkLoss { a, b, loss } => {
                write!(f, "link {a}-{b} loses {:.1} %", pc(*loss))
            }
            FaultKind::LinkCorrupt {
                a,
                b,
                corrupt,
                duplicate,
            } => write!(
                f,
                "link {a}-{b} corrupts {:.1} % and duplicates {:.1} %",
                pc(*corrupt),
                pc(*duplicate)
            ),
            FaultKind::LinkReorder {
                a,
                b,
                share,
                delay_ms,
            } => write!(
                f,
                "link {a}-{b} holds back {:.1} % by {delay_ms} ms",
                pc(*share)
            ),
            FaultKind::Partition { nodes } => write!(f, "{} cut off", nodes.join(", ")),
            FaultKind::Heal { nodes } => write!(f, "{} joined again", nodes.join(", ")),
            FaultKind::Restart { node, forget } => match forget {
                false => write!(f, "{node} restarts from its checkpoint"),
                true => write!(f, "{node} restarts with its checkpoint lost"),
            },
            FaultKind::Move { node, ip, behind } => match behind {
                Some(nat) => write!(f, "{node} moves to {ip} behind {nat}"),
                None => write!(f, "{node} moves to {ip}"),
            },
            FaultKind::NatRebind { nat } => write!(f, "NAT {nat} forgets its mappings"),
        }
    }
}

impl FaultKind {
    /// The two ends of the link a link fault is about.
    pub fn link(&self) -> Option<(&str, &str)> {
        match self {
            FaultKind::LinkDown { a, b }
            | FaultKind::LinkUp { a, b }
            | FaultKind::LinkLoss { a, b, .. }
            | FaultKind::LinkCorrupt { a, b, .. }
            | FaultKind::LinkReorder { a, b, .. } => Some((a, b)),
            _ => None,
        }
    }
}

/// At least `at_least` drops with a reason whose text contains `reason`, on `node`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropExpectation {
    pub node: String,
    pub reason: String,
    pub at_least: u64,
}

impl Scenario {
    /// Parses a scenario; errors name the file and the key.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, String> {
        let mut sc: Scenario = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
        for (i, fleet) in std::mem::take(&mut sc.fleets).iter().enumerate() {
            fleet
                .expand(i, &mut sc)
                .map_err(|e| format!("{file}: {e}"))?;
        }
        Ok(sc)
    }

    /// The engine config of a node, with the simulator's defaults filled in: a `udp`
    /// overlay, address books, and a key and certificate minted from `seed`.
    pub fn node_config(&self, index: usize, seed: u64) -> Result<Config, String> {
        let node = &self.nodes[index];
        let mut cfg = node.config.clone();
        if cfg.overlays.is_empty() {
            cfg.overlays.push(udp_overlay("udp", &node.name));
        }
        if node.auto_address_book {
            for o in cfg.overlays.iter_mut() {
                for (j, other) in self.nodes.iter().enumerate() {
                    if j == index {
                        continue;
                    }
                    let other_cfg = &self.nodes[j].config;
                    let attached = if other_cfg.overlays.is_empty() {
                        (o.name == "udp").then_some(4789)
                    } else {
                        other_cfg
                            .overlays
                            .iter()
                            .find(|x| x.name == o.name)
                            .map(|x| x.port)
                    };
                    if let Some(port) = attached {
                        let host = self
                            .local_name(j, &o.name)
                            .unwrap_or_else(|| other.name.clone());
                        o.address_book
                            .entry(host)
                            .or_insert(std::net::SocketAddr::new(other.ip, port));
                    }
                }
            }
        }
        let mut delegates = Vec::new();
        for mb in &node.delegate {
            let j = self
                .nodes
                .iter()
                .position(|n| &n.name == mb)
                .ok_or_else(|| format!("node {}: delegate: no node named '{mb}'", node.name))?;
            let name = match self.nodes[j].config.overlays.first() {
                Some(o) => format!("{}.{}", o.local_name, o.name),
                None => format!("{mb}.udp"),
            };
            delegates.push((name, crate::identity::static_public(seed, mb)));
        }
        crate::identity::provision(
            &mut cfg,
            &node.name,
            node.cert,
            &node.cert_names,
            &delegates,
            seed,
        )?;
        Ok(cfg)
    }

    fn local_name(&self, index: usize, overlay: &str) -> Option<String> {
        self.nodes[index]
            .config
            .overlays
            .iter()
            .find(|o| o.name == overlay)
            .map(|o| o.local_name.clone())
    }
}

/// A `udp` overlay entry with the defaults.
pub fn udp_overlay(name: &str, local_name: &str) -> OverlayConfig {
    OverlayConfig {
        name: name.into(),
        module: "udp".into(),
        local_name: local_name.into(),
        port: 4789,
        keepalive_secs: 25,
        address_book: BTreeMap::new(),
        i3: Default::default(),
        ron: Default::default(),
    }
}
