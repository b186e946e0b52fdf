//! The OCALA engine: a pure, clock-injected state machine (DESIGN.md §2).
//!
//! Unmodified apps look up an overlay name such as `bob.udp` or `foo.udp_gw.udp`, get back a
//! local-scope address (a *handle*), and their packets then travel over the *path* the name
//! chose — one or more *tunnels* over overlays, joined by *gateways*. The engine never touches
//! a socket, file, clock or OS randomness: drivers feed it [`Input`]s with the current time
//! and carry out the [`Output`]s it returns.

mod api;
mod codel;
pub mod config;
pub mod dns;
mod engine;
mod keyed;
mod last_lookup;
pub mod legacy;
pub mod middlebox;
pub mod ocd;
pub mod oci;
mod packet;
mod rng;
pub mod security;
mod status;
pub mod time;
mod timers;
pub mod wire;

pub use api::{
    ApiError, Command, Counters, DropReason, Event, HandleBinding, HandleStatus, InPlace, Input,
    LatencyHistogram, Output, OverlayCounters, OverlayId, PathStatus, QueryId, Status,
    TunnelStatus, UpstreamError,
};
pub use config::{Config, ConfigError};
pub use engine::{Batch, Engine};
pub use invariants::TablesChecked;
pub use packet::{Packet, PacketPool, HEADROOM};
pub use time::Instant;
pub use wire::checksum::PartialChecksum;
pub use wire::ecn::Ecn;
mod invariants;
#[cfg(test)]
mod tests;
