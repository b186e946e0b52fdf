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
    pub sent_at: BTreeMap<u32, Instant>,
    pub rtts: Vec<Duration>,
    pub sent: u32,
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
            sent_at: BTreeMap::new(),
            rtts: Vec::new(),
            sent: 0,
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
        if let Some(sent) = self.sent_at.remove(&seq) {
            self.rtts.push(now.since(sent));
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
                ..
            }
            | AppKind::Udp {
                name,
                expect_replies,
                expect_median_rtt_ms,
                ..
            } => {
                let what = if matches!(self.kind, AppKind::Ping { .. }) {
                    "ping"
                } else {
                    "udp echo"
                };
                let got = self.rtts.len() as u32;
                if let Some(want) = expect_replies {
                    if got < *want {
                        failures.push(format!(
                            "{who}: {what} {name}: expected {want} replies, got {got}"
                        ));
                    }
                }
                let mut sorted = self.rtts.clone();
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
                format!(
                    "{who}: {what} {name}: lookup {answer}; {got}/{} replies{rtt}",
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
