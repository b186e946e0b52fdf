//! Sliding replay window for data packets that carry an explicit 64-bit nonce counter.
//!
//! Over an overlay, packets may be lost, duplicated and reordered, so a receiver cannot
//! demand strictly increasing counters. Like WireGuard, it instead remembers which of the
//! last [`WINDOW`] counters below the highest one seen have arrived: a counter newer than
//! everything seen is accepted, one inside the window is accepted once, one older than the
//! window is refused because it can no longer be told apart from a replay.
//!
//! Checking and recording are separate ([`ReplayWindow::check`], [`ReplayWindow::update`])
//! so that a receiver can cheaply drop obvious replays before decrypting, and only record a
//! counter once the packet has authenticated — otherwise a forged packet with a huge counter
//! would slide the window and make every genuine packet "too old".
//!
//! The state is a fixed bitmap of [`WINDOW`] bits in `u64` words, used as a ring indexed by
//! `counter % WINDOW`; nothing is allocated per packet.

use std::fmt;

/// How many counters the window covers: the highest seen and the 2047 below it.
pub const WINDOW: u64 = 2048;
const WORDS: usize = 2048 / 64;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayError {
    /// At least [`WINDOW`] below the highest counter seen.
    TooOld,
    /// Already seen.
    Duplicate,
    /// `u64::MAX`, which is reserved: a sender must rekey before reaching it, and accepting it
    /// would leave no counter above it.
    Reserved,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayError::TooOld => "packet counter is older than the replay window",
            ReplayError::Duplicate => "packet counter was already seen (replay)",
            ReplayError::Reserved => "packet counter is the reserved maximum",
        })
    }
}

impl std::error::Error for ReplayError {}

/// Which counters have been seen among the last [`WINDOW`].
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// One more than the highest counter recorded; 0 when nothing has been recorded. Using
    /// "one more" lets 0 mean "empty" without an extra flag.
    top: u64,
    /// Bit `c % WINDOW` is set when counter `c`, for `top - WINDOW <= c < top`, was recorded.
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest())
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window: every counter but `u64::MAX` is acceptable.
    pub fn new() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest counter recorded, if any.
    pub fn highest(&self) -> Option<u64> {
        self.top.checked_sub(1)
    }

    /// Whether `counter` would be accepted, without recording it.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter == u64::MAX {
            return Err(ReplayError::Reserved);
        }
        if counter >= self.top {
            return Ok(());
        }
        if self.top - counter > WINDOW {
            return Err(ReplayError::TooOld);
        }
        let (word, mask) = slot(counter);
        if self.bits[word] & mask != 0 {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `counter` as seen if [`check`](Self::check) accepts it, sliding the window
    /// forward when it is the newest so far.
    pub fn update(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        if counter >= self.top {
            // The slots of counters top..=counter held counters that now fall out of the
            // window; none of top..=counter has been seen, so clear them.
            let advance = counter - self.top + 1; // counter < u64::MAX, so no overflow
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                self.clear(self.top, advance);
            }
            self.top = counter + 1;
        }
        let (word, mask) = slot(counter);
        self.bits[word] |= mask;
        Ok(())
    }

    /// Clears the slots of `count` (< WINDOW) consecutive counters from `start`, a word at a
    /// time where possible (at most 33 steps).
    fn clear(&mut self, start: u64, count: u64) {
        let mut pos = start % WINDOW;
        let mut left = count;
        while left > 0 {
            let bit = pos % 64;
            let take = (64 - bit).min(left);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << bit
            };
            let word = usize::try_from(pos / 64).unwrap_or(0) % WORDS;
            self.bits[word] &= !mask;
            left -= take;
            pos = (pos + take) % WINDOW;
        }
    }
}

/// The word index and bit mask of a counter's slot.
fn slot(counter: u64) -> (usize, u64) {
    let pos = counter % WINDOW;
    // pos < 2048, so the word index is < 32 and the conversion cannot fail.
    let word = usize::try_from(pos / 64).unwrap_or(0);
    (word, 1u64 << (pos % 64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn in_order_and_duplicates() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.highest(), None);
        for c in 0..5000 {
            assert_eq!(w.check(c), Ok(()));
            assert_eq!(w.update(c), Ok(()));
            assert_eq!(w.check(c), Err(ReplayError::Duplicate));
            assert_eq!(w.update(c), Err(ReplayError::Duplicate));
        }
        assert_eq!(w.highest(), Some(4999));
        assert_eq!(w.check(4999 - 2047), Err(ReplayError::Duplicate));
        assert_eq!(w.check(4999 - 2048), Err(ReplayError::TooOld));
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::new();
        w.update(10_000).unwrap();
        // The window is the highest counter and the 2047 below it.
        assert_eq!(w.check(10_000 - 2047), Ok(()));
        assert_eq!(w.check(10_000 - 2048), Err(ReplayError::TooOld));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        w.update(10_000 - 2047).unwrap();
        assert_eq!(w.check(10_000 - 2047), Err(ReplayError::Duplicate));
        // Advancing by one pushes the oldest out.
        w.update(10_001).unwrap();
        assert_eq!(w.check(10_000 - 2047), Err(ReplayError::TooOld));
        // The next one up is still inside the window and was never recorded.
        assert_eq!(w.check(10_000 - 2046), Ok(()));
    }

    #[test]
    fn out_of_order_within_window() {
        let mut w = ReplayWindow::new();
        w.update(100).unwrap();
        for c in (0..100).rev() {
            assert_eq!(w.update(c), Ok(()), "{c}");
        }
        for c in 0..=100 {
            assert_eq!(w.check(c), Err(ReplayError::Duplicate));
        }
        assert_eq!(w.check(101), Ok(()));
    }

    #[test]
    fn big_jump_clears_everything() {
        let mut w = ReplayWindow::new();
        for c in 0..2048 {
            w.update(c).unwrap();
        }
        w.update(1_000_000).unwrap();
        for c in 1_000_000 - 2047..1_000_000 {
            assert_eq!(w.check(c), Ok(()), "{c}");
        }
        // A jump of exactly the window size, and one just short of it.
        let mut w = ReplayWindow::new();
        for c in 0..2048 {
            w.update(c).unwrap();
        }
        w.update(2047 + 2047).unwrap();
        for c in 2048..2047 + 2047 {
            assert_eq!(w.check(c), Ok(()), "{c}");
        }
        assert_eq!(w.check(2047), Err(ReplayError::Duplicate));
        w.update(2047 + 2047 + 2048).unwrap();
        assert_eq!(w.check(2047 + 2047), Err(ReplayError::TooOld));
        assert_eq!(w.check(2047 + 2048), Ok(()));
    }

    #[test]
    fn check_does_not_record() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.check(5), Ok(()));
        assert_eq!(w.highest(), None);
        w.update(5).unwrap();
        assert_eq!(w.check(5), Err(ReplayError::Duplicate));
    }

    #[test]
    fn reserved_maximum() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check(u64::MAX), Err(ReplayError::Reserved));
        assert_eq!(w.update(u64::MAX), Err(ReplayError::Reserved));
        w.update(u64::MAX - 1).unwrap();
        assert_eq!(w.highest(), Some(u64::MAX - 1));
        assert_eq!(w.update(u64::MAX - 1), Err(ReplayError::Duplicate));
        assert_eq!(w.update(u64::MAX), Err(ReplayError::Reserved));
        assert_eq!(w.update(u64::MAX - 2048), Ok(()));
        assert_eq!(w.check(u64::MAX - 2049), Err(ReplayError::TooOld));
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn counter_zero_first() {
        let mut w = ReplayWindow::new();
        w.update(0).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Duplicate));
        assert_eq!(w.highest(), Some(0));
    }

    #[test]
    fn stays_small() {
        assert!(std::mem::size_of::<ReplayWindow>() <= 8 + 256);
    }

    /// The obvious model: every counter ever recorded, and the highest.
    #[derive(Default)]
    struct Model {
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn check(&self, c: u64) -> Result<(), ReplayError> {
            if c == u64::MAX {
                return Err(ReplayError::Reserved);
            }
            match self.seen.last() {
                Some(&max) if c < max && max - c >= WINDOW => Err(ReplayError::TooOld),
                _ if self.seen.contains(&c) => Err(ReplayError::Duplicate),
                _ => Ok(()),
            }
        }

        fn update(&mut self, c: u64) -> Result<(), ReplayError> {
            self.check(c)?;
            self.seen.insert(c);
            Ok(())
        }
    }

    /// A step relative to the highest counter so far, so that most land near the window.
    #[derive(Debug, Clone)]
    enum Step {
        Near(i64),
        Far(u64),
        Absolute(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (-2200i64..200).prop_map(Step::Near),
            1 => (0u64..10_000).prop_map(Step::Far),
            1 => prop_oneof![Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()].prop_map(Step::Absolute),
        ]
    }

    fn counter(base: u64, s: &Step) -> u64 {
        match *s {
            Step::Near(d) => base.saturating_add_signed(d),
            Step::Far(d) => base.saturating_add(d),
            Step::Absolute(c) => c,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_set_model(
            start in prop_oneof![Just(0u64), Just(u64::MAX - 5000), any::<u64>()],
            steps in proptest::collection::vec((step(), any::<bool>()), 1..400),
        ) {
            let mut w = ReplayWindow::new();
            let mut m = Model::default();
            for (s, record) in steps {
                let base = m.seen.last().copied().unwrap_or(start);
                let c = counter(base, &s);
                prop_assert_eq!(w.check(c), m.check(c), "check {}", c);
                if record {
                    prop_assert_eq!(w.update(c), m.update(c), "update {}", c);
                }
                prop_assert_eq!(w.highest(), m.seen.last().copied());
            }
        }
    }
}
