//! What goes into the engine and what comes out of it (DESIGN.md §2).

use crate::packet::Packet;
use crate::time::Instant;
use crate::wire::checksum::PartialChecksum;
use crate::wire::ecn::Ecn;
use crate::wire::WireError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Index of an overlay in [`crate::Config::overlays`]; also names the driver's socket for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OverlayId(pub u16);

/// Matches an [`Output::UpstreamDns`] request with its [`Input::Resolved`] answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// One thing that happened to the engine.
#[derive(Debug)]
pub enum Input<'a> {
    /// A deadline passed. Calling early is harmless.
    Timeout,
    /// An IP packet written by local apps to the TUN (DNS to the sentinel address too).
    TunPacket(&'a [u8]),
    /// A TUN packet whose transport checksum the kernel left partial (checksum offload). The
    /// engine completes it, or — on a secure path to a peer that takes them — sends it
    /// partial for the receiving kernel to trust (`Packet::partial_checksum`).
    TunPartial {
        packet: &'a [u8],
        checksum: PartialChecksum,
    },
    /// A UDP datagram that arrived on an overlay's socket.
    Datagram {
        /// Which overlay socket it arrived on.
        overlay: OverlayId,
        /// Who sent it. Borrowed: the datagrams of one receive share their sender, and the
        /// engine reads the address where the driver keeps it rather than a fresh copy per
        /// datagram (a wide read of just-written narrow stores stalls the CPU).
        from: &'a SocketAddr,
        /// The UDP payload, lent mutably: a packet a plain path carries to local apps is
        /// rewritten where it lies and delivered from there ([`Output::WriteTunInPlace`]),
        /// never copied.
        payload: &'a mut [u8],
        /// How long it waited in the socket's receive queue (the kernel's arrival stamp
        /// against the clock); zero when the driver cannot tell. A wait that stays long
        /// signals congestion to the flows inside (`limits.queue_target_us`).
        queued: Duration,
        /// The ECN field of the IP header it came in (`NotEct` when the driver cannot
        /// tell): a CE mark from a queue on the way reaches the inner packet (RFC 6040).
        ecn: Ecn,
    },
    /// The upstream resolver's answer to an [`Output::UpstreamDns`] request.
    Resolved {
        /// The request's id.
        id: QueryId,
        /// The answer message, or why there is none.
        result: Result<&'a [u8], UpstreamError>,
    },
    /// A request from the operator.
    Command(Command),
    /// The host's addresses or routes changed (the driver saw it from the OS, or a
    /// simulated host moved): overlays renew their state from the new address at once.
    NetworkChanged,
}

/// Why the upstream resolver gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// No answer within the driver's timeout.
    Timeout,
    /// No resolver is configured or reachable.
    Unreachable,
}

/// Operator requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Report paths, handles and counters as an [`Event::Status`].
    Status,
    /// Close every path to this name (as a user typed it).
    ClosePath(String),
    /// Close every path, telling each peer, before the driver exits.
    Shutdown,
}

/// A name's handle, as checkpointed by a driver so apps keep their addresses across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleBinding {
    pub name: String,
    pub v4: std::net::Ipv4Addr,
    pub v6: std::net::Ipv6Addr,
}

/// What the engine wants done.
#[derive(Debug)]
pub enum Output {
    /// Deliver an IP packet to local apps.
    WriteTun(Packet),
    /// Deliver an IP packet to local apps that lies, rewritten, in the payload of one of the
    /// batch's datagrams. Comes after the batch's [`Output::WriteTun`]s.
    WriteTunInPlace(InPlace),
    /// Send a UDP datagram from an overlay's socket.
    Transmit {
        /// Which overlay socket to send from.
        overlay: OverlayId,
        /// Destination.
        to: SocketAddr,
        /// The UDP payload.
        payload: Packet,
        /// The ECN field to send it with: a data packet's inner one, or on a gateway the
        /// one it came with (RFC 6040), so queues on the way can mark it instead of
        /// dropping it.
        ecn: Ecn,
    },
    /// Send this DNS query to the host's real resolver; answer with [`Input::Resolved`].
    UpstreamDns {
        /// Echo this in the answer.
        id: QueryId,
        /// The DNS message.
        query: Packet,
    },
    /// Something worth telling the operator.
    Event(Event),
    /// Nothing more to do until this instant, or until new input. Ends every drain.
    Timeout(Instant),
}

/// A packet for local apps left where it arrived: bytes `range` of the payload of the
/// batch's `datagram`-th [`Input::Datagram`] (counted from 0, other inputs not counted). The
/// driver keeps a batch's payloads until it has drained the batch's outputs; one still queued
/// when the next batch starts is dropped ([`DropReason::NotDrained`]), since its bytes may
/// be gone.
///
/// Only data of plain paths is left in place: what a secure path opens is written into a
/// buffer of the engine's by the decryption itself, and so is never
/// [`Packet::authentic`]. Its transport checksum is `partial` as
/// [`Packet::partial_checksum`] says of a built packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlace {
    /// Which of the batch's datagrams it lies in.
    pub datagram: usize,
    /// Where in that datagram's payload.
    pub range: std::ops::Range<usize>,
    /// Where its transport checksum is left partial, if it is.
    pub partial: Option<PartialChecksum>,
}

/// Notable happenings, for logs, the status command and the simulator's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A handle was bound to a name.
    HandleBound {
        name: String,
        v4: IpAddr,
        v6: IpAddr,
    },
    /// An idle handle was released.
    HandleReleased { name: String },
    /// A path this node started is ready; `setup` is the time from first setup message to accept.
    PathUp {
        name: String,
        label: u32,
        setup: Duration,
        /// How the path is protected end to end.
        protection: crate::config::Protection,
    },
    /// A peer opened a path to this node.
    PathAccepted { name: String, label: u32 },
    /// A gateway path was relayed through this node.
    PathRelayed { from: String, to: String },
    /// A path went away; the next packet to its handle sets it up again.
    PathDown { name: String, reason: String },
    /// A path could not be set up; apps waiting on DNS got SERVFAIL.
    SetupFailed { name: String, reason: String },
    /// The handle pool has no free address.
    PoolExhausted { name: String },
    /// Input was dropped. Counted in [`Status::drops`].
    Dropped { reason: DropReason },
    /// Answer to [`Command::Status`].
    Status(Box<Status>),
    /// News from an overlay module about the overlay itself.
    OverlayNotice { overlay: String, text: String },
}

/// A snapshot of the engine's tables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// Handles: name, IPv4, IPv6, the path's state.
    pub handles: Vec<HandleStatus>,
    /// Tunnels per overlay and how many paths use each.
    pub tunnels: Vec<TunnelStatus>,
    /// Every path end and relay half, in slot order.
    pub paths: Vec<PathStatus>,
    /// Paths relayed by this gateway.
    pub relayed: usize,
    /// Drop counters, by reason.
    pub drops: Vec<(DropReason, u64)>,
    /// Packets and bytes through the engine.
    pub counters: Counters,
    /// Datagrams and bytes per overlay, in configuration order.
    pub overlays: Vec<OverlayCounters>,
    /// What this node's middlebox saw, if it is one.
    pub middlebox: Option<crate::middlebox::FilterStats>,
}

/// One path's line in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStatus {
    /// The far end's name (for relays: where the half leads).
    pub name: String,
    /// `initiator`, `responder`, `relay (upstream)` or `relay (downstream)`.
    pub role: String,
    /// `up`, `connecting (attempt N)`, ...
    pub state: String,
    /// `encrypt`, `auth` or `plain` (relay halves see only `plain`: they hold no keys).
    pub protection: String,
    /// The data cipher of an encrypted path's keys (`aes-256-gcm`, `chacha20-poly1305`),
    /// once it is up; on a middlebox's relay half, of the keys it was granted.
    pub cipher: Option<&'static str>,
    /// The peer takes packets whose checksum was left partial: TCP and UDP that this node's
    /// kernel left partial cross the path so, without their payload summed
    /// ([`crate::PartialChecksum`]).
    pub partial_checksums: bool,
    pub label: u32,
    pub peer_label: u32,
}

/// One handle's line in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleStatus {
    pub name: String,
    pub v4: IpAddr,
    pub v6: IpAddr,
    pub path: String,
}

/// One tunnel's line in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelStatus {
    pub overlay: String,
    pub remote: String,
    pub paths: usize,
}

/// Traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub tun_in: u64,
    pub tun_out: u64,
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub relayed: u64,
    pub dns_answered: u64,
    /// Cookie replies sent to setups that had to prove their address first.
    pub cookie_replies: u64,
    /// Rekeys started: a fresh path set up to take over an aging one.
    pub rekeys: u64,
    /// Packets delivered marked Congestion Experienced that were not when sent: a receive
    /// queue here or on the way stayed long, or a router on the underlay marked the
    /// datagram (the not ECN-capable ones are dropped as `Congested`).
    pub ecn_marked: u64,
    /// Time from a path's first setup to its accept, at the initiator.
    pub setup_latency: LatencyHistogram,
}

/// A histogram of durations with fixed bucket bounds ([`LatencyHistogram::BOUNDS_MS`]), as
/// Prometheus reads them: counts per upper bound, plus the total and the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyHistogram {
    /// `buckets[i]` counts durations of at most `BOUNDS_MS[i]`, not the smaller ones.
    pub buckets: [u64; LatencyHistogram::BOUNDS_MS.len()],
    pub count: u64,
    pub sum_nanos: u64,
}

impl LatencyHistogram {
    /// Upper bounds in milliseconds; longer durations count only in `count`.
    pub const BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

    /// Records one duration.
    pub fn observe(&mut self, d: std::time::Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = Self::BOUNDS_MS.partition_point(|ms| ms.saturating_mul(1_000_000) < nanos);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }
}

/// Traffic through one overlay's socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OverlayCounters {
    /// The overlay's name (its suffix).
    pub overlay: String,
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
}

/// Why the engine dropped an input. Every drop is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// A TUN packet that is not a well-formed IP packet.
    TunMalformed(WireError),
    /// A packet to or from an address in the pool that no name holds: an app's, or a
    /// path's whose handle was released.
    NoHandle,
    /// A TUN packet not addressed to a handle or the DNS sentinel.
    NotOurs,
    /// Larger than `limits.max_packet`.
    Oversized,
    /// Larger than `limits.path_mtu` and not to be fragmented: answered with ICMP too big.
    TooBig,
    /// The path is coming up and its queue is full.
    PendingFull,
    /// A DNS message from an app that has no readable header, or is a response.
    DnsUnreadable,
    /// Too many DNS queries already wait for paths or upstream answers.
    DnsBusy,
    /// A datagram that is not a well-formed OCALA message.
    DatagramMalformed(WireError),
    /// A packet delivered in place ([`Output::WriteTunInPlace`]) that the driver had not
    /// drained when it started the next batch: its bytes may have been overwritten.
    NotDrained,
    /// A data packet or control message for a label this node does not have.
    UnknownLabel,
    /// A message for a label that belongs to another tunnel or another path.
    WrongPeer,
    /// Data arrived on a path that is not up.
    PathNotUp,
    /// The inner packet of a data message is not an IP packet of the path's family.
    InnerMalformed(WireError),
    /// A setup that has crossed too many gateways.
    HopLimit,
    /// A setup that came back to a gateway it already crossed.
    Loop,
    /// A setup asking this node to relay, but it is not a gateway.
    NotAGateway,
    /// The path table is full.
    NoResources,
    /// An upstream answer for a query that is no longer waiting.
    UnknownQuery,
    /// A datagram on an overlay the node does not run.
    UnknownOverlay,
    /// A protected data packet whose tag or MAC does not verify (tampered or forged).
    Forged,
    /// A protected data packet seen before, or older than the replay window.
    Replayed,
    /// A handshake message that does not verify, or a certificate that does not.
    AuthFailed,
    /// A setup the node's policy refuses (plain paths, names not allowed, no certificate).
    Refused,
    /// A handshake message for a path that is not waiting for one, or a plain path's answer
    /// this node did not ask for or cannot read.
    UnexpectedHandshake,
    /// A key grant that reached the path's end: the middlebox it is sealed to was not on
    /// the path (an end point certified it for paths that do not pass it).
    UnusedGrant,
    /// A setup that reuses the id of a path this node started: a reflected handshake.
    Reflected,
    /// Too many half-open secure setups; answered with a cookie instead.
    CookieRequired,
    /// A data packet that met congestion — it waited in a receive queue that has stayed
    /// long, or came marked CE — and cannot carry a mark (its sender's transport is not
    /// ECN-capable): dropped so its flow slows down.
    Congested,
    /// A path used up its nonces; it goes down and is set up again with fresh keys.
    NonceExhausted,
    /// An overlay module refused the datagram for a reason of its own.
    Overlay(crate::ocd::OverlayDrop),
    /// This node's middlebox stopped a message passing through.
    Middlebox(&'static str),
    /// A packet from a legacy host for an egress address whose path has ended.
    SessionExpired,
    /// A packet for a legacy host (a server behind this gateway, or a LAN client it
    /// serves) with no address in the packet's family.
    NoLegacyRoute,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TunMalformed(e) => write!(f, "malformed TUN packet ({e})"),
            DropReason::NoHandle => f.write_str("no handle for destination"),
            DropReason::NotOurs => f.write_str("not addressed to a handle"),
            DropReason::Oversized => f.write_str("oversized packet"),
            DropReason::TooBig => f.write_str("too big for the path (ICMP sent)"),
            DropReason::PendingFull => f.write_str("queue full while path comes up"),
            DropReason::DnsUnreadable => f.write_str("unreadable DNS message"),
            DropReason::DnsBusy => f.write_str("too many DNS queries waiting"),
            DropReason::DatagramMalformed(e) => write!(f, "malformed datagram ({e})"),
            DropReason::NotDrained => f.write_str("delivered in place, not drained in its batch"),
            DropReason::UnknownLabel => f.write_str("unknown label"),
            DropReason::WrongPeer => f.write_str("label of another peer"),
            DropReason::PathNotUp => f.write_str("data on a path not up"),
            DropReason::InnerMalformed(e) => write!(f, "malformed inner packet ({e})"),
            DropReason::HopLimit => f.write_str("hop limit exceeded"),
            DropReason::Loop => f.write_str("setup loop"),
            DropReason::NotAGateway => f.write_str("relay refused: not a gateway"),
            DropReason::NoResources => f.write_str("path table full"),
            DropReason::UnknownQuery => f.write_str("upstream answer for unknown query"),
            DropReason::UnknownOverlay => f.write_str("datagram on unknown overlay"),
            DropReason::Congested => f.write_str("receive queue congested (CoDel)"),
            DropReason::Forged => f.write_str("forged or tampered packet"),
            DropReason::Replayed => f.write_str("replayed packet"),
            DropReason::AuthFailed => f.write_str("authentication failed"),
            DropReason::Refused => f.write_str("refused by policy"),
            DropReason::UnexpectedHandshake => f.write_str("unexpected handshake message"),
            DropReason::UnusedGrant => f.write_str("key grant for a middlebox not on the path"),
            DropReason::Reflected => f.write_str("reflected handshake"),
            DropReason::CookieRequired => f.write_str("setup without cookie under load"),
            DropReason::NonceExhausted => f.write_str("nonces used up"),
            DropReason::Overlay(d) => d.fmt(f),
            DropReason::Middlebox(why) => write!(f, "middlebox: {why}"),
            DropReason::SessionExpired => f.write_str("legacy session ended"),
            DropReason::NoLegacyRoute => f.write_str("legacy host has no address of this family"),
        }
    }
}

/// A caller's mistake, as opposed to bad input (which is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiError {
    /// `now` went backwards.
    TimeWentBackwards { last: Instant, now: Instant },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::TimeWentBackwards { last, now } => {
                write!(f, "time went backwards: {now} after {last}")
            }
        }
    }
}

impl std::error::Error for ApiError {}
