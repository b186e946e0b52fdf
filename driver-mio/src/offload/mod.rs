//! TUN offloads done in software: the kernel hands the daemon TCP super-packets of up to
//! 64 KiB and takes them back the same way, so a bulk TCP flow costs one TUN read or write per
//! 64 KiB instead of one per packet. [`segment`] cuts what the kernel sent into packets the
//! engine can carry; [`coalesce`] joins what the engine delivers before it goes back.

pub mod coalesce;
pub mod layout;
pub mod segment;
pub mod vnet;

#[cfg(test)]
mod tests;
