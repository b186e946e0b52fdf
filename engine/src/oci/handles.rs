//! OC handles (paper §3.1.1): local-scope addresses given to apps for overlay names.
//!
//! A handle is sticky per name: the same name gets the same addresses for as long as it is
//! in use, so apps that cache an address keep working across path loss and re-setup. It is
//! released only after `idle_timeout` without DNS queries or packets, and its addresses go to
//! the back of a free queue, so a just-released address is the last one handed out again.

use crate::config::{ConfigError, HandleConfig, Prefix, Protection};
use crate::keyed::{Keyed, KeyedMap};
use crate::last_lookup::LastLookup;
use crate::time::Instant;
use crate::wire::message::Sources;
use slab::Slab;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name a handle is bound under: the hops, and the protection only when it differs from
/// the node's default. So `bob.udp` and `bob.udp_encrypt.oci` share one handle and one path
/// when encrypt is the default, and a responder keeps a plain path from alice apart from an
/// encrypted one — each gets its own handle, so replies leave on the path they belong to.
pub(crate) fn handle_name(hops: &str, protection: Protection, default: Protection) -> String {
    let option = match protection {
        _ if protection == default => return hops.to_string(),
        Protection::Encrypt => "encrypt.oci",
        Protection::Auth => "auth.oci",
        Protection::Plain => "plain.oci",
    };
    format!("{hops}_{option}")
}

/// A handle's bookkeeping.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) gen: u32,
    /// Canonical overlay name (after rules), as paths are set up for it.
    pub(crate) name: String,
    pub(crate) v4: Ipv4Addr,
    pub(crate) v6: Ipv6Addr,
    /// Last DNS query or packet for this name.
    pub(crate) last_used: Instant,
    /// The path carrying its packets, if any.
    pub(crate) path: Option<usize>,
    /// Whether an app has learned this address (a DNS answer, or a packet from it). Until
    /// then a failed setup releases the handle, so lookups of names that never work cannot
    /// drain the pool.
    pub(crate) handed_out: bool,
    /// On a legacy server gateway, an egress handle: the server its path's packets go to.
    pub(crate) legacy: Option<crate::legacy::LegacyEnd>,
    /// On a legacy client gateway, the path of each LAN client using this name: the
    /// address is shared, each client's traffic has a path of its own.
    pub(crate) clients: BTreeMap<IpAddr, usize>,
    /// `Handles::version` once this handle was bound, so a driver can save just the
    /// bindings made since its last checkpoint.
    pub(crate) bound_at: u64,
}

impl Handle {
    /// The path carrying packets of local apps (`None`) or of a LAN client.
    pub(crate) fn path_of(&self, client: Option<IpAddr>) -> Option<usize> {
        match client {
            None => self.path,
            Some(c) => self.clients.get(&c).copied(),
        }
    }

    /// Sets (or, with `None`, forgets) the path of local apps or of a LAN client.
    pub(crate) fn set_path_of(&mut self, client: Option<IpAddr>, path: Option<usize>) {
        match (client, path) {
            (None, p) => self.path = p,
            (Some(c), Some(p)) => {
                self.clients.insert(c, p);
            }
            (Some(c), None) => {
                self.clients.remove(&c);
            }
        }
    }

    /// The handle's address in the family of `like`.
    pub(crate) fn addr_like(&self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(self.v4),
            IpAddr::V6(_) => IpAddr::V6(self.v6),
        }
    }
}

/// Hands out addresses of one prefix: never-used ones first, then released ones oldest first.
#[derive(Debug)]
struct AddressPool {
    prefix: Prefix,
    /// Offset of the next never-used address.
    cursor: u128,
    size: u128,
    released: VecDeque<u128>,
    reserved: BTreeSet<u128>,
}

impl AddressPool {
    fn new(prefix: Prefix, reserved: &[IpAddr]) -> AddressPool {
        let bits = if prefix.addr.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(bits - prefix.len);
        let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
        let base = to_u128(prefix.addr);
        let mut set: BTreeSet<u128> = reserved
            .iter()
            .filter(|ip| prefix.contains(**ip))
            .map(|ip| to_u128(*ip) - base)
            .collect();
        // The network address, and for IPv4 the broadcast address, confuse some stacks.
        set.insert(0);
        if prefix.addr.is_ipv4() {
            set.insert(size - 1);
        }
        AddressPool {
            prefix,
            cursor: 0,
            size,
            released: VecDeque::new(),
            reserved: set,
        }
    }

    fn take(&mut self) -> Option<IpAddr> {
        while self.cursor < self.size {
            let offset = self.cursor;
            self.cursor += 1;
            if !self.reserved.contains(&offset) {
                return Some(from_u128(
                    self.prefix.addr,
                    to_u128(self.prefix.addr) + offset,
                ));
            }
        }
        let offset = self.released.pop_front()?;
        Some(from_u128(
            self.prefix.addr,
            to_u128(self.prefix.addr) + offset,
        ))
    }

    /// `preferred` if it is free, else the next free address.
    fn take_preferring(&mut self, preferred: Option<IpAddr>) -> Option<IpAddr> {
        match preferred {
            Some(ip) if self.take_specific(ip) => Some(ip),
            _ => self.take(),
        }
    }

    /// Takes one particular address (restoring a checkpoint, or negotiated), if it is free.
    fn take_specific(&mut self, ip: IpAddr) -> bool {
        if !self.prefix.contains(ip) {
            return false;
        }
        let offset = to_u128(ip) - to_u128(self.prefix.addr);
        // Not handed out yet: mark it so the cursor steps over it. (Once marked and later
        // released, it waits in `released` like any other.)
        if offset >= self.cursor && self.reserved.insert(offset) {
            return true;
        }
        match self.released.iter().position(|o| *o == offset) {
            Some(i) => self.released.remove(i).is_some(),
            None => false,
        }
    }

    fn give_back(&mut self, ip: IpAddr) {
        if self.prefix.contains(ip) {
            self.released
                .push_back(to_u128(ip) - to_u128(self.prefix.addr));
        }
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(like: IpAddr, v: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// All handles of a node.
#[derive(Debug)]
pub(crate) struct Handles {
    pub(crate) slab: Slab<Handle>,
    by_name: BTreeMap<String, usize>,
    /// Lookups only (never iterated), so a hash map keeps the data path fast.
    by_addr: KeyedMap<IpAddr, usize>,
    /// The address looked up last and its handle. Forgotten when a handle is released (a new
    /// one only takes free addresses, never one remembered here).
    last: LastLookup<IpAddr, usize>,
    v4: AddressPool,
    v6: AddressPool,
    max: usize,
    next_gen: u32,
    /// Bumped whenever a name is bound or released, so a driver checkpoints only on change.
    version: u64,
    /// Bumped by `touch`.
    touched: u64,
}

impl Handles {
    pub(crate) fn new(
        cfg: &HandleConfig,
        max: usize,
        seed: &[u8; 32],
    ) -> Result<Handles, ConfigError> {
        if !cfg.pool_v4.addr.is_ipv4() || cfg.pool_v4.len > 30 {
            return Err(ConfigError::new(
                "handles.pool_v4",
                format!(
                    "'{}' must be an IPv4 prefix of length 30 or shorter",
                    cfg.pool_v4
                ),
            ));
        }
        if !cfg.pool_v6.addr.is_ipv6() || cfg.pool_v6.len > 126 {
            return Err(ConfigError::new(
                "handles.pool_v6",
                format!(
                    "'{}' must be an IPv6 prefix of length 126 or shorter",
                    cfg.pool_v6
                ),
            ));
        }
        let reserved = [
            IpAddr::V4(cfg.tun_v4),
            IpAddr::V4(cfg.dns_v4),
            IpAddr::V6(cfg.tun_v6),
            IpAddr::V6(cfg.dns_v6),
        ];
        Ok(Handles {
            slab: Slab::new(),
            by_name: BTreeMap::new(),
            by_addr: KeyedMap::with_hasher(Keyed::derive(seed, "handles by address")),
            last: LastLookup::default(),
            v4: AddressPool::new(cfg.pool_v4, &reserved),
            v6: AddressPool::new(cfg.pool_v6, &reserved),
            max,
            next_gen: 0,
            version: 0,
            touched: 0,
        })
    }

    /// Whether `ip` lies in one of the pools (a packet there with no handle is dropped,
    /// not sent anywhere else).
    pub(crate) fn in_pool(&self, ip: IpAddr) -> bool {
        self.v4.prefix.contains(ip) || self.v6.prefix.contains(ip)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// [`Self::by_addr`] for an IPv4 address, compared with the last one where it stands:
    /// an `IpAddr` built to be passed would be copied wide right after its narrow stores,
    /// and the CPU waits for such stores to retire (a sixth of an app packet's time).
    pub(crate) fn by_v4(&self, ip: Ipv4Addr) -> Option<usize> {
        match self.last.peek() {
            Some((IpAddr::V4(last), key)) if last == ip => Some(key),
            _ => self.by_addr(IpAddr::V4(ip)),
        }
    }

    pub(crate) fn by_addr(&self, ip: IpAddr) -> Option<usize> {
        self.last.get(ip, || self.by_addr.get(&ip).copied())
    }

    pub(crate) fn get(&self, key: usize) -> Option<&Handle> {
        self.slab.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut Handle> {
        self.slab.get_mut(key)
    }

    /// The handle for `name`, bound now if it has none — at the `preferred` addresses where
    /// they are free, else at the pools' next. `None` when a pool or the table is exhausted.
    /// The bool says whether the handle is new.
    pub(crate) fn bind(
        &mut self,
        name: &str,
        now: Instant,
        preferred: Sources,
    ) -> Option<(usize, bool)> {
        if let Some(key) = self.by_name(name) {
            if let Some(h) = self.slab.get_mut(key) {
                h.last_used = now;
            }
            return Some((key, false));
        }
        if self.slab.len() >= self.max {
            return None;
        }
        let v4 = self.v4.take_preferring(preferred.v4.map(IpAddr::V4))?;
        let Some(v6) = self.v6.take_preferring(preferred.v6.map(IpAddr::V6)) else {
            self.v4.give_back(v4);
            return None;
        };
        let (IpAddr::V4(v4), IpAddr::V6(v6)) = (v4, v6) else {
            return None;
        };
        Some((self.insert(name, v4, v6, now, false), true))
    }

    /// Stores a handle whose addresses were taken from the pools, and indexes it.
    fn insert(
        &mut self,
        name: &str,
        v4: Ipv4Addr,
        v6: Ipv6Addr,
        now: Instant,
        handed_out: bool,
    ) -> usize {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.version += 1;
        let key = self.slab.insert(Handle {
            gen: self.next_gen,
            name: name.to_string(),
            v4,
            v6,
            last_used: now,
            path: None,
            handed_out,
            legacy: None,
            clients: BTreeMap::new(),
            bound_at: self.version,
        });
        self.by_name.insert(name.to_string(), key);
        self.by_addr.insert(IpAddr::V4(v4), key);
        self.by_addr.insert(IpAddr::V6(v6), key);
        key
    }

    /// Binds `name` to exactly these addresses (restoring a checkpoint). False when the name
    /// is bound already, an address is outside the pools or taken, or the table is full.
    pub(crate) fn bind_exact(
        &mut self,
        name: &str,
        v4: Ipv4Addr,
        v6: Ipv6Addr,
        now: Instant,
    ) -> Option<usize> {
        if self.by_name.contains_key(name) || self.slab.len() >= self.max {
            return None;
        }
        if !self.v4.take_specific(IpAddr::V4(v4)) {
            return None;
        }
        if !self.v6.take_specific(IpAddr::V6(v6)) {
            self.v4.give_back(IpAddr::V4(v4));
            return None;
        }
        // Apps held these addresses before the restart.
        Some(self.insert(name, v4, v6, now, true))
    }

    /// Releases a handle and queues its addresses for reuse.
    pub(crate) fn release(&mut self, key: usize) -> Option<Handle> {
        let h = self.slab.try_remove(key)?;
        self.version += 1;
        self.by_name.remove(&h.name);
        self.last.forget();
        self.by_addr.remove(&IpAddr::V4(h.v4));
        self.by_addr.remove(&IpAddr::V6(h.v6));
        self.v4.give_back(IpAddr::V4(h.v4));
        self.v6.give_back(IpAddr::V6(h.v6));
        Some(h)
    }

    /// Changes with every binding and release.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Notes a change made through `get_mut` that `Engine::check_tables` looks at (which
    /// path carries a handle's packets); not a binding, so no checkpoint is due.
    pub(crate) fn touch(&mut self) {
        self.touched += 1;
    }

    /// Changes with every binding, release and `touch`.
    pub(crate) fn shape(&self) -> u64 {
        self.version.wrapping_add(self.touched)
    }

    /// Handles in name order, for status output.
    pub(crate) fn iter_by_name(&self) -> impl Iterator<Item = &Handle> {
        self.by_name.values().filter_map(|k| self.slab.get(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(len: u8) -> Handles {
        let cfg = HandleConfig {
            pool_v4: Prefix::new("10.99.0.0".parse().unwrap(), len),
            tun_v4: "10.99.0.1".parse().unwrap(),
            dns_v4: "10.99.0.2".parse().unwrap(),
            ..HandleConfig::default()
        };
        Handles::new(&cfg, 100, &[0; 32]).unwrap()
    }

    #[test]
    fn sticky_per_name_and_skips_reserved() {
        let mut h = small(29);
        let (a, new) = h
            .bind("bob.udp", Instant::ZERO, Sources::default())
            .unwrap();
        assert!(new);
        assert_eq!(h.get(a).unwrap().v4, Ipv4Addr::new(10, 99, 0, 3));
        let (again, new) = h
            .bind("bob.udp", Instant::ZERO, Sources::default())
            .unwrap();
        assert_eq!((again, new), (a, false));
        assert_eq!(h.by_addr("10.99.0.3".parse().unwrap()), Some(a));
    }

    #[test]
    fn the_last_lookup_is_remembered_until_the_handles_change() {
        let mut h = small(29);
        let (a, _) = h
            .bind("bob.udp", Instant::ZERO, Sources::default())
            .unwrap();
        let (v4, v6) = h.get(a).map(|x| (x.v4, x.v6)).unwrap();
        let addr = IpAddr::V4(v4);
        assert_eq!(h.by_addr(addr), Some(a));
        assert_eq!(h.by_addr(addr), Some(a), "again, from the last lookup");
        assert_eq!(h.by_v4(v4), Some(a), "the IPv4 form reads the same answer");
        h.release(a);
        assert_eq!(h.by_addr(addr), None, "released: forgotten");
        assert_eq!(h.by_v4(v4), None);
        // Another name gets the addresses, in the slot bob's handle had.
        let b = h.bind_exact("carol.udp", v4, v6, Instant::ZERO).unwrap();
        assert_eq!(h.by_v4(v4), Some(b));
        assert_eq!(h.by_addr(IpAddr::V6(v6)), Some(b));
        assert_eq!(h.by_v4(v4), Some(b), "after an IPv6 lookup, found again");
        assert_eq!(h.by_v4(Ipv4Addr::new(10, 99, 0, 250)), None);
        assert_eq!(h.by_addr(addr), Some(b));
        assert_eq!(h.get(b).map(|x| x.name.as_str()), Some("carol.udp"));
    }

    #[test]
    fn exhaustion_then_release_reuses_oldest() {
        let mut h = small(29); // 8 addresses: network, broadcast, tun, dns reserved => 4 usable
        let keys: Vec<_> = (0..4)
            .map(|i| {
                h.bind(&format!("n{i}.udp"), Instant::ZERO, Sources::default())
                    .unwrap()
                    .0
            })
            .collect();
        assert!(h
            .bind("extra.udp", Instant::ZERO, Sources::default())
            .is_none());
        let first = h.release(keys[0]).unwrap();
        h.release(keys[1]).unwrap();
        let (k, _) = h
            .bind("extra.udp", Instant::ZERO, Sources::default())
            .unwrap();
        assert_eq!(h.get(k).unwrap().v4, first.v4);
        assert!(h.by_name("n0.udp").is_none());
    }

    #[test]
    fn exact_binding_restores_addresses_and_the_cursor_skips_them() {
        let mut h = small(28);
        let k = h.bind_exact(
            "b.udp",
            "10.99.0.5".parse().unwrap(),
            "fd6f:6361:6c61::5".parse().unwrap(),
            Instant::ZERO,
        );
        assert!(k.is_some());
        assert!(h
            .bind_exact(
                "c.udp",
                "10.99.0.5".parse().unwrap(),
                "fd6f:6361:6c61::6".parse().unwrap(),
                Instant::ZERO
            )
            .is_none());
        assert!(h
            .bind_exact(
                "d.udp",
                "10.98.0.5".parse().unwrap(),
                "fd6f:6361:6c61::7".parse().unwrap(),
                Instant::ZERO
            )
            .is_none());
        let mut got = Vec::new();
        for i in 0..3 {
            let (k, _) = h
                .bind(&format!("n{i}"), Instant::ZERO, Sources::default())
                .unwrap();
            got.push(h.get(k).unwrap().v4);
        }
        assert_eq!(
            got,
            ["10.99.0.3", "10.99.0.4", "10.99.0.6"].map(|a| a.parse::<Ipv4Addr>().unwrap())
        );
    }

    #[test]
    fn preferred_addresses_are_taken_when_free_and_again_after_release() {
        let mut h = small(28);
        let want = Sources {
            v4: Some("10.99.0.9".parse().unwrap()),
            v6: Some("fd6f:6361:6c61::9".parse().unwrap()),
        };
        let (a, _) = h.bind("a.udp", Instant::ZERO, want).unwrap();
        assert_eq!(
            (Some(h.get(a).unwrap().v4), Some(h.get(a).unwrap().v6)),
            (want.v4, want.v6)
        );
        // Taken: the next name that prefers them gets the pools' next addresses.
        let (b, _) = h.bind("b.udp", Instant::ZERO, want).unwrap();
        assert_eq!(h.get(b).unwrap().v4, Ipv4Addr::new(10, 99, 0, 3));
        // Reserved addresses and addresses outside the pool are never handed over.
        let tun = Sources {
            v4: Some("10.99.0.1".parse().unwrap()),
            v6: Some("fd00::1".parse().unwrap()),
        };
        let (c, _) = h.bind("c.udp", Instant::ZERO, tun).unwrap();
        assert_eq!(h.get(c).unwrap().v4, Ipv4Addr::new(10, 99, 0, 4));
        // Released, the address can be preferred again, ahead of older released ones.
        h.release(b).unwrap();
        h.release(a).unwrap();
        let (d, _) = h.bind("d.udp", Instant::ZERO, want).unwrap();
        assert_eq!(Some(h.get(d).unwrap().v4), want.v4);
    }

    #[test]
    fn handle_names_carry_only_a_protection_other_than_the_default() {
        use Protection::*;
        assert_eq!(handle_name("bob.udp", Encrypt, Encrypt), "bob.udp");
        assert_eq!(handle_name("bob.udp", Plain, Encrypt), "bob.udp_plain.oci");
        assert_eq!(handle_name("bob.udp", Encrypt, Auth), "bob.udp_encrypt.oci");
    }

    #[test]
    fn rejects_bad_pools() {
        let cfg = HandleConfig {
            pool_v4: Prefix::new("::".parse().unwrap(), 64),
            ..HandleConfig::default()
        };
        let err = Handles::new(&cfg, 10, &[0; 32]).unwrap_err();
        assert_eq!(err.key, "handles.pool_v4");
    }
}
