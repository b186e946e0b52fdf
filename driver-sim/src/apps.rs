//! App models: what a legacy program does on a simulated host. Each looks a name up through
//! the host's resolver (the engine's sentinel), then talks to the address it got back.

use crate::resolver::Answer;
use crate::scenario::AppKind;
use ocala_engine::Instant;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

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
        }
    }

    /// The name the app looks up.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            AppKind::Lookup { name, .. }
            | AppKind::Ping { name, .. }
            | AppKind::Udp { name, .. } => Some(name),
            AppKind::Garbage { .. } | AppKind::Flood { .. } => None,
        }
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

    /// The longest run of unanswered requests between answered ones: how many, and the
    /// time from the first of them to the next request that was answered (the outage an app
    /// saw). `None` when nothing was lost in between.
    pub fn longest_outage(&self) -> Option<(u32, Duration)> {
        let mut best: Option<(u32, Duration)> = None;
        let mut run: Option<(u32, Instant)> = None;
        let mut answered_before = false;
        for &(sent, rtt) in self.log.values() {
            match (rtt, run) {
                (None, None) if answered_before => run = Some((1, sent)),
                (None, Some((n, first))) => run = Some((n + 1, first)),
                (Some(_), Some((n, first))) => {
                    let gap = sent.since(first);
                    if best.is_none_or(|(_, g)| gap > g) {
                        best = Some((n, gap));
                    }
                    run = None;
                }
                _ => {}
            }
            answered_before |= rtt.is_some();
        }
        best
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
                let rtts = self.rtts();
                let got = rtts.len() as u32;
                if let Some(want) = expect_replies {
                    if got < *want {
                        failures.push(format!(
                            "{who}: {what} {name}: expected {want} replies, got {got}"
                        ));
                    }
                }
                let mut sorted = rtts;
                sorted.sort();
                let median = sorted.get(sorted.len() / 2).copied();
                if let Some([low, high]) = expect_median_rtt_ms {
                    let got = median.map(|m| m.as_secs_f64() * 1000.0);
                    if !got.is_some_and(|m| (*low..=*high).contains(&m)) {
                        failures.push(format!(
                            "{who}: {what} {name}: expected a median RTT in {low}..{high} ms, got {}",
                            median.map_or("none".into(), ms)
                        ));
                    }
                }
                let rtt = match (sorted.first(), median, sorted.last()) {
                    (Some(min), Some(median), Some(max)) => format!(
                        ", rtt min/median/max {}/{}/{}",
                        ms(*min),
                        ms(median),
                        ms(*max)
                    ),
                    _ => String::new(),
                };
                let longest = self.longest_outage();
                if let Some(max) = expect_max_outage_ms {
                    if let Some((_, gap)) = longest.filter(|(_, g)| g.as_secs_f64() * 1000.0 > *max)
                    {
                        failures.push(format!(
                            "{who}: {what} {name}: expected no outage over {max} ms, saw {}",
                            ms(gap)
                        ));
                    }
                }
                let outage = match longest {
                    Some((n, gap)) => format!("; longest outage {} ({n} lost in a row)", ms(gap)),
                    None => String::new(),
                };
                format!(
                    "{who}: {what} {name}: lookup {answer}; {got}/{} replies{rtt}{outage}",
                    self.sent
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

/// Milliseconds with one decimal, for the summary.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
