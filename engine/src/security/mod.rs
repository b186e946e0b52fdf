//! Security (paper §3.4).
pub mod noise;
