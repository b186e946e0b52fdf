//! Middleboxes (paper §3.3.1, §5.1): a node that looks at the messages of paths passing
//! through it and may stop some. Two ways put one on a path, and both end in
//! [`Middlebox::inspect`]:
//!
//! - **receiver-imposed**: a host inserts its triggers so that everything sent to it is
//!   stacked through the middlebox's id first (i3 `through`); the overlay module hands the
//!   messages it forwards in that role to OC-I as `Received::Transit`, and a sender cannot go
//!   around it, since the host's real trigger ids are known only to it and the middlebox;
//! - **sender-imposed**: a name hop through the middlebox node (`bob.i3_fw.i3`), which relays
//!   the path as a gateway and inspects every data message it relays.
//!
//! On an encrypted path a middlebox sees ciphertext and can judge only what is visible (the
//! message kind, its size) — unless an end point of the path certified it: then the path's
//! initiator grants it the keys (`security::grant`), OC-I opens each data message for it,
//! and it judges the IP packet. Plain paths carry the IP packet in the clear.

pub mod filter;
pub(crate) mod granted;

pub use filter::{Filter, FilterConfig, FilterStats};

use crate::time::Instant;

/// One message as a middlebox gets to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    /// A control message (setup, accept, confirm, close, ...).
    Control,
    /// A data message's payload as it travels: the IP packet on a plain path, ciphertext on
    /// a protected one.
    Data(&'a [u8]),
    /// A data message of an encrypted path whose keys this middlebox was granted: the IP
    /// packet, opened for it. The ciphertext travels on unchanged.
    Opened(&'a [u8]),
}

/// What a middlebox decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Stopped, for this reason (counted as `DropReason::Middlebox`).
    Drop(&'static str),
}

/// The middlebox interface: one OCALA message (data or control) on its way through.
pub trait Middlebox {
    fn inspect(&mut self, now: Instant, seen: Seen<'_>) -> Verdict;
}
