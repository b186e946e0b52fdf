//! Keys granted to this middlebox for paths it sees in transit (the id stack in front of a
//! guarded host), by the label their data carries. A gateway hop keeps its keys on the
//! relayed path itself instead, so they go when the path goes.
//!
//! Transit paths end elsewhere, so nothing tells us when one closes: the table is bounded
//! and the oldest grant gives way. Two paths through us may carry the same label (labels are
//! only unique per end point); the newer grant wins, and the other path's data, which then
//! does not open, is judged as ciphertext.

use crate::security::cipher::DataKey;
use crate::time::Instant;
use std::collections::BTreeMap;

#[derive(Debug)]
struct Entry {
    key: DataKey,
    granted: Instant,
}

/// Granted keys by data label.
#[derive(Debug)]
pub(crate) struct Granted {
    by_label: BTreeMap<u32, Entry>,
    capacity: usize,
}

impl Granted {
    pub(crate) fn new(capacity: usize) -> Granted {
        Granted {
            by_label: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Keeps `key` for data labelled `label`, letting the oldest grant go when full.
    pub(crate) fn insert(&mut self, now: Instant, label: u32, key: DataKey) {
        if !self.by_label.contains_key(&label) && self.by_label.len() >= self.capacity {
            let oldest = self
                .by_label
                .iter()
                .min_by_key(|(l, e)| (e.granted, **l))
                .map(|(l, _)| *l);
            if let Some(l) = oldest {
                self.by_label.remove(&l);
            }
        }
        self.by_label.insert(label, Entry { key, granted: now });
    }

    pub(crate) fn get(&self, label: u32) -> Option<&DataKey> {
        self.by_label.get(&label).map(|e| &e.key)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_label.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_newest_wins_and_the_oldest_gives_way() {
        let mut g = Granted::new(2);
        let t = |s| Instant::ZERO.saturating_add(Duration::from_secs(s));
        let k = |byte| DataKey {
            cipher: crate::security::cipher::DataCipher::Aes256Gcm,
            bytes: [byte; 32],
        };
        g.insert(t(1), 10, k(1));
        g.insert(t(2), 20, k(2));
        g.insert(t(3), 10, k(3)); // same label: replaced, nothing evicted
        assert_eq!((g.get(10), g.get(20)), (Some(&k(3)), Some(&k(2))));
        g.insert(t(4), 30, k(4)); // full: 20 is now the oldest
        assert_eq!(g.len(), 2);
        assert_eq!((g.get(20), g.get(30)), (None, Some(&k(4))));
    }
}
