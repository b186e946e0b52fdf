//! CoDel (RFC 8289) on an overlay socket's receive queue.
//!
//! When this node cannot keep up — its CPU, not the network, is the bottleneck, as on a fast
//! LAN — datagrams wait in the kernel's socket buffer, and a TCP flow through the overlay
//! fills that buffer until it overflows: megabytes, milliseconds of delay for every packet
//! behind them, a ping or a keystroke included. The driver reads how long each datagram
//! waited (the kernel stamps it on arrival) and passes it in; this controller says when to
//! signal congestion, the way CoDel does at a router's dequeue: once the wait has stayed
//! above `target` for an `interval`, one data packet is marked (or dropped, when it is not
//! ECN-capable), then more often — at `interval / sqrt(n)` — until the wait falls below
//! target again. A loss-based TCP (CUBIC, Reno) then slows down and the queue stays short.
//!
//! Linux's fq_codel uses 5 ms and 100 ms for queues in front of a wire. This queue is only
//! ever long while the node itself is the bottleneck, and then every bit of standing queue is
//! delay no one asked for, so the defaults are tighter (`limits.queue_target_us`,
//! `limits.queue_interval_us`).

use crate::time::Instant;
use std::time::Duration;

/// The smallest data payload that is judged, and so may carry a signal. Smaller ones —
/// pure TCP acknowledgements, pings, DNS, keystrokes — pass: they are not what fills the
/// queue, marking or dropping them slows no sender down, and they are the traffic a short
/// queue is for. (Control messages are never judged: losing one costs a retransmission
/// timeout.)
pub(crate) const SIGNALLED_LEN: usize = 512;

/// The controller of one queue.
#[derive(Debug, Clone)]
pub(crate) struct Codel {
    /// Waits below this are fine; zero turns the controller off.
    target: Duration,
    /// How long the wait must stay above target before the first signal.
    interval: Duration,
    /// When the wait went above target, plus the interval: the earliest first signal.
    above_until: Option<Instant>,
    /// Signalling: between the first signal and the wait's return below target.
    dropping: bool,
    /// The next signal while dropping.
    drop_next: Instant,
    /// Signals in this dropping state (carried over when congestion returns soon).
    count: u64,
    /// `count` when the previous dropping state began.
    last_count: u64,
}

impl Codel {
    pub(crate) fn new(target: Duration, interval: Duration) -> Codel {
        Codel {
            target,
            interval,
            above_until: None,
            dropping: false,
            drop_next: Instant::ZERO,
            count: 0,
            last_count: 0,
        }
    }

    /// Judges a packet that waited `waited` in the queue and left it at `now`: whether it
    /// should carry a congestion signal (a CE mark, or a drop). Inlined for the common case,
    /// a short wait, which only forgets any congestion there was.
    #[inline]
    pub(crate) fn signal(&mut self, now: Instant, waited: Duration) -> bool {
        if waited < self.target {
            self.above_until = None;
            self.dropping = false;
            return false;
        }
        !self.target.is_zero() && self.judge_long_wait(now, waited)
    }

    /// [`Codel::signal`] for a wait at or above target: out of line, so the common case stays
    /// a compare.
    #[cold]
    #[inline(never)]
    fn judge_long_wait(&mut self, now: Instant, waited: Duration) -> bool {
        let persistent = self.persistently_above(now, waited);
        if self.dropping {
            if !persistent {
                self.dropping = false;
                return false;
            }
            if now < self.drop_next {
                return false;
            }
            self.count = self.count.saturating_add(1);
            self.drop_next = self.after(self.drop_next);
            return true;
        }
        if !persistent {
            return false;
        }
        self.dropping = true;
        // Congestion back soon after the last episode resumes near its signal rate rather
        // than starting over (RFC 8289 §5.5).
        let delta = self.count.saturating_sub(self.last_count);
        let recent = now.since(self.drop_next) < self.interval.saturating_mul(16);
        self.count = if delta > 1 && recent { delta } else { 1 };
        self.last_count = self.count;
        self.drop_next = self.after(now);
        true
    }

    /// Whether the wait has been above target for at least an interval.
    fn persistently_above(&mut self, now: Instant, waited: Duration) -> bool {
        if waited < self.target {
            self.above_until = None;
            return false;
        }
        match self.above_until {
            None => {
                self.above_until = Some(now.saturating_add(self.interval));
                false
            }
            Some(t) => now >= t,
        }
    }

    /// The control law: the next signal `interval / sqrt(count)` after `t`, in integers so
    /// the schedule is the same on every machine.
    fn after(&self, t: Instant) -> Instant {
        const SCALE: u64 = 1 << 16;
        let interval = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        let root = self.count.max(1).saturating_mul(SCALE * SCALE).isqrt();
        let step = u128::from(interval) * u128::from(SCALE) / u128::from(root.max(1));
        t.saturating_add(Duration::from_nanos(
            u64::try_from(step).unwrap_or(u64::MAX),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * MS)
    }

    fn codel() -> Codel {
        Codel::new(Duration::from_micros(500), Duration::from_millis(5))
    }

    /// Feeds a packet every 100 µs for `ms` milliseconds from `start`, each having waited
    /// `waited`; returns the instants (in µs) of the signals.
    fn run(c: &mut Codel, start: u64, ms: u64, waited: Duration) -> Vec<u64> {
        (0..ms * 10)
            .map(|i| start * 1000 + i * 100)
            .filter(|&us| c.signal(Instant::from_nanos(us * 1000), waited))
            .collect()
    }

    #[test]
    fn short_waits_and_brief_bursts_are_never_signalled() {
        let mut c = codel();
        assert!(run(&mut c, 0, 100, Duration::from_micros(499)).is_empty());
        // Above target for just under an interval, then back: no signal.
        assert!(run(&mut c, 100, 4, Duration::from_millis(3)).is_empty());
        assert!(run(&mut c, 104, 1, Duration::ZERO).is_empty());
        assert!(run(&mut c, 105, 4, Duration::from_millis(3)).is_empty());
    }

    #[test]
    fn a_standing_queue_is_signalled_after_an_interval_then_ever_more_often() {
        let mut c = codel();
        let signals = run(&mut c, 0, 40, Duration::from_millis(2));
        // The wait went above target at 0; the first signal comes an interval later.
        assert_eq!(signals.first(), Some(&5000));
        let gaps: Vec<u64> = signals.windows(2).map(|w| w[1] - w[0]).collect();
        // interval / sqrt(n): 5 ms, 3.54 ms, 2.89 ms, 2.5 ms ... on a 100 µs packet grid.
        assert_eq!(&gaps[..4], &[5000, 3600, 2900, 2500]);
        assert!(gaps.windows(2).all(|g| g[1] <= g[0]), "{gaps:?}");
    }

    #[test]
    fn the_queue_draining_ends_the_signals_and_soon_congestion_resumes_the_rate() {
        let mut c = codel();
        let first = run(&mut c, 0, 30, Duration::from_millis(2));
        assert!(first.len() > 5);
        assert!(run(&mut c, 30, 10, Duration::from_micros(100)).is_empty());
        // Congested again within 16 intervals: the first signal comes after an interval as
        // before, the next ones at the rate the last episode reached, not from scratch.
        let again = run(&mut c, 40, 12, Duration::from_millis(2));
        assert_eq!(again.first(), Some(&45_000));
        let gap = again[1] - again[0];
        assert!(gap < 3000, "resumed gap {gap} µs");
        // After a long calm, it starts over.
        assert!(run(&mut c, 52, 1000, Duration::ZERO).is_empty());
        let fresh = run(&mut c, 1052, 12, Duration::from_millis(2));
        assert_eq!(fresh[1] - fresh[0], 5000);
    }

    #[test]
    fn a_zero_target_turns_it_off() {
        let mut c = Codel::new(Duration::ZERO, Duration::from_millis(5));
        assert!(run(&mut c, 0, 100, Duration::from_secs(1)).is_empty());
        assert!(!c.signal(at(200), Duration::from_secs(1)));
    }
}
