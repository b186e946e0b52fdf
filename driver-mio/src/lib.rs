//! `ocala-mio`: the OCALA daemon on a real host. `ocalad` runs the engine on a TUN device
//! with mio and real time; `ocala` talks to it over a Unix control socket. Every syscall the
//! engine needs — TUN, UDP, the resolver, timers, signals, files, routes — is made here.

pub mod affinity;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod legacy_nat;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod offload;
pub mod socket;
pub mod state;
pub mod status;
pub mod trace;
pub mod tun;
pub mod upstream;
pub mod userspace;

/// The control socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/ocala/ocalad.sock";
