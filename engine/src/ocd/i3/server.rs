//! The i3 server role: triggers kept as soft state and packets forwarded by id stack. A trigger
//! `[id | target]` sends packets whose top id matches `id` to an address (the inserting host's
//! address as this server saw it, so a host behind a NAT is reachable through its binding) or
//! replaces the top id by a stack of ids (receiver-imposed middleboxes). Triggers expire unless
//! refreshed; each is owned by the key it was inserted with, so nobody else can take it over or
//! remove it while it lives, and its owner can move it to a new address (mobility).

use super::id::Id;
use super::wire::{Refusal, Stack, KEY_LEN};
use crate::keyed::{Keyed, KeyedMap};
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
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

/// The table key: the bits a match must share, as one number (hashed in one go).
fn exact(id: &Id) -> u128 {
    u128::from_be_bytes(id.exact_part())
}

#[derive(Debug)]
struct Trigger {
    id: Id,
    key: [u8; KEY_LEN],
    target: Target,
    expires: Instant,
}

/// The trigger table of one server.
#[derive(Debug)]
pub struct Triggers {
    /// Triggers by the 128 bits a match must share; a group holds the triggers that share
    /// them (almost always one). Keyed hashing: hosts choose ids, and must not be able to
    /// crowd one bucket. Looked up, never iterated.
    table: KeyedMap<u128, Vec<Trigger>>,
    live: usize,
    /// Deadlines, checked lazily against the trigger's current expiry.
    expiry: BinaryHeap<Reverse<(Instant, Id)>>,
    max: usize,
    max_lifetime: Duration,
}

impl Triggers {
    /// An empty table holding at most `max` triggers, each for at most `max_lifetime`; its
    /// hash key is derived from `seed`.
    pub fn new(max: usize, max_lifetime: Duration, seed: &[u8; 32]) -> Triggers {
        Triggers {
            table: KeyedMap::with_hasher(Keyed::derive(seed, "i3 triggers")),
            live: 0,
            expiry: BinaryHeap::new(),
            max,
            max_lifetime,
        }
    }

    fn get_mut(&mut self, id: &Id) -> Option<&mut Trigger> {
        self.table
            .get_mut(&exact(id))?
            .iter_mut()
            .find(|t| t.id == *id)
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
        let full = self.live >= self.max;
        match self.get_mut(&id) {
            Some(t) if t.key != key => return Err(Refusal::Taken),
            Some(t) => {
                t.target = target;
                t.expires = expires;
            }
            None if full => return Err(Refusal::Full),
            None => {
                self.table.entry(exact(&id)).or_default().push(Trigger {
                    id,
                    key,
                    target,
                    expires,
                });
                self.live += 1;
            }
        }
        self.expiry.push(Reverse((expires, id)));
        Ok(lifetime)
    }

    /// Takes a trigger out of the table if `keep` says no to it.
    fn remove_if(&mut self, id: &Id, keep: impl Fn(&Trigger) -> bool) -> bool {
        let exact = exact(id);
        let Some(group) = self.table.get_mut(&exact) else {
            return false;
        };
        let Some(i) = group.iter().position(|t| t.id == *id && !keep(t)) else {
            return false;
        };
        group.swap_remove(i);
        if group.is_empty() {
            self.table.remove(&exact);
        }
        self.live -= 1;
        true
    }

    /// Removes a trigger its owner no longer wants.
    pub fn remove(&mut self, id: &Id, key: &[u8; KEY_LEN]) -> bool {
        self.remove_if(id, |t| &t.key != key)
    }

    /// The live trigger matching `id`: the first 128 bits equal, then the longest common
    /// prefix of the rest (the lower id on a tie). Returns the trigger's own id and its target.
    pub fn matching(&self, now: Instant, id: &Id) -> Option<(Id, &Target)> {
        self.table
            .get(&exact(id))?
            .iter()
            .filter(|t| t.expires > now)
            .max_by_key(|t| (t.id.suffix_match(id), Reverse(t.id)))
            .map(|t| (t.id, &t.target))
    }

    /// Drops triggers whose lifetime ran out.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            self.remove_if(&id, |t| t.expires > now);
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
        self.live
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.live == 0
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
        let mut t = Triggers::new(10, 60 * S, &[0; 32]);
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
        let mut t = Triggers::new(10, 60 * S, &[0; 32]);
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
        let mut t = Triggers::new(1, 60 * S, &[0; 32]);
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
