//! `ocala trace NAME`, the traceroute of overlay names: the daemon asks its own DNS sentinel
//! for each hop's name in turn, from the first hop outward (`gw.east`, then
//! `bob.west_gw.east`), exactly as an app would, times each answer (the engine answers once
//! the path is up, or SERVFAIL once its setup gave up), and reports per hop the time the
//! setup took, the path's protection and tunnel, or the reason a hop refused. A hop that was
//! already up is reported with the setup time it had.

use mio::Token;
use ocala_engine::config::HandleConfig;
use ocala_engine::dns::message::{build_address_query, id_of, parse_address_answer};
use ocala_engine::dns::trace::PathSummary;
use ocala_engine::wire::ip::{IpView, PROTO_UDP};
use ocala_engine::wire::rewrite::write_udp_packet;
use ocala_engine::wire::transport::UdpView;
use ocala_engine::Instant;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Traces run at once; more are refused.
pub const MAX_TRACES: usize = 4;
/// The ports probes ask from, one per trace slot.
const FIRST_PORT: u16 = 53_600;

/// One hop's outcome.
struct Hop {
    name: String,
    /// Time to the answer, or why there was none.
    result: Result<Duration, String>,
    /// The path was up before the probe, set up in this long.
    already: Option<Option<Duration>>,
    summary: Option<PathSummary>,
}

struct Probe {
    id: u16,
    sent: Instant,
    already: Option<Option<Duration>>,
}

struct Trace {
    client: Token,
    port: u16,
    plan: Vec<String>,
    hops: Vec<Hop>,
    probe: Option<Probe>,
}

/// The traces in progress, and what the engine reported that they quote.
#[derive(Default)]
pub struct Traces {
    active: Vec<Trace>,
    next_id: u16,
    /// Setup time of each path that came up, by name (`Event::PathUp`).
    pub setups: BTreeMap<String, Duration>,
    /// The last reason a setup failed, by name (`Event::SetupFailed`).
    pub failures: BTreeMap<String, String>,
}

/// What to do after a step.
pub enum Next {
    /// Send this query packet to the engine as if from an app.
    Ask(Vec<u8>),
    /// The trace is over: answer its client with this report.
    Done(Token, String),
}

impl Traces {
    /// Starts tracing `plan` (from `Engine::trace_plan`) for the control client `client`;
    /// its queries go out from [`Traces::advance`].
    pub fn start(&mut self, client: Token, plan: Vec<String>) -> Result<(), String> {
        if self.active.len() >= MAX_TRACES {
            return Err(format!("{MAX_TRACES} traces already running"));
        }
        let port = (0..MAX_TRACES as u16)
            .map(|i| FIRST_PORT + i)
            .find(|p| self.active.iter().all(|t| t.port != *p))
            .unwrap_or(FIRST_PORT);
        self.active.push(Trace {
            client,
            port,
            plan,
            hops: Vec::new(),
            probe: None,
        });
        Ok(())
    }

    /// What each trace without a query in flight does next: ask for its next hop, or end.
    /// `summary` says what the engine holds for a name.
    pub fn advance(
        &mut self,
        now: Instant,
        handles: &HandleConfig,
        summary: impl Fn(&str) -> Option<PathSummary>,
    ) -> Vec<Next> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.active.len() {
            let t = &mut self.active[i];
            if t.probe.is_some() {
                i += 1;
                continue;
            }
            let failed = t.hops.last().is_some_and(|h| h.result.is_err());
            let Some(name) = t.plan.get(t.hops.len()).filter(|_| !failed).cloned() else {
                let t = self.active.remove(i);
                out.push(Next::Done(t.client, report(&t)));
                continue;
            };
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            let already = summary(&name)
                .filter(|s| s.state == "up")
                .map(|_| self.setups.get(&name).copied());
            match query(handles, &name, id, t.port) {
                Ok(packet) => {
                    t.probe = Some(Probe {
                        id,
                        sent: now,
                        already,
                    });
                    out.push(Next::Ask(packet));
                    i += 1;
                }
                Err(e) => {
                    t.hops.push(Hop {
                        name,
                        result: Err(e),
                        already: None,
                        summary: None,
                    });
                }
            }
        }
        out
    }

    /// Whether a trace is waiting for answers; deliveries need no look otherwise.
    pub fn running(&self) -> bool {
        !self.active.is_empty()
    }

    /// Takes `packet` if it is the engine's answer to a probe (it is then not an app's);
    /// records the hop.
    pub fn take_answer(
        &mut self,
        packet: &[u8],
        handles: &HandleConfig,
        now: Instant,
        summary: impl Fn(&str) -> Option<PathSummary>,
    ) -> bool {
        let Some((port, dns)) = answer_to_us(packet, handles) else {
            return false;
        };
        let Some(t) = self.active.iter_mut().find(|t| t.port == port) else {
            return false;
        };
        let Some(p) = t.probe.take_if(|p| id_of(dns) == Some(p.id)) else {
            return false;
        };
        let name = t.plan.get(t.hops.len()).cloned().unwrap_or_default();
        let elapsed = now.since(p.sent);
        let result = match parse_address_answer(dns, p.id) {
            Ok(_) => Ok(elapsed),
            Err(e) => Err(self
                .failures
                .get(&name)
                .cloned()
                .unwrap_or_else(|| format!("no path ({e})"))),
        };
        t.hops.push(Hop {
            summary: summary(&name),
            name,
            result,
            already: p.already,
        });
        true
    }

    /// Forgets the traces whose client is gone.
    pub fn retain_clients(&mut self, alive: impl Fn(Token) -> bool) {
        self.active.retain(|t| alive(t.client));
    }
}

/// The IPv4 DNS query packet for `name` from the node's own address and `port`.
fn query(handles: &HandleConfig, name: &str, id: u16, port: u16) -> Result<Vec<u8>, String> {
    let q = build_address_query(id, name, false).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    write_udp_packet(
        &mut out,
        SocketAddr::new(IpAddr::V4(handles.tun_v4), port),
        SocketAddr::new(IpAddr::V4(handles.dns_v4), 53),
        &q,
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}

/// The probe port and DNS message of a packet from the sentinel to the node itself.
fn answer_to_us<'a>(packet: &'a [u8], handles: &HandleConfig) -> Option<(u16, &'a [u8])> {
    let ip = IpView::parse(packet).ok()?;
    if ip.src() != IpAddr::V4(handles.dns_v4) || ip.protocol() != PROTO_UDP {
        return None;
    }
    let udp = UdpView::parse(ip.payload()).ok()?;
    let port = udp.dst_port();
    let ours = (FIRST_PORT..FIRST_PORT + MAX_TRACES as u16).contains(&port);
    (ours && udp.src_port() == 53).then(|| (port, udp.payload()))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The report: one line per hop.
fn report(t: &Trace) -> String {
    let mut out = String::new();
    let Some(last) = t.plan.last() else {
        return out;
    };
    let _ = writeln!(out, "trace {last}: {} hop(s)", t.plan.len());
    let mut before: Option<Duration> = None;
    for (i, h) in t.hops.iter().enumerate() {
        let result = match (&h.result, h.already) {
            (Ok(_), Some(Some(setup))) => format!("up already (set up in {})", ms(setup)),
            (Ok(_), Some(None)) => "up already".to_string(),
            (Ok(d), None) => match before {
                Some(b) if *d > b => format!("up in {} (+{} past hop {i})", ms(*d), ms(*d - b)),
                _ => format!("up in {}", ms(*d)),
            },
            (Err(why), _) => format!("refused: {why}"),
        };
        if let (Ok(d), None) = (&h.result, h.already) {
            before = Some(*d);
        }
        let (protection, tunnel) = h
            .summary
            .as_ref()
            .map_or(("-", "-"), |s| (s.protection.as_str(), s.tunnel.as_str()));
        let _ = writeln!(
            out,
            "{:>3}  {:<32} {}\n     protection {protection}, tunnel {tunnel}",
            i + 1,
            h.name,
            result
        );
    }
    if t.hops.len() < t.plan.len() {
        let _ = writeln!(out, "     (hops past a refusal were not tried)");
    }
    out
}
