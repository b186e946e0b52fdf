//! OC-D: the overlay-dependent sublayer (paper §4.1, Table 1), in sans-IO form.
//!
//! OC-I asks a module to `setup` a tunnel to a hop, `send` a datagram over it and `close` it;
//! the module answers through events (`SetupDone`, `SetupFailed`, `TunnelDead`) and hands
//! received datagrams back from `receive`. Adding an overlay means adding one module here and
//! one arm in [`new_module`]; nothing in `oci/` changes.

pub mod i3;
pub mod peer;
pub mod ron;
pub mod udp;

pub use peer::Peer;

use crate::config::{ConfigError, Limits, OverlayConfig};
use crate::packet::{Packet, PacketPool};
use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};

/// A module's own tunnel descriptor (paper: `tunnel_d`).
pub type TunnelRef = u32;

/// One hop of a path, after the module stripped its option labels from the name element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopSpec {
    /// The host part (`bob`, `cnn.com`).
    pub host: String,
    /// Module-specific options, in the order written.
    pub options: Vec<String>,
}

impl HopSpec {
    /// A hop with no options of the module's own: the whole prefix is the host name.
    pub fn host_only(prefix: &str) -> Result<HopSpec, String> {
        if prefix.is_empty() {
            return Err("empty host name".into());
        }
        Ok(HopSpec {
            host: prefix.to_string(),
            options: Vec::new(),
        })
    }
}

/// A datagram for the overlay's socket, addressed.
#[derive(Debug)]
pub struct Datagram {
    pub to: SocketAddr,
    pub payload: Packet,
}

/// [`Overlay::send`] for a module whose encoders take the buffer by value: `encode` gets it,
/// and what it hands back (the datagram, or the buffer it could not send) is put back in
/// `datagram`.
pub(crate) fn send_moved(
    datagram: &mut Packet,
    encode: impl FnOnce(Packet) -> Result<Datagram, Packet>,
) -> Option<SocketAddr> {
    let taken = std::mem::replace(datagram, Packet::from_vec(Vec::new()));
    let (to, payload) = match encode(taken) {
        Ok(d) => (Some(d.to), d.payload),
        Err(p) => (None, p),
    };
    *datagram = payload;
    to
}

/// What a module tells OC-I.
#[derive(Debug)]
pub enum OverlayEvent {
    /// Send a UDP datagram from this overlay's socket.
    Transmit(Datagram),
    /// The tunnel can carry datagrams now.
    SetupDone(TunnelRef),
    /// The tunnel could not be set up.
    SetupFailed(TunnelRef, String),
    /// The tunnel stopped answering; its paths are lost.
    TunnelDead(TunnelRef),
    /// The tunnel leads where `existing` already does: its paths move there, and the
    /// module's `tunnel` is then closed.
    SameAs {
        tunnel: TunnelRef,
        existing: TunnelRef,
    },
    /// Look up a host name's addresses through the driver's resolver.
    Resolve { token: u64, host: String },
    /// Something an operator should know about the overlay itself (a server stopped
    /// answering, a direct path came up or was lost), reported as [`crate::Event::OverlayNotice`].
    Notice(String),
}

/// What arrived on an overlay socket, once the module removed its encapsulation.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// An OCALA message, over a tunnel the module knows (or `None` for a new sender).
    Message {
        tunnel: Option<TunnelRef>,
        /// Who sent it, in the module's terms: what OC-I hands back to `accept` and `reply`.
        peer: Peer,
        message: &'a [u8],
    },
    /// Consumed by the module itself (a keepalive, or a packet it forwarded as a server).
    Consumed,
    /// A message this node is asked to pass on as a middlebox (an i3 id stack names it
    /// before the receiver's). OC-I lets the middlebox judge it and, if it passes, hands it
    /// back to [`Overlay::transit`], which sends it on.
    Transit { message: &'a [u8] },
    /// Refused by the module, for a reason of its own.
    Dropped(OverlayDrop),
    /// Not a valid datagram for this overlay.
    Malformed(crate::wire::WireError),
}

/// Why a module refused a datagram that was well-formed on the wire. Counted by OC-I like
/// every other drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverlayDrop {
    /// No live trigger matches the packet's id (i3).
    NoTrigger,
    /// A request for the server role at a node that does not serve (i3).
    NotAServer,
    /// A reply that claims to come from a server but does not (i3).
    NotFromServer,
    /// A server refused to insert one of our triggers (i3: taken by another owner, or full).
    TriggerRefused,
    /// An id stack would grow past its bound while being forwarded (i3).
    StackTooDeep,
    /// No server is live to forward to (i3).
    NoServer,
    /// A first packet to a public trigger without an id to answer at (i3).
    NoReturnId,
    /// Ids remain on the stack below ours, but this node is no middlebox (i3).
    NotAMiddlebox,
    /// A packet for a host guarded by a middlebox that did not come through it (i3).
    AroundMiddlebox,
    /// A control packet whose MAC does not verify under the members' key (RON).
    BadMac,
    /// A packet from, for or relayed by a node that is no member (RON).
    NotAMember,
    /// A packet an intermediate already relayed, sent to be relayed again (RON).
    RelayedTwice,
}

impl std::fmt::Display for OverlayDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OverlayDrop::NoTrigger => "no matching i3 trigger",
            OverlayDrop::NotAServer => "i3 server request at a non-server",
            OverlayDrop::NotFromServer => "i3 server reply from a non-server",
            OverlayDrop::TriggerRefused => "i3 trigger refused by server",
            OverlayDrop::StackTooDeep => "i3 id stack too deep",
            OverlayDrop::NoServer => "no live i3 server",
            OverlayDrop::NoReturnId => "i3 packet without return id",
            OverlayDrop::NotAMiddlebox => "i3 id stack for a middlebox",
            OverlayDrop::AroundMiddlebox => "i3 packet around the receiver's middlebox",
            OverlayDrop::BadMac => "ron control packet failed authentication",
            OverlayDrop::NotAMember => "ron packet not between members",
            OverlayDrop::RelayedTwice => "ron packet relayed twice",
        })
    }
}

/// The OC-D API every overlay module implements.
pub trait Overlay {
    /// Splits a hop's name prefix into host and this module's options; `Err` says why the
    /// prefix is not valid here.
    fn parse_hop(&self, prefix: &str) -> Result<HopSpec, String>;
    /// Starts setting up a tunnel; completion comes as `SetupDone` / `SetupFailed`.
    fn setup(&mut self, now: Instant, hop: &HopSpec) -> TunnelRef;
    /// A tunnel for a peer that contacted us first (answering a valid path setup); the same
    /// descriptor again if one to that peer exists.
    fn accept(&mut self, now: Instant, from: &Peer) -> TunnelRef;
    /// Sends a datagram to a peer without a tunnel: stateless replies (rejects, cookies,
    /// unknown-label closes) to a sender OC-I has no state for.
    fn reply(&mut self, now: Instant, to: &Peer, datagram: Packet);
    /// Releases a tunnel no path uses any more (OC-I keeps the reference count).
    fn close(&mut self, tunnel: TunnelRef);
    /// Sends one OCALA datagram over a tunnel: the module adds its encapsulation to
    /// `datagram` where it lies and says where it goes, for OC-I to transmit (a data packet
    /// then passes one queue, OC-I's outputs, not the module's events as well, and its
    /// buffer is not moved through the module). `None` if the tunnel is gone or cannot
    /// carry it yet. It queues no events: OC-I drains them after every other call (but
    /// `authenticated`), not after a send.
    fn send(
        &mut self,
        now: Instant,
        tunnel: TunnelRef,
        datagram: &mut Packet,
    ) -> Option<SocketAddr>;
    /// Interprets a datagram from the overlay socket; what it sends on comes from `pool`.
    /// The source address is borrowed from the driver's input ([`crate::Input::Datagram`]).
    /// A message it returns is a part of `payload` (OC-I delivers a plain path's packets
    /// where they lie in it); one that is not is dropped as malformed.
    fn receive<'a>(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        payload: &'a [u8],
        pool: &mut PacketPool,
    ) -> Received<'a>;
    /// The answer to a `Resolve` request.
    fn resolved(&mut self, now: Instant, token: u64, result: Result<Vec<IpAddr>, String>);
    /// Sends on the message of the last `Received::Transit`, which the middlebox passed; an
    /// error is counted as a drop. Modules that never hand up a transit keep the default.
    fn transit(
        &mut self,
        _now: Instant,
        _message: &[u8],
        _pool: &mut PacketPool,
    ) -> Result<(), OverlayDrop> {
        Err(OverlayDrop::NotAMiddlebox)
    }
    /// The host's underlay changed (an address came or went, a route moved): a module that
    /// keeps state at others (triggers, NAT bindings, direct paths) renews it now rather
    /// than at its next refresh. Modules whose peers find them by address have nothing to do.
    fn network_changed(&mut self, _now: Instant) {}
    /// Timers.
    fn handle_timeout(&mut self, now: Instant);
    /// The module's next deadline.
    fn poll_timeout(&self) -> Instant;
    /// Drains the module's events.
    fn poll_event(&mut self) -> Option<OverlayEvent>;
    /// Whether events wait: OC-I asks after each datagram it hands over, which almost
    /// never leaves one, before it drains.
    fn has_events(&self) -> bool;
    /// A short description of a tunnel's far end, for status output.
    fn describe(&self, tunnel: TunnelRef) -> String;
    /// OC-I proved that a message on `tunnel` came from its peer: a secure path's packet
    /// opened, or a packet carried a live path's label (all a plain path has). A module that
    /// judges liveness by what it hears counts this, and answers it checked itself, never
    /// a datagram merely from the peer's address, which anyone can forge. Others keep the
    /// default. Called for every data packet, so, like `send`, it queues no events.
    fn authenticated(&mut self, _now: Instant, _tunnel: TunnelRef) {}
}

/// A module's randomness: `fresh` differs on every start; `stable`, derived from the node's
/// static key when it has one, is the same across restarts, for what others must recognise
/// as still ours (the owner key of an i3 public trigger).
#[derive(Debug, Clone, Copy)]
pub struct Seeds {
    pub fresh: [u8; 32],
    pub stable: Option<[u8; 32]>,
}

/// Builds the module a config entry names.
pub fn new_module(
    index: usize,
    cfg: &OverlayConfig,
    limits: &Limits,
    seeds: Seeds,
) -> Result<Box<dyn Overlay>, ConfigError> {
    match cfg.module.as_str() {
        "udp" => Ok(Box::new(udp::UdpOverlay::new(
            cfg,
            limits.keepalive_misses,
            &seeds.fresh,
        ))),
        "i3" => Ok(Box::new(i3::I3Overlay::new(index, cfg, limits, seeds)?)),
        "ron" => Ok(Box::new(ron::RonOverlay::new(index, cfg, limits)?)),
        other => Err(ConfigError::new(
            format!("overlays[{index}].module"),
            format!("unknown overlay module '{other}' (known: udp, i3, ron)"),
        )),
    }
}
