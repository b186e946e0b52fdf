//! App models: what a legacy program does on a simulated host. Each looks a name up through
//! the host's resolver (the engine's sentinel), then talks to the address it got back.

use crate::outcome::{millis, AppResult, Ede, Lookup, Outage, RttStats};
use crate::resolver::Answer;
use crate::scenario::AppKind;
use ocala_engine::Instant;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// The width of a bin of goodput over time.
pub const GOODPUT_BIN: Duration = Duration::from_millis(100);

/// Requests lost in a row that make an outage in the summary (fewer are plain loss).
pub const OUTAGE_RUN: u32 = 3;

/// How long a stub resolver waits before asking again, and how often it asks.
pub const DNS_RETRY: Duration = Duration::from_secs(2);
pub const DNS_TRIES: u32 = 4;

/// Where an app stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    NotStarted,
    /// Waiting for a DNS answer; `tries` queries sent so far.
    Resolving {
        tries: u32,
    },
    /// Sending to the address the lookup gave.
    Talking {
        target: IpAddr,
        next_seq: u32,
    },
    Done,
}

/// One app model's state and what it saw.
#[derive(Debug, Clone)]
pub struct App {
    pub node: usize,
    pub kind: AppKind,
    pub start: Instant,
    /// UDP client port, and ICMP echo identifier.
    pub port: u16,
    pub phase: Phase,
    pub answer: Option<Answer>,
    pub lookup_time: Option<Duration>,
    /// Every request by sequence number: when it was sent, and its RTT once answered.
    pub log: BTreeMap<u32, (Instant, Option<Duration>)>,
    pub sent: u32,
    /// The step it is waiting for.
    pub wake: Option<Instant>,
    /// On a legacy host behind a legacy client gateway (`node`): the host's index among
    /// the simulator's legacy hosts. `None`: on the node itself.
    pub lan: Option<usize>,
    /// A TCP app's connection: when it was established and when its work was done.
    pub connected: Option<Instant>,
    pub finished: Option<Instant>,
    /// Why a TCP app's connection ended before its work was done.
    pub failure: Option<String>,
    /// A bulk transfer's progress: bytes acknowledged, each time the count moved.
    pub acked: Vec<(Instant, u64)>,
    /// The paper's figure for the same measurement, to print beside ours.
    pub paper: Option<String>,
    /// Whether its name asks for encryption end to end, so its requests must never be seen
    /// in clear on a link.
    pub secret: bool,
    /// The host that answered its requests so far.
    pub answered_by: Option<crate::sim::Stack>,
    /// On a fleet, what every member runs (the summary's one line for them all).
    pub fleet: Option<String>,
}

impl App {
    pub fn new(node: usize, kind: AppKind, start: Instant, port: u16) -> App {
        App {
            node,
            kind,
            start,
            port,
            phase: Phase::NotStarted,
            answer: None,
            lookup_time: None,
            log: BTreeMap::new(),
            sent: 0,
            wake: None,
            lan: None,
            secret: false,
            answered_by: None,
            fleet: None,
            connected: None,
            finished: None,
            failure: None,
            acked: Vec::new(),
            paper: None,
        }
    }

    /// The name the app looks up.
    pub fn name(&self) -> Option<&str> {
        self.kind.name()
    }

    /// The record type it asks for.
    pub fn qtype(&self) -> String {
        match &self.kind {
            AppKind::Lookup { qtype, .. } => qtype.clone(),
            AppKind::Ping { ipv6: true, .. } => "AAAA".into(),
            _ => "A".into(),
        }
    }

    /// A reply (echo or UDP) for sequence number `seq` arrived.
    pub fn on_reply(&mut self, now: Instant, seq: u32) {
        if let Some((sent, rtt @ None)) = self.log.get_mut(&seq) {
            *rtt = Some(now.since(*sent));
        }
    }

    /// A request went out.
    pub fn on_send(&mut self, now: Instant, seq: u32) {
        self.sent += 1;
        self.log.insert(seq, (now, None));
    }

    /// RTTs of the answered requests, in the order sent.
    pub fn rtts(&self) -> Vec<Duration> {
        self.log.values().filter_map(|(_, r)| *r).collect()
    }

    /// Every run of unanswered requests between answered ones, in order: how many, and the
    /// time from the first of them to the next request that was answered (the outage an app
    /// saw).
    pub fn gaps(&self) -> Vec<(u32, Duration)> {
        let mut gaps = Vec::new();
        let mut run: Option<(u32, Instant)> = None;
        let mut answered_before = false;
        for &(sent, rtt) in self.log.values() {
            match (rtt, run) {
                (None, None) if answered_before => run = Some((1, sent)),
                (None, Some((n, first))) => run = Some((n + 1, first)),
                (Some(_), Some((n, first))) => {
                    gaps.push((n, sent.since(first)));
                    run = None;
                }
                _ => {}
            }
            answered_before |= rtt.is_some();
        }
        gaps
    }

    /// The longest of the [`gaps`](App::gaps).
    pub fn longest_outage(&self) -> Option<(u32, Duration)> {
        self.gaps().into_iter().max_by_key(|&(_, gap)| gap)
    }

    /// The [`gaps`](App::gaps) of `OUTAGE_RUN` or more lost in a row: outages (shorter runs
    /// are loss).
    pub fn outages(&self) -> Vec<(u32, Duration)> {
        let mut gaps = self.gaps();
        gaps.retain(|&(n, _)| n >= OUTAGE_RUN);
        gaps
    }

    /// The smallest, median and largest RTT of the answered requests; `None` when none was.
    pub fn rtt_stats(&self) -> Option<[Duration; 3]> {
        let mut sorted = self.rtts();
        sorted.sort();
        let median = *sorted.get(sorted.len() / 2)?;
        Some([*sorted.first()?, median, *sorted.last()?])
    }

    /// What it asked for and saw, as a record for reports.
    pub fn result(&self, index: usize, host: &str) -> AppResult {
        let name = match &self.kind {
            AppKind::Lookup { name, .. }
            | AppKind::Ping { name, .. }
            | AppKind::Udp { name, .. }
            | AppKind::TcpBulk { name, .. }
            | AppKind::TcpRequest { name, .. } => name,
            AppKind::Garbage { target, .. } | AppKind::Flood { target, .. } => target,
        };
        let lookup = self.answer.as_ref().map(|a| Lookup {
            rcode: a.rcode.clone(),
            addresses: a.addrs.iter().map(ToString::to_string).collect(),
            names: a.names.clone(),
            ede: a.ede.clone().map(|(code, text)| Ede { code, text }),
            time_ms: self.lookup_time.map(millis),
        });
        AppResult {
            index,
            host: host.to_string(),
            kind: self.kind.tag().to_string(),
            name: name.clone(),
            lookup,
            sent: self.sent,
            received: self.rtts().len() as u32,
            acked_bytes: self.acked_bytes(),
            goodput_mbps: self.goodput_mbps(),
            rtt_ms: self.rtt_stats().map(|[min, median, max]| RttStats {
                min: millis(min),
                median: millis(median),
                max: millis(max),
            }),
            outages: self
                .outages()
                .into_iter()
                .map(|(lost, gap)| Outage {
                    lost,
                    ms: millis(gap),
                })
                .collect(),
        }
    }

    /// RTT over time: `seq,sent_ms,rtt_ms` with an empty RTT for a lost request.
    pub fn rtt_csv(&self) -> String {
        let mut out = String::from("seq,sent_ms,rtt_ms\n");
        for (seq, (sent, rtt)) in &self.log {
            let rtt = rtt.map_or(String::new(), |r| {
                format!("{:.3}", r.as_secs_f64() * 1000.0)
            });
            out.push_str(&format!(
                "{seq},{:.3},{rtt}\n",
                sent.as_nanos() as f64 / 1e6
            ));
        }
        out
    }

    /// Bytes a bulk transfer has had acknowledged.
    pub fn acked_bytes(&self) -> u64 {
        self.acked.last().map_or(0, |&(_, b)| b)
    }

    /// A bulk transfer's goodput in Mbit/s, from connecting to its last acknowledged byte.
    pub fn goodput_mbps(&self) -> Option<f64> {
        let start = self.connected?;
        let &(end, bytes) = self.acked.last()?;
        let secs = end.since(start).as_secs_f64();
        (secs > 0.0).then(|| bytes as f64 * 8.0 / secs / 1e6)
    }

    /// Goodput over time, in bins of [`GOODPUT_BIN`]: `t_ms,mbps` at each bin's end.
    pub fn goodput_csv(&self) -> String {
        let mut out = String::from("t_ms,mbps\n");
        let Some(start) = self.connected else {
            return out;
        };
        let bin = GOODPUT_BIN.as_nanos() as u64;
        let mut edge = start.as_nanos() + bin;
        let mut before = 0u64;
        let mut last = 0u64;
        let mut samples = self.acked.iter().peekable();
        let end = self.acked.last().map_or(start, |&(t, _)| t);
        while edge < end.as_nanos() + bin {
            while let Some(&&(t, b)) = samples.peek() {
                if t.as_nanos() > edge {
                    break;
                }
                last = b;
                samples.next();
            }
            let mbps = (last - before) as f64 * 8.0 / GOODPUT_BIN.as_secs_f64() / 1e6;
            out.push_str(&format!("{:.0},{mbps:.3}\n", edge as f64 / 1e6));
            before = last;
            edge += bin;
        }
        out
    }

    /// The app's one figure to compare: the median RTT of what it exchanged, or a bulk
    /// transfer's goodput.
    pub fn headline(&self) -> Option<String> {
        match self.kind {
            AppKind::TcpBulk { .. } => self.goodput_mbps().map(|g| format!("{g:.2} Mbit/s")),
            _ => self
                .rtt_stats()
                .map(|[_, m, _]| format!("{:.3} ms", m.as_secs_f64() * 1000.0)),
        }
    }

    /// Packets it will send in all, and the interval between them.
    pub fn schedule(&self) -> (u32, Duration) {
        match &self.kind {
            AppKind::Ping {
                count, interval_ms, ..
            }
            | AppKind::Udp {
                count, interval_ms, ..
            } => (*count, Duration::from_millis(*interval_ms)),
            _ => (0, Duration::ZERO),
        }
    }

    /// The summary line of an app that exchanges requests and answers (pings, UDP echo, TCP
    /// requests), checking what it was expected to see.
    fn exchanges(
        &self,
        who: &str,
        what: &str,
        name: &str,
        answer: &str,
        expect: Expect,
        failures: &mut Vec<String>,
    ) -> String {
        let got = self.rtts().len() as u32;
        if let Some(want) = expect.replies {
            if got < want {
                failures.push(format!(
                    "{who}: {what} {name}: expected {want} replies, got {got}"
                ));
            }
        }
        let stats = self.rtt_stats();
        let median = stats.map(|[_, median, _]| median);
        if let Some([low, high]) = expect.median_rtt_ms {
            let got = median.map(|m| m.as_secs_f64() * 1000.0);
            if !got.is_some_and(|m| (low..=high).contains(&m)) {
                failures.push(format!(
                    "{who}: {what} {name}: expected a median RTT in {low}..{high} ms, got {}",
                    median.map_or("none".into(), ms)
                ));
            }
        }
        let rtt = match stats {
            Some([min, median, max]) => format!(
                ", rtt min/median/max {}/{}/{}",
                ms(min),
                ms(median),
                ms(max)
            ),
            None => String::new(),
        };
        let longest = self.longest_outage();
        if let Some(max) = expect.max_outage_ms {
            if let Some((_, gap)) = longest.filter(|(_, g)| g.as_secs_f64() * 1000.0 > max) {
                failures.push(format!(
                    "{who}: {what} {name}: expected no outage over {max} ms, saw {}",
                    ms(gap)
                ));
            }
        }
        let outages: Vec<String> = self
            .outages()
            .into_iter()
            .map(|(n, gap)| format!("{} ({n} lost)", ms(gap)))
            .collect();
        let outage = match longest {
            Some((n, gap)) if outages.is_empty() => {
                format!("; longest gap {} ({n} lost in a row)", ms(gap))
            }
            Some(_) => format!("; outages: {}", outages.join(", ")),
            None => String::new(),
        };
        format!(
            "{who}: {what} {name}: lookup {answer}; {got}/{} replies{rtt}{outage}",
            self.sent
        )
    }

    /// One line for the summary, and whether the app met its expectations.
    pub fn report(&self, who: &str) -> (String, Vec<String>) {
        let mut failures = Vec::new();
        let answer = match &self.answer {
            Some(a) => {
                let mut s = a.rcode.to_ascii_uppercase();
                for ip in &a.addrs {
                    s.push_str(&format!(" {ip}"));
                }
                for n in &a.names {
                    s.push_str(&format!(" {n}"));
                }
                if let Some((code, text)) = &a.ede {
                    s.push_str(&format!(" (EDE {code}: {text})"));
                }
                if let Some(t) = self.lookup_time {
                    s.push_str(&format!(" in {}", ms(t)));
                }
                s
            }
            None => "no answer".into(),
        };
        let line = match &self.kind {
            AppKind::Lookup {
                name,
                qtype,
                expect,
                expect_ede,
            } => {
                if let Some(want) = expect {
                    let got = self
                        .answer
                        .as_ref()
                        .map(|a| a.rcode.as_str())
                        .unwrap_or("no answer");
                    if !got.eq_ignore_ascii_case(want) {
                        failures.push(format!("{who}: lookup {name}: expected {want}, got {got}"));
                    }
                }
                if let Some(want) = expect_ede {
                    let got = self
                        .answer
                        .as_ref()
                        .and_then(|a| a.ede.as_ref())
                        .map(|e| e.1.clone())
                        .unwrap_or_default();
                    if !got.contains(want.as_str()) {
                        failures.push(format!(
                            "{who}: lookup {name}: expected EDE containing '{want}', got '{got}'"
                        ));
                    }
                }
                format!("{who}: lookup {name} {qtype} -> {answer}")
            }
            AppKind::Ping {
                name,
                expect_replies,
                expect_median_rtt_ms,
                expect_max_outage_ms,
                ..
            }
            | AppKind::Udp {
                name,
                expect_replies,
                expect_median_rtt_ms,
                expect_max_outage_ms,
                ..
            } => {
                let what = if matches!(self.kind, AppKind::Ping { .. }) {
                    "ping"
                } else {
                    "udp echo"
                };
                let expect = Expect {
                    replies: *expect_replies,
                    median_rtt_ms: *expect_median_rtt_ms,
                    max_outage_ms: *expect_max_outage_ms,
                };
                self.exchanges(who, what, name, &answer, expect, &mut failures)
            }
            AppKind::TcpRequest {
                name,
                expect_replies,
                expect_median_rtt_ms,
                ..
            } => {
                let expect = Expect {
                    replies: *expect_replies,
                    median_rtt_ms: *expect_median_rtt_ms,
                    max_outage_ms: None,
                };
                let mut line =
                    self.exchanges(who, "tcp requests", name, &answer, expect, &mut failures);
                if let Some(why) = &self.failure {
                    line.push_str(&format!("; {why}"));
                }
                line
            }
            AppKind::TcpBulk {
                name,
                bytes,
                expect_goodput_mbps,
            } => {
                let acked = self.acked_bytes();
                let goodput = self.goodput_mbps();
                if let Some([low, high]) = expect_goodput_mbps {
                    if !goodput.is_some_and(|g| (*low..=*high).contains(&g)) || acked < *bytes {
                        failures.push(format!(
                            "{who}: tcp bulk {name}: expected {bytes} bytes at {low}..{high} Mbit/s, got {acked} bytes at {}",
                            goodput.map_or("none".into(), |g| format!("{g:.2} Mbit/s"))
                        ));
                    }
                }
                let took = match (self.connected, self.acked.last()) {
                    (Some(c), Some(&(t, _))) => format!(" in {}", ms(t.since(c))),
                    _ => String::new(),
                };
                let rate = goodput.map_or(String::new(), |g| format!(", goodput {g:.2} Mbit/s"));
                let failed = self
                    .failure
                    .as_ref()
                    .map_or(String::new(), |w| format!("; {w}"));
                format!(
                    "{who}: tcp bulk {name}: lookup {answer}; {acked}/{bytes} bytes acknowledged{took}{rate}{failed}"
                )
            }
            AppKind::Garbage {
                target,
                count,
                port,
            } => {
                format!("{who}: sprayed {count} garbage datagrams at {target}:{port}")
            }
            AppKind::Flood {
                target,
                count,
                port,
            } => {
                format!("{who}: flooded {target}:{port} with {count} forged secure setups")
            }
        };
        (line, failures)
    }
}

/// What an exchanging app was expected to see.
#[derive(Debug, Clone, Copy)]
struct Expect {
    replies: Option<u32>,
    median_rtt_ms: Option<[f64; 2]>,
    max_outage_ms: Option<f64>,
}

/// Milliseconds with one decimal, for the summary.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::AppKind;

    #[test]
    fn gaps_are_runs_of_losses_between_answers() {
        let kind = AppKind::Lookup {
            name: "x.udp".into(),
            qtype: "A".into(),
            expect: None,
            expect_ede: None,
        };
        let mut a = App::new(0, kind, Instant::ZERO, 1);
        let at = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        // Answered, lost, lost, answered, lost, answered, lost (never recovered).
        for (seq, answered) in [true, false, false, true, false, true, false]
            .iter()
            .enumerate()
        {
            let t = at(seq as u64 * 100);
            a.on_send(t, seq as u32);
            if *answered {
                a.on_reply(t.saturating_add(Duration::from_millis(5)), seq as u32);
            }
        }
        assert_eq!(
            a.gaps(),
            [
                (2, Duration::from_millis(200)),
                (1, Duration::from_millis(100))
            ]
        );
        assert_eq!(a.longest_outage(), Some((2, Duration::from_millis(200))));
        assert_eq!(a.rtts().len(), 3);
        assert!(a
            .rtt_csv()
            .starts_with("seq,sent_ms,rtt_ms\n0,0.000,5.000\n1,100.000,\n"));
    }
}
