//! What a member measures of its direct link to one other member by probing it (RON §4.2):
//! a smoothed round-trip time, the share of the last 32 probes that went unanswered, and
//! whether the link is up. A link goes down after `misses` probes in a row are lost and comes
//! back after `misses` answers in a row, so one lucky or unlucky probe does not flip it.
//! Probes lost while a link is down are not loss: they measure the outage.

use super::routes::Measure;
use crate::time::Instant;
use arrayvec::ArrayVec;
use std::time::Duration;

/// Probes in flight per link at most; older ones count as lost when a new one needs room.
const IN_FLIGHT: usize = 8;
/// Probes the loss estimate covers (8 s at the default 250 ms): long enough to tell 10 %
/// loss from bad luck, short enough that a link that failed wins its routes back soon after
/// it is healthy again.
const HISTORY: u32 = 32;

/// One direct link's measurements.
// The loss bits are a u64; only the low `HISTORY` count.
#[derive(Debug, Default)]
pub struct Link {
    in_flight: ArrayVec<(u32, Instant), IN_FLIGHT>,
    next_seq: u32,
    srtt_us: Option<u32>,
    /// One bit per resolved probe, newest in bit 0: 1 = lost.
    lost_bits: u64,
    resolved: u32,
    lost_in_a_row: u32,
    answered_in_a_row: u32,
    up: bool,
    /// Whether the link was ever up: a first answer brings it up at once, a comeback needs
    /// `misses` answers in a row.
    was_up: bool,
}

/// A link's change of state, for notices and triggered link-state updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Up,
    Down,
}

impl Link {
    /// How long a probe may go unanswered before it counts as lost.
    pub fn timeout(&self, period: Duration) -> Duration {
        let rtt = Duration::from_micros(u64::from(self.srtt_us.unwrap_or(0)));
        (period * 2).max(rtt * 4)
    }

    /// Resolves probes that timed out, then records a new one; its sequence number.
    pub fn probe(&mut self, now: Instant, period: Duration, misses: u32) -> (u32, Option<Change>) {
        let change = self.expire(now, period, misses);
        if self.in_flight.is_full() {
            self.in_flight.remove(0);
            self.lost(misses);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight.push((self.next_seq, now));
        (self.next_seq, change)
    }

    fn expire(&mut self, now: Instant, period: Duration, misses: u32) -> Option<Change> {
        let timeout = self.timeout(period);
        let mut change = None;
        while let Some(&(_, sent)) = self.in_flight.first() {
            if sent.saturating_add(timeout) > now {
                break;
            }
            self.in_flight.remove(0);
            change = change.or(self.lost(misses));
        }
        change
    }

    fn record(&mut self, lost: bool) {
        self.lost_bits = (self.lost_bits << 1) | u64::from(lost);
        self.resolved = (self.resolved + 1).min(HISTORY);
    }

    fn lost(&mut self, misses: u32) -> Option<Change> {
        // While down, probes measure the outage, not the link's loss.
        if self.up || !self.was_up {
            self.record(true);
        }
        self.answered_in_a_row = 0;
        self.lost_in_a_row += 1;
        if self.up && self.lost_in_a_row >= misses {
            self.up = false;
            return Some(Change::Down);
        }
        None
    }

    /// An answer to probe `seq`; ignored unless that probe is in flight (so a replayed answer
    /// cannot keep a dead link alive).
    pub fn answered(&mut self, now: Instant, seq: u32, misses: u32) -> Option<Change> {
        let i = self.in_flight.iter().position(|&(s, _)| s == seq)?;
        let (_, sent) = self.in_flight.remove(i);
        let sample = now.since(sent).as_micros();
        let sample = u32::try_from(sample).unwrap_or(u32::MAX);
        self.srtt_us = Some(match self.srtt_us {
            None => sample,
            Some(s) => ((u64::from(s) * 7 + u64::from(sample)) / 8) as u32,
        });
        self.record(false);
        self.lost_in_a_row = 0;
        self.answered_in_a_row += 1;
        let rise = if self.was_up { misses } else { 1 };
        if !self.up && self.answered_in_a_row >= rise {
            // The losses that took it down stay in the estimate, so a link that failed
            // earns its way back as they age out instead of winning routes back at once.
            self.up = true;
            self.was_up = true;
            return Some(Change::Up);
        }
        None
    }

    /// Probes lost per mille over the history.
    pub fn loss_pm(&self) -> u16 {
        if self.resolved == 0 {
            return 0;
        }
        let window = (1u64 << self.resolved) - 1;
        let lost = (self.lost_bits & window).count_ones();
        (lost * 1000 / self.resolved) as u16
    }

    /// The link as routes see it: `None` while down or never measured.
    pub fn measure(&self) -> Option<Measure> {
        match (self.up, self.srtt_us) {
            (true, Some(rtt_us)) => Some(Measure {
                rtt_us,
                loss_pm: self.loss_pm(),
            }),
            _ => None,
        }
    }

    /// Whether the link is known to be down (it was up once and lost `misses` probes in a
    /// row since), as opposed to not measured yet.
    pub fn known_down(&self) -> bool {
        self.was_up && !self.up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_millis(250);

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn goes_down_after_misses_and_back_after_as_many_answers() {
        let mut l = Link::default();
        let (s, _) = l.probe(at(0), P, 3);
        assert_eq!(l.answered(at(10), s, 3), Some(Change::Up));
        assert_eq!(l.measure().map(|m| m.rtt_us), Some(10_000));
        // Silence: probes every 250 ms time out after 500 ms; the third loss takes it down.
        let mut changes = Vec::new();
        for t in (250..=1500).step_by(250) {
            changes.push(l.probe(at(t), P, 3).1);
        }
        assert_eq!(
            changes.iter().flatten().collect::<Vec<_>>(),
            [&Change::Down]
        );
        assert!(l.known_down() && l.measure().is_none());
        // A replayed old answer does nothing. Fresh answers bring it back on the third in a
        // row; the probe sent at 1500 ms, lost in the outage, times out at 2000 ms and
        // restarts the count.
        assert_eq!(l.answered(at(1510), s, 3), None);
        let mut ups = Vec::new();
        for t in [1750, 2000, 2250, 2500] {
            let (s, _) = l.probe(at(t), P, 3);
            ups.push(l.answered(at(t + 10), s, 3));
        }
        assert_eq!(ups, [None, None, None, Some(Change::Up)]);
        // The three losses that took it down count; the rest of the outage does not.
        assert_eq!((l.resolved, l.loss_pm()), (8, 375));
    }

    #[test]
    fn loss_is_the_share_of_unanswered_probes() {
        let mut l = Link::default();
        for i in 0..100u64 {
            let (s, _) = l.probe(at(i * 250), P, 3);
            if i % 10 != 0 {
                l.answered(at(i * 250 + 5), s, 3);
            }
        }
        // Ten of 100 lost; the history holds the last 32 resolved probes.
        let loss = l.loss_pm();
        assert!((60..=130).contains(&loss), "{loss}");
        assert!(l.measure().is_some(), "lossy but up");
    }
}
