//! The OCALA engine: a pure, clock-injected state machine.
pub mod dns;
pub mod wire;
