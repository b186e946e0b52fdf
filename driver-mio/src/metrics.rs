//! The opt-in Prometheus endpoint (`daemon.metrics_listen`): `GET /metrics` answers with the
//! facts `ocala status` shows, in the text exposition format — paths by state and
//! protection, handles, tunnels, traffic per overlay, drops by typed reason, setup latency
//! as a histogram, rekeys, cookie replies, and the data path's batching.

use crate::datapath::DatapathStats;
use ocala_engine::{LatencyHistogram, Status};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The HTTP answer to a request line: the metrics for `GET /metrics`, 404 or 405 otherwise.
pub fn http_answer(request_line: &str, body: impl FnOnce() -> String) -> String {
    let mut words = request_line.split_whitespace();
    let (status, ctype, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
        }
        (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics text.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &LatencyHistogram) {
        self.family(name, "histogram", help);
        let mut cumulative = 0;
        for (ms, n) in LatencyHistogram::BOUNDS_MS.iter().zip(h.buckets) {
            cumulative += n;
            let le = format!("{}", *ms as f64 / 1000.0);
            self.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative);
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum_nanos as f64 / 1e9);
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

/// A path's state without its detail: `connecting (attempt 2)` is `connecting`.
fn state_kind(state: &str) -> &str {
    state.split(" (").next().unwrap_or(state)
}

/// The metrics text for a status and the data path's counters.
pub fn render(s: &Status, d: &DatapathStats) -> String {
    let mut t = Text(String::new());
    let mut paths: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for p in &s.paths {
        *paths
            .entry((state_kind(&p.state), p.protection.as_str()))
            .or_default() += 1;
    }
    t.family(
        "ocala_paths",
        "gauge",
        "Path ends and relay halves, by state and protection.",
    );
    for ((state, protection), n) in paths {
        t.sample(
            "ocala_paths",
            &[("state", state), ("protection", protection)],
            n,
        );
    }
    t.one(
        "ocala_handles",
        "gauge",
        "Names bound to handle addresses.",
        s.handles.len(),
    );
    let mut tunnels: BTreeMap<&str, u64> = BTreeMap::new();
    for tun in &s.tunnels {
        *tunnels.entry(tun.overlay.as_str()).or_default() += 1;
    }
    t.family("ocala_tunnels", "gauge", "Tunnels to peers, by overlay.");
    for (overlay, n) in tunnels {
        t.sample("ocala_tunnels", &[("overlay", overlay)], n);
    }
    t.one(
        "ocala_relayed_paths",
        "gauge",
        "Paths this gateway relays.",
        s.relayed,
    );

    t.family(
        "ocala_overlay_datagrams_total",
        "counter",
        "Datagrams through each overlay.",
    );
    for o in &s.overlays {
        t.sample(
            "ocala_overlay_datagrams_total",
            &[("overlay", &o.overlay), ("direction", "in")],
            o.datagrams_in,
        );
        t.sample(
            "ocala_overlay_datagrams_total",
            &[("overlay", &o.overlay), ("direction", "out")],
            o.datagrams_out,
        );
    }
    t.family(
        "ocala_overlay_bytes_total",
        "counter",
        "Datagram bytes through each overlay.",
    );
    for o in &s.overlays {
        t.sample(
            "ocala_overlay_bytes_total",
            &[("overlay", &o.overlay), ("direction", "in")],
            o.bytes_in,
        );
        t.sample(
            "ocala_overlay_bytes_total",
            &[("overlay", &o.overlay), ("direction", "out")],
            o.bytes_out,
        );
    }
    let c = &s.counters;
    t.family(
        "ocala_tun_packets_total",
        "counter",
        "Packets from and to local apps.",
    );
    t.sample("ocala_tun_packets_total", &[("direction", "in")], c.tun_in);
    t.sample(
        "ocala_tun_packets_total",
        &[("direction", "out")],
        c.tun_out,
    );
    t.one(
        "ocala_relayed_packets_total",
        "counter",
        "Packets relayed for others.",
        c.relayed,
    );
    t.one(
        "ocala_dns_answered_total",
        "counter",
        "DNS queries answered.",
        c.dns_answered,
    );
    t.one("ocala_rekeys_total", "counter", "Rekeys started.", c.rekeys);
    t.one(
        "ocala_cookie_replies_total",
        "counter",
        "Cookie replies to setups from unproven addresses.",
        c.cookie_replies,
    );
    t.one(
        "ocala_ecn_marked_total",
        "counter",
        "Packets delivered marked Congestion Experienced: their receive queue stayed long.",
        c.ecn_marked,
    );
    t.family(
        "ocala_drops_total",
        "counter",
        "Inputs dropped, by typed reason.",
    );
    for (reason, n) in &s.drops {
        t.sample("ocala_drops_total", &[("reason", &reason.to_string())], n);
    }
    t.histogram(
        "ocala_setup_latency_seconds",
        "Time from a path's first setup to its accept, at the initiator.",
        &c.setup_latency,
    );

    t.family(
        "ocala_offload",
        "gauge",
        "Whether the kernel granted an offload (1) or not (0).",
    );
    t.sample("ocala_offload", &[("kind", "tun")], u8::from(d.tun_offload));
    t.sample("ocala_offload", &[("kind", "tun_uso")], u8::from(d.tun_uso));
    t.sample("ocala_offload", &[("kind", "udp_gro")], u8::from(d.udp_gro));
    t.one(
        "ocala_tun_segments",
        "gauge",
        "Most segments the kernel puts in a TUN super-packet (0: its own default).",
        d.tun_segments.unwrap_or(0),
    );
    t.one(
        "ocala_udp_gso_segments",
        "gauge",
        "Datagrams one send may carry (1 without GSO).",
        d.udp_gso,
    );
    t.one(
        "ocala_data_threads",
        "gauge",
        "Threads that make the data path's system calls (2: a writer thread sends and writes).",
        d.threads,
    );
    t.one(
        "ocala_writer_batches_total",
        "counter",
        "Batches of sends and TUN writes the writer thread made.",
        d.handed_off,
    );
    t.family(
        "ocala_syscalls_total",
        "counter",
        "TUN reads and writes and overlay receives and sends.",
    );
    t.sample("ocala_syscalls_total", &[("call", "tun_read")], d.tun_reads);
    t.sample(
        "ocala_syscalls_total",
        &[("call", "tun_write")],
        d.sent.tun_writes,
    );
    t.sample(
        "ocala_syscalls_total",
        &[("call", "udp_receive")],
        d.udp_receives,
    );
    t.sample(
        "ocala_syscalls_total",
        &[("call", "udp_send")],
        d.sent.udp_sends,
    );
    t.one(
        "ocala_tun_joined_packets_total",
        "counter",
        "Packets written to the TUN inside joined super-packets.",
        d.sent.tun_joined,
    );
    t.one(
        "ocala_tun_in_place_packets_total",
        "counter",
        "Packets written to the TUN from the receive buffer they arrived in.",
        d.tun_in_place,
    );
    t.one(
        "ocala_bad_tun_reads_total",
        "counter",
        "TUN reads whose offload header could not be used.",
        d.bad_tun_reads,
    );
    t.one(
        "ocala_udp_send_errors_total",
        "counter",
        "Overlay sends the kernel refused.",
        d.sent.udp_send_errors,
    );
    t.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocala_engine::{DropReason, OverlayCounters, PathStatus};

    #[test]
    fn text_format_with_cumulative_buckets_and_escaped_labels() {
        let mut s = Status::default();
        for (state, protection) in [
            ("up", "encrypt"),
            ("up", "encrypt"),
            ("connecting (attempt 2)", "plain"),
        ] {
            s.paths.push(PathStatus {
                name: "bob.udp".into(),
                role: "initiator".into(),
                state: state.into(),
                protection: protection.into(),
                cipher: None,
                partial_checksums: false,
                label: 1,
                peer_label: 2,
            });
        }
        s.overlays.push(OverlayCounters {
            overlay: "u\"dp".into(),
            bytes_out: 99,
            ..Default::default()
        });
        s.drops.push((DropReason::UnknownLabel, 3));
        for ms in [1, 3, 3, 7000] {
            s.counters
                .setup_latency
                .observe(std::time::Duration::from_millis(ms));
        }
        let d = DatapathStats {
            tun_uso: true,
            threads: 2,
            handed_off: 12,
            tun_segments: Some(45),
            tun_in_place: 5,
            ..Default::default()
        };
        let text = render(&s, &d);
        for line in [
            "ocala_data_threads 2",
            "ocala_tun_segments 45",
            "ocala_offload{kind=\"tun_uso\"} 1",
            "ocala_writer_batches_total 12",
            "ocala_tun_in_place_packets_total 5",
            "ocala_paths{state=\"up\",protection=\"encrypt\"} 2",
            "ocala_paths{state=\"connecting\",protection=\"plain\"} 1",
            "ocala_overlay_bytes_total{overlay=\"u\\\"dp\",direction=\"out\"} 99",
            "ocala_drops_total{reason=\"unknown label\"} 3",
            "ocala_setup_latency_seconds_bucket{le=\"0.001\"} 1",
            "ocala_setup_latency_seconds_bucket{le=\"0.005\"} 3",
            "ocala_setup_latency_seconds_bucket{le=\"5\"} 3",
            "ocala_setup_latency_seconds_bucket{le=\"+Inf\"} 4",
            "ocala_setup_latency_seconds_sum 7.007",
            "ocala_setup_latency_seconds_count 4",
            "# TYPE ocala_setup_latency_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn only_get_metrics_is_served() {
        let ok = http_answer("GET /metrics HTTP/1.1", || "x 1\n".into());
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nx 1\n"),
            "{ok}"
        );
        assert!(ok.contains("Content-Length: 4\r\n"));
        assert!(http_answer("GET / HTTP/1.1", String::new).starts_with("HTTP/1.1 404"));
        assert!(http_answer("POST /metrics HTTP/1.1", String::new).starts_with("HTTP/1.1 405"));
        assert!(http_answer("", String::new).starts_with("HTTP/1.1 405"));
    }
}
