//! Timers as a heap of deadlines. Entries are never removed early: each carries the
//! generation of the thing it belongs to, and a handler that finds the generation changed
//! (the path was freed and its slot reused) ignores it.

use crate::api::QueryId;
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// What a deadline is for. Keys are slab indices plus the generation they were armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// Retransmit or give up a path setup.
    Setup { path: usize, gen: u32 },
    /// Check whether a handle has been idle long enough to release.
    HandleIdle { handle: usize, gen: u32 },
    /// Give up on an upstream DNS query.
    Upstream(QueryId),
    /// Set up fresh keys for a secure path before its current ones get old.
    Rekey { path: usize, gen: u32 },
    /// Close a path whose successor took over, once packets in flight have arrived.
    Retire { path: usize, gen: u32 },
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    seq: u64,
}

impl Timers {
    /// Arms `timer` for `at`. Ties fire in the order armed, which keeps runs deterministic.
    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    /// The earliest deadline, [`Instant::MAX`] when none is armed.
    pub(crate) fn next(&self) -> Instant {
        self.heap
            .peek()
            .map_or(Instant::MAX, |Reverse((at, _, _))| *at)
    }

    /// Removes and returns one timer that is due at `now`. Inlined: every input asks, and
    /// almost always nothing is due.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse((_, _, t))| t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_then_arming_order() {
        let mut t = Timers::default();
        t.schedule(Instant::from_nanos(20), Timer::Upstream(QueryId(1)));
        t.schedule(Instant::from_nanos(10), Timer::Upstream(QueryId(2)));
        t.schedule(Instant::from_nanos(10), Timer::Upstream(QueryId(3)));
        assert_eq!(t.next(), Instant::from_nanos(10));
        assert_eq!(t.pop_due(Instant::from_nanos(5)), None);
        let now = Instant::from_nanos(30);
        let order: Vec<_> = std::iter::from_fn(|| t.pop_due(now)).collect();
        assert_eq!(
            order,
            vec![
                Timer::Upstream(QueryId(2)),
                Timer::Upstream(QueryId(3)),
                Timer::Upstream(QueryId(1))
            ]
        );
        assert_eq!(t.next(), Instant::MAX);
    }
}
