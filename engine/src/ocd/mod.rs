//! OC-D: the overlay-dependent sublayer (paper §4.1, Table 1), in sans-IO form.
//!
//! OC-I asks a module to `setup` a tunnel to a hop, `send` a datagram over it and `close` it;
//! the module answers through events (`SetupDone`, `SetupFailed`, `TunnelDead`) and hands
//! received datagrams back from `receive`. Adding an overlay means adding one module here and
//! one arm in [`new_module`]; nothing in `oci/` changes.

pub mod udp;

use crate::config::{ConfigError, Limits, OverlayConfig};
use crate::packet::Packet;
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

/// What a module tells OC-I.
#[derive(Debug)]
pub enum OverlayEvent {
    /// Send a UDP datagram from this overlay's socket.
    Transmit { to: SocketAddr, payload: Packet },
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
}

/// What arrived on an overlay socket, once the module removed its encapsulation.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// An OCALA message, over a tunnel the module knows (or `None` for a new sender).
    Message {
        tunnel: Option<TunnelRef>,
        message: &'a [u8],
    },
    /// Consumed by the module itself (a keepalive).
    Consumed,
    /// Not a valid datagram for this overlay.
    Malformed(crate::wire::WireError),
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
    fn accept(&mut self, now: Instant, from: SocketAddr) -> TunnelRef;
    /// Sends a datagram to an address without a tunnel: stateless replies (rejects,
    /// unknown-label closes) to a sender OC-I has no state for.
    fn reply(&mut self, to: SocketAddr, datagram: Packet);
    /// Releases a tunnel no path uses any more (OC-I keeps the reference count).
    fn close(&mut self, tunnel: TunnelRef);
    /// Sends one OCALA datagram over a tunnel. Gives the buffer back if the tunnel is gone.
    fn send(&mut self, now: Instant, tunnel: TunnelRef, datagram: Packet) -> Result<(), Packet>;
    /// Interprets a datagram from the overlay socket.
    fn receive<'a>(&mut self, now: Instant, from: SocketAddr, payload: &'a [u8]) -> Received<'a>;
    /// The answer to a `Resolve` request.
    fn resolved(&mut self, now: Instant, token: u64, result: Result<Vec<IpAddr>, String>);
    /// Timers.
    fn handle_timeout(&mut self, now: Instant);
    /// The module's next deadline.
    fn poll_timeout(&self) -> Instant;
    /// Drains the module's events.
    fn poll_event(&mut self) -> Option<OverlayEvent>;
    /// A short description of a tunnel's far end, for status output.
    fn describe(&self, tunnel: TunnelRef) -> String;
}

/// Builds the module a config entry names.
pub fn new_module(
    index: usize,
    cfg: &OverlayConfig,
    limits: &Limits,
) -> Result<Box<dyn Overlay>, ConfigError> {
    match cfg.module.as_str() {
        "udp" => Ok(Box::new(udp::UdpOverlay::new(cfg, limits.keepalive_misses))),
        other => Err(ConfigError::new(
            format!("overlays[{index}].module"),
            format!("unknown overlay module '{other}' (known: udp)"),
        )),
    }
}
