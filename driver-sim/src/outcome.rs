//! What a run produced, as plain data: the text summary and digest every run prints, and the
//! same results as records, so that `--report` (`crate::report`) and tests read them without
//! parsing the text.

use ocala_engine::Instant;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What the run produced.
pub struct Outcome {
    pub summary: String,
    pub failures: Vec<String>,
    /// Invariants broken (also among `failures`): what must hold whatever the faults.
    pub violations: Vec<String>,
    pub digest: String,
    /// Every control message (setup, accept, reject, close) each node sent and received, in
    /// order: the setup handshakes the snapshot tests keep. Empty unless the run was asked
    /// for it (`RunOptions::control_log`).
    pub control: Vec<String>,
    /// Every datagram each node sent, by node name: what a gateway could see. Kept only in
    /// runs that capture links (`RunOptions::capture`).
    pub sent: BTreeMap<String, Vec<Vec<u8>>>,
    /// RTT over time of each ping and UDP app (`seq,sent_ms,rtt_ms`), by a file name made of
    /// the app's index, node and name (`app0-alice-bob.ron.csv`). Empty unless the run was
    /// asked for it (`RunOptions::series`).
    pub rtt_csv: Vec<(String, String)>,
    /// Goodput over time of each TCP bulk app (`t_ms,mbps`), named like `rtt_csv`, and kept
    /// likewise.
    pub goodput_csv: Vec<(String, String)>,
    /// The scenario's name and description, the seed the run used, and its simulated length.
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub duration_ms: u64,
    /// Each app's results, in the scenario's order.
    pub apps: Vec<AppResult>,
    /// Paths that came up, by the node that set them up, in the order they did.
    pub paths: Vec<PathSetup>,
    /// Paths each gateway relayed.
    pub relayed: Vec<NodeCount>,
    /// Setups that failed and paths that went down, with the reason.
    pub setup_failures: Vec<NodeNote>,
    pub paths_down: Vec<NodeNote>,
    /// Every input an engine refused, by node and reason.
    pub drops: Vec<DropCount>,
    /// What each middlebox saw (its statistics line).
    pub middleboxes: Vec<NodeNote>,
    /// Faults injected, in time order.
    pub faults: Vec<FaultNote>,
    pub network: NetworkTotals,
    /// How many invariant checks ran (`violations` has the broken ones).
    pub checks: u64,
    /// The traffic of the links the run was asked to capture (`Sim::capture`), by link
    /// name; empty otherwise.
    pub links: Vec<LinkTraffic>,
}

/// One app: what it asked for and what it saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppResult {
    /// Its index among the scenario's apps (the `appN` of the CSV file names).
    pub index: usize,
    /// The host it runs on as the summary names it (`pc1 via gw` on a LAN).
    pub host: String,
    /// `lookup`, `ping`, `udp`, `tcp_bulk`, `tcp_request`, `garbage` or `flood`, as in the
    /// scenario file.
    pub kind: String,
    /// The name it looks up, or the node it sprays.
    pub name: String,
    /// The DNS answer it got; `None` when none came (or it asks none).
    pub lookup: Option<Lookup>,
    /// Requests sent and answered (pings, UDP echoes, TCP requests).
    pub sent: u32,
    pub received: u32,
    pub rtt_ms: Option<RttStats>,
    /// A TCP bulk transfer's bytes acknowledged and goodput, from connect to the last byte.
    pub acked_bytes: u64,
    pub goodput_mbps: Option<f64>,
    /// Runs of `apps::OUTAGE_RUN` or more requests lost in a row.
    pub outages: Vec<Outage>,
}

/// A DNS answer as an app saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lookup {
    pub rcode: String,
    pub addresses: Vec<String>,
    pub names: Vec<String>,
    pub ede: Option<Ede>,
    /// From the first query to the answer (the whole path's setup, for an overlay name).
    pub time_ms: Option<f64>,
}

/// An Extended DNS Error (RFC 8914).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ede {
    pub code: u16,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttStats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Requests lost in a row, and the time from the first of them to the next answered one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outage {
    pub lost: u32,
    pub ms: f64,
}

/// A path that came up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathSetup {
    pub node: String,
    pub name: String,
    /// `plain`, `auth` or `encrypt`.
    pub protection: String,
    pub setup_ms: f64,
}

/// A fault the run injected, scripted or drawn by the seed: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultNote {
    pub at_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeNote {
    pub node: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCount {
    pub node: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropCount {
    pub node: String,
    pub reason: String,
    pub count: u64,
}

/// The network's counters over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NetworkTotals {
    pub datagrams: u64,
    pub lost: u64,
    pub nat_refused: u64,
    pub corrupted: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Datagrams and packets the simulator handed to an engine or a host's stack: the unit
    /// of its speed (`ocala-sim run` prints them per second of wall-clock time).
    pub deliveries: u64,
    pub bad_checksums: u64,
    pub trace_events: u64,
}

/// What one link carried: every datagram its two ends sent onto it, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkTraffic {
    /// The two nodes' names in sorted order, joined by `-` (`alice-gw`).
    pub name: String,
    pub frames: Vec<Frame>,
}

/// One datagram as a tap at the sender's end of a link sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// When the sender put it on the link (simulated time).
    pub at: Instant,
    /// The source as the link carries it (after the sender's NAT), and the destination the
    /// sender addressed.
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

/// Milliseconds as a number for the records (exact to the nanosecond, unlike the summary's
/// one decimal).
pub fn millis(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}
