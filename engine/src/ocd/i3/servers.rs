//! The i3 server membership as a host sees it: servers share the id space by consistent
//! hashing (each server owns the ids from the previous server's ring point up to its own), and
//! each is live until it has not answered for a while. When a server dies its ids fall to the
//! next live server on the ring, where hosts re-insert their triggers and senders send.

use super::id::Id;
use crate::time::Instant;
use blake2::{Blake2s256, Digest};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    point: u64,
    last_heard: Instant,
    live: bool,
}

/// The configured servers, ordered by ring point.
#[derive(Debug)]
pub struct Servers {
    ring: Vec<Server>,
    dead_after: Duration,
}

/// A server's point on the ring: a hash of its address, the same at every node.
fn point_of(addr: &SocketAddr) -> u64 {
    let mut h = Blake2s256::new();
    h.update(b"ocala i3 server v1\0");
    h.update(addr.to_string().as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

impl Servers {
    /// Membership from config; every server counts as live until it misses `dead_after`.
    pub fn new(addrs: &[SocketAddr], dead_after: Duration) -> Servers {
        let mut ring: Vec<Server> = addrs
            .iter()
            .map(|a| Server {
                addr: *a,
                point: point_of(a),
                last_heard: Instant::ZERO,
                live: true,
            })
            .collect();
        ring.sort_by_key(|s| (s.point, s.addr));
        Servers { ring, dead_after }
    }

    /// The live server responsible for `id`, if any server is live.
    pub fn responsible(&self, id: &Id) -> Option<SocketAddr> {
        let p = id.ring_point();
        let start = self.ring.partition_point(|s| s.point < p);
        (0..self.ring.len())
            .map(|i| &self.ring[(start + i) % self.ring.len()])
            .find(|s| s.live)
            .map(|s| s.addr)
    }

    /// Whether `addr` is one of the servers.
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.ring.iter().any(|s| s.addr == *addr)
    }

    /// A server answered; true when it had been counted dead.
    pub fn heard(&mut self, now: Instant, addr: &SocketAddr) -> bool {
        match self.ring.iter_mut().find(|s| s.addr == *addr) {
            Some(s) => {
                s.last_heard = now;
                !std::mem::replace(&mut s.live, true)
            }
            None => false,
        }
    }

    /// Counts as dead every server silent for too long (but `me`, the server this node runs,
    /// if any: a node knows it is alive); the addresses that died just now.
    pub fn expire(&mut self, now: Instant, me: Option<SocketAddr>) -> Vec<SocketAddr> {
        let mut died = Vec::new();
        for s in self.ring.iter_mut() {
            if s.live && Some(s.addr) != me && now.since(s.last_heard) >= self.dead_after {
                s.live = false;
                died.push(s.addr);
            }
        }
        died
    }

    /// Starts every server's silence clock at `now` (the module's first tick).
    pub fn start(&mut self, now: Instant) {
        for s in self.ring.iter_mut() {
            s.last_heard = now;
        }
    }

    /// All servers, live or not.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.ring.iter().map(|s| s.addr)
    }

    /// How many servers are live.
    pub fn live(&self) -> usize {
        self.ring.iter().filter(|s| s.live).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_move_to_the_next_live_server_and_back() {
        let addrs: Vec<SocketAddr> = (1..=3)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 4790)))
            .collect();
        let mut s = Servers::new(&addrs, Duration::from_secs(3));
        s.start(Instant::ZERO);
        let ids: Vec<Id> = (0..256).map(|i| Id::of_name(&format!("h{i}.i3"))).collect();
        let before: Vec<_> = ids.iter().map(|i| s.responsible(i).unwrap()).collect();
        // Every server owns some of the ids.
        for a in &addrs {
            assert!(before.contains(a), "{a} owns no id");
        }
        let t = Instant::from_nanos(3_000_000_000);
        s.heard(t, &addrs[0]);
        s.heard(t, &addrs[1]);
        assert_eq!(s.expire(t, Some(addrs[1])), vec![addrs[2]]);
        assert_eq!(s.expire(t, None), vec![], "each death is reported once");
        for (id, was) in ids.iter().zip(&before) {
            let now = s.responsible(id).unwrap();
            if *was == addrs[2] {
                assert_ne!(now, addrs[2]);
            } else {
                assert_eq!(now, *was, "ids of live servers stay put");
            }
        }
        assert!(
            s.heard(t, &addrs[2]),
            "a dead server that answers is live again"
        );
        let after: Vec<_> = ids.iter().map(|i| s.responsible(i).unwrap()).collect();
        assert_eq!(after, before);
    }
}
