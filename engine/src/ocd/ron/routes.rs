//! Path choice (RON §4.2): for each destination, the direct link or one intermediate member,
//! whichever is best by the tunnel's metric, with hysteresis so that two paths of about the
//! same worth do not take turns.
//!
//! The metrics are the paper's name options: `mindelay` (round-trip time), `minloss` (loss,
//! then delay), `maxbw` (the throughput a TCP flow could expect, from the loss and delay
//! estimates by the square-root formula, as RON's own throughput router does), and the
//! default, which weighs delay with a loss penalty of 1 ms per mille.

/// A link or a path as measured: round-trip time and loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    pub rtt_us: u32,
    pub loss_pm: u16,
}

impl Measure {
    /// Two links in a row: delays add, and a packet must survive both.
    pub fn then(self, next: Measure) -> Measure {
        let (a, b) = (u32::from(self.loss_pm), u32::from(next.loss_pm));
        Measure {
            rtt_us: self.rtt_us.saturating_add(next.rtt_us),
            loss_pm: (a + b - a * b / 1000).min(1000) as u16,
        }
    }

    /// Bits per second a TCP flow could expect (Mathis et al.: MSS / RTT × 1.22 / √p), with
    /// the loss floored at half a probe in 64 (the estimate cannot see less).
    pub fn throughput_bps(&self) -> u64 {
        let rtt = f64::from(self.rtt_us.max(100)) / 1e6;
        let p = (f64::from(self.loss_pm) / 1000.0).max(0.5 / 64.0);
        (1460.0 * 8.0 * 1.22 / (rtt * p.sqrt())) as u64
    }
}

/// What a tunnel optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    Default,
    MinDelay,
    MinLoss,
    MaxBw,
}

impl Metric {
    /// The name option for a metric (`mindelay` in `foo.mindelay.ron`).
    pub fn from_option(o: &str) -> Option<Metric> {
        Some(match o {
            "mindelay" => Metric::MinDelay,
            "minloss" => Metric::MinLoss,
            "maxbw" => Metric::MaxBw,
            _ => return None,
        })
    }

    pub fn option(self) -> &'static str {
        match self {
            Metric::Default => "default",
            Metric::MinDelay => "mindelay",
            Metric::MinLoss => "minloss",
            Metric::MaxBw => "maxbw",
        }
    }

    /// Its code in DATA headers.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Metric {
        match c {
            1 => Metric::MinDelay,
            2 => Metric::MinLoss,
            3 => Metric::MaxBw,
            _ => Metric::Default,
        }
    }

    /// Lower is better.
    fn cost(self, m: &Measure) -> u64 {
        let (rtt, loss) = (u64::from(m.rtt_us), u64::from(m.loss_pm));
        match self {
            Metric::Default => rtt + loss * 1000,
            Metric::MinDelay => rtt,
            Metric::MinLoss => loss * 100_000_000 + rtt,
            Metric::MaxBw => u64::MAX - m.throughput_bps(),
        }
    }

    /// Whether `new` is enough better than `current` to move a tunnel: 10 % better, and for
    /// delay at least 2 ms better.
    fn worth_moving(self, new: &Measure, current: &Measure) -> bool {
        match self {
            Metric::MaxBw => new.throughput_bps() > current.throughput_bps() / 10 * 11,
            _ => {
                let (n, c) = (self.cost(new), self.cost(current));
                n.saturating_add(n / 10).saturating_add(2000) < c
            }
        }
    }
}

/// The first hop of a path: straight to the destination, or to an intermediate member
/// (its index), which relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hop {
    Direct,
    Via(usize),
}

/// The path to take among `candidates` (each usable, with its measure), given the one in
/// use: the best, unless the current one still works and the best is not worth the move.
/// Ties go to the earlier candidate, so the choice is the same on every run.
pub fn choose(
    metric: Metric,
    current: Option<Hop>,
    candidates: impl Iterator<Item = (Hop, Measure)>,
) -> Option<(Hop, Measure)> {
    let mut best: Option<(Hop, Measure)> = None;
    let mut kept: Option<(Hop, Measure)> = None;
    for (hop, m) in candidates {
        if Some(hop) == current {
            kept = Some((hop, m));
        }
        if best.is_none_or(|(_, b)| metric.cost(&m) < metric.cost(&b)) {
            best = Some((hop, m));
        }
    }
    match (kept, best) {
        (Some(k), Some(b)) if !metric.worth_moving(&b.1, &k.1) => Some(k),
        (_, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rtt_ms: u32, loss_pm: u16) -> Measure {
        Measure {
            rtt_us: rtt_ms * 1000,
            loss_pm,
        }
    }

    #[test]
    fn each_metric_picks_its_own_best() {
        let direct = (Hop::Direct, m(10, 100)); // fast, 10 % loss
        let via = (Hop::Via(2), m(30, 0)); // slower, clean
        let pick = |metric| choose(metric, None, [direct, via].into_iter()).map(|(h, _)| h);
        assert_eq!(pick(Metric::MinDelay), Some(Hop::Direct));
        assert_eq!(pick(Metric::MinLoss), Some(Hop::Via(2)));
        // Default: 10 + 100 ms of penalty against 30 ms.
        assert_eq!(pick(Metric::Default), Some(Hop::Via(2)));
        assert_eq!(pick(Metric::MaxBw), Some(Hop::Via(2)));
        assert_eq!(choose(Metric::Default, None, std::iter::empty()), None);
    }

    #[test]
    fn hysteresis_keeps_a_working_path_against_a_slightly_better_one() {
        let a = (Hop::Direct, m(20, 0));
        let b = (Hop::Via(1), m(19, 0));
        let c = (Hop::Via(2), m(10, 0));
        assert_eq!(
            choose(Metric::MinDelay, Some(Hop::Direct), [a, b].into_iter()),
            Some(a)
        );
        assert_eq!(
            choose(Metric::MinDelay, Some(Hop::Direct), [a, b, c].into_iter()),
            Some(c)
        );
        // The current path gone: the best at once.
        assert_eq!(
            choose(Metric::MinDelay, Some(Hop::Via(3)), [a, b].into_iter()),
            Some(b)
        );
    }

    #[test]
    fn paths_combine_delay_and_loss() {
        let p = m(10, 100).then(m(20, 100));
        assert_eq!(p, m(30, 190));
        assert!(m(10, 0).throughput_bps() > m(10, 100).throughput_bps());
        assert!(m(10, 0).throughput_bps() > m(20, 0).throughput_bps());
    }
}
