//! The i3 server role: triggers kept as soft state and packets forwarded by id stack. A trigger
//! `[id | target]` sends packets whose top id matches `id` to an address (the inserting host's
//! address as this server saw it, so a host behind a NAT is reachable through its binding) or
//! replaces the top id by a stack of ids (receiver-imposed middleboxes). Triggers expire unless
//! refreshed; each is owned by the key it was inserted with, so nobody else can take it over or
//! remove it while it lives, and its owner can move it to a new address (mobility).

use super::id::{Id, EXACT_LEN, ID_LEN};
use super::wire::{Refusal, Stack, KEY_LEN};
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

/// Where a matched packet goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// To a host's address.
    Addr(SocketAddr),
    /// On, with the top id replaced by these.
    Stack(Stack),
}

#[derive(Debug)]
struct Trigger {
    key: [u8; KEY_LEN],
    target: Target,
    expires: Instant,
}

/// The trigger table of one server.
#[derive(Debug)]
pub struct Triggers {
    table: BTreeMap<Id, Trigger>,
    /// Deadlines, checked lazily against the trigger's current expiry.
    expiry: BinaryHeap<Reverse<(Instant, Id)>>,
    max: usize,
    max_lifetime: Duration,
}

impl Triggers {
    /// An empty table holding at most `max` triggers, each for at most `max_lifetime`.
    pub fn new(max: usize, max_lifetime: Duration) -> Triggers {
        Triggers {
            table: BTreeMap::new(),
            expiry: BinaryHeap::new(),
            max,
            max_lifetime,
        }
    }

    /// Inserts or refreshes a trigger; the granted lifetime, or why not.
    pub fn insert(
        &mut self,
        now: Instant,
        id: Id,
        key: [u8; KEY_LEN],
        target: Target,
        lifetime: Duration,
    ) -> Result<Duration, Refusal> {
        self.expire(now);
        let lifetime = lifetime.min(self.max_lifetime);
        let expires = now.saturating_add(lifetime);
        let full = self.table.len() >= self.max;
        match self.table.get_mut(&id) {
            Some(t) if t.key != key => return Err(Refusal::Taken),
            Some(t) => {
                t.target = target;
                t.expires = expires;
            }
            None if full => return Err(Refusal::Full),
            None => {
                self.table.insert(
                    id,
                    Trigger {
                        key,
                        target,
                        expires,
                    },
                );
            }
        }
        self.expiry.push(Reverse((expires, id)));
        Ok(lifetime)
    }

    /// Removes a trigger its owner no longer wants.
    pub fn remove(&mut self, id: &Id, key: &[u8; KEY_LEN]) -> bool {
        if self.table.get(id).is_some_and(|t| &t.key == key) {
            self.table.remove(id);
            return true;
        }
        false
    }

    /// The live trigger matching `id`: the first 128 bits equal, then the longest common
    /// prefix of the rest. Returns the trigger's own id and its target.
    pub fn matching(&self, now: Instant, id: &Id) -> Option<(Id, &Target)> {
        let mut lo = [0u8; ID_LEN];
        lo[..EXACT_LEN].copy_from_slice(&id.exact_part());
        let mut hi = lo;
        hi[EXACT_LEN..].fill(0xff);
        self.table
            .range(Id(lo)..=Id(hi))
            .filter(|(_, t)| t.expires > now)
            .max_by_key(|(k, _)| (k.suffix_match(id), Reverse(**k)))
            .map(|(k, t)| (*k, &t.target))
    }

    /// Drops triggers whose lifetime ran out.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            if self.table.get(&id).is_some_and(|t| t.expires <= now) {
                self.table.remove(&id);
            }
        }
    }

    /// The next expiry to act on.
    pub fn next_deadline(&self) -> Instant {
        self.expiry
            .peek()
            .map_or(Instant::MAX, |Reverse((at, _))| *at)
    }

    /// Live triggers.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; KEY_LEN] = [1; KEY_LEN];
    const S: Duration = Duration::from_secs(1);

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    fn addr(port: u16) -> Target {
        Target::Addr(SocketAddr::from(([192, 0, 2, 1], port)))
    }

    #[test]
    fn longest_prefix_after_an_exact_128_bits() {
        let mut t = Triggers::new(10, 60 * S);
        let base = Id([0xaa; 32]);
        let mut near = base;
        near.0[31] ^= 1; // shares 127 suffix bits with `base`
        let mut far = base;
        far.0[16] ^= 0x80; // shares none
        t.insert(at(0), near, KEY, addr(1), 10 * S).unwrap();
        t.insert(at(0), far, KEY, addr(2), 10 * S).unwrap();
        assert_eq!(t.matching(at(1), &base), Some((near, &addr(1))));
        // A different exact part never matches, however close the rest is.
        let mut other = base;
        other.0[0] ^= 1;
        assert_eq!(t.matching(at(1), &other), None);
    }

    #[test]
    fn soft_state_expires_unless_refreshed() {
        let mut t = Triggers::new(10, 60 * S);
        let id = Id([3; 32]);
        t.insert(at(0), id, KEY, addr(1), 5 * S).unwrap();
        t.insert(at(4), id, KEY, addr(1), 5 * S).unwrap();
        t.expire(at(6));
        assert!(t.matching(at(6), &id).is_some(), "refresh extended it");
        t.expire(at(9));
        assert!(t.matching(at(9), &id).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn owners_keep_their_triggers_and_the_table_is_bounded() {
        let mut t = Triggers::new(1, 60 * S);
        let id = Id([3; 32]);
        assert_eq!(t.insert(at(0), id, KEY, addr(1), 999 * S), Ok(60 * S));
        assert_eq!(
            t.insert(at(0), id, [2; KEY_LEN], addr(9), S),
            Err(Refusal::Taken)
        );
        assert!(!t.remove(&id, &[2; KEY_LEN]));
        // The owner moves it (mobility).
        t.insert(at(1), id, KEY, addr(7), S).unwrap();
        assert_eq!(t.matching(at(1), &id), Some((id, &addr(7))));
        assert_eq!(
            t.insert(at(1), Id([4; 32]), KEY, addr(1), S),
            Err(Refusal::Full)
        );
        assert!(t.remove(&id, &KEY));
        assert_eq!(t.len(), 0);
    }
}
