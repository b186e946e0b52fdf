//! A map's last answer, kept beside it. A bulk flow asks the same question packet after
//! packet — which handle has this address, which tunnel a module's descriptor or a peer's
//! address is — and comparing the key with the last one costs less than searching or
//! hashing again. Whoever owns the map forgets the answer when the map changes in a way
//! that could make it wrong.

use std::cell::Cell;

pub(crate) struct LastLookup<K, V>(Cell<Option<(K, V)>>);

impl<K: Copy + std::fmt::Debug, V: Copy + std::fmt::Debug> std::fmt::Debug for LastLookup<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LastLookup").field(&self.0.get()).finish()
    }
}

impl<K, V> Default for LastLookup<K, V> {
    fn default() -> Self {
        LastLookup(Cell::new(None))
    }
}

impl<K: Copy + PartialEq, V: Copy> LastLookup<K, V> {
    /// The answer for `key`: the last one if it was for `key`, else what `look` finds,
    /// remembered.
    pub(crate) fn get(&self, key: K, look: impl FnOnce() -> Option<V>) -> Option<V> {
        if let Some((k, v)) = self.0.get() {
            if k == key {
                return Some(v);
            }
        }
        let v = look()?;
        self.0.set(Some((key, v)));
        Some(v)
    }

    /// The last question and its answer, if any.
    pub(crate) fn peek(&self) -> Option<(K, V)> {
        self.0.get()
    }

    pub(crate) fn forget(&self) {
        self.0.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::LastLookup;

    #[test]
    fn answers_again_without_looking_until_forgotten() {
        let last = LastLookup::default();
        let mut looked = 0;
        let mut look = |v| {
            looked += 1;
            v
        };
        assert_eq!(last.get(1, || look(Some('a'))), Some('a'));
        assert_eq!(last.get(1, || look(Some('b'))), Some('a'), "remembered");
        assert_eq!(
            last.get(2, || look(None)),
            None,
            "nothing found is not kept"
        );
        assert_eq!(last.get(1, || look(Some('c'))), Some('a'));
        last.forget();
        assert_eq!(last.get(1, || look(Some('d'))), Some('d'));
        assert_eq!(looked, 3);
    }
}
