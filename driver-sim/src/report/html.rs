//! `index.html`: one static page (no scripts) that shows a run's [`Summary`] as tables,
//! shows its plots, and links its pcap files and `summary.json`. Everything from the
//! scenario (names, reasons) is escaped: a scenario file is data.

use super::json::Summary;
use crate::outcome::{AppResult, Lookup};

const STYLE: &str = "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td.n{text-align:right;white-space:nowrap}.ok{color:#060}.bad{color:#b00;font-weight:bold}img{max-width:100%;border:1px solid #ddd}\
pre{white-space:pre-wrap}";

/// The page for `s`.
pub fn page(s: &Summary) -> String {
    let mut h =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h += &format!(
        "<title>ocala-sim: {} (seed {})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(s.scenario),
        s.seed
    );
    h += &format!("<h1>Scenario {}</h1>\n", esc(s.scenario));
    if !s.description.is_empty() {
        h += &format!("<pre>{}</pre>\n", esc(s.description));
    }
    let verdict = if s.passed {
        "<span class=\"ok\">all expectations met</span>".to_string()
    } else {
        format!(
            "<span class=\"bad\">{} expectation(s) failed</span>",
            s.expectations_failed.len()
        )
    };
    h += &format!(
        "<table>\n<tr><th>seed</th><td>{}</td></tr>\n<tr><th>simulated time</th><td>{} ms</td></tr>\n\
         <tr><th>digest</th><td><code>{}</code></td></tr>\n<tr><th>result</th><td>{verdict}</td></tr>\n</table>\n",
        s.seed,
        s.duration_ms,
        esc(s.digest)
    );
    h += "<h2>Apps</h2>\n";
    h += &table(
        &[
            "#",
            "host",
            "kind",
            "name",
            "lookup",
            "replies",
            "RTT min / median / max (ms)",
            "outages",
        ],
        s.apps.iter().map(app_row),
    );
    if !s.plots.is_empty() {
        h += "<h2>Plots</h2>\n";
        for p in &s.plots {
            h += &format!("<p><img src=\"{p}\" alt=\"{p}\"></p>\n");
        }
    }
    h += "<h2>Paths</h2>\n";
    h += &table(
        &["node", "path", "protection", "setup (ms)"],
        s.paths.iter().map(|p| {
            vec![
                p.node.clone(),
                p.name.clone(),
                p.protection.clone(),
                num(p.setup_ms),
            ]
        }),
    );
    for (title, notes) in [
        ("<h3>Setups failed</h3>", s.setup_failures),
        ("<h3>Paths down</h3>", s.paths_down),
        ("<h2>Middleboxes</h2>", s.middleboxes),
    ] {
        if !notes.is_empty() {
            h += &format!("{title}\n");
            h += &table(
                &["node", "what"],
                notes.iter().map(|n| vec![n.node.clone(), n.text.clone()]),
            );
        }
    }
    if !s.relayed.is_empty() {
        h += "<h3>Relayed by gateways</h3>\n";
        h += &table(
            &["node", "paths"],
            s.relayed
                .iter()
                .map(|r| vec![r.node.clone(), r.count.to_string()]),
        );
    }
    h += "<h2>Drops</h2>\n";
    h += &table(
        &["node", "reason", "count"],
        s.drops
            .iter()
            .map(|d| vec![d.node.clone(), d.reason.clone(), d.count.to_string()]),
    );
    if !s.faults.is_empty() {
        h += "<h2>Faults injected</h2>\n";
        h += &table(
            &["at (ms)", "fault"],
            s.faults
                .iter()
                .map(|f| vec![f.at_ms.to_string(), f.text.clone()]),
        );
    }
    let n = &s.network;
    h += "<h2>Network</h2>\n";
    h += &table(
        &[
            "datagrams sent",
            "lost",
            "refused by NATs",
            "corrupted",
            "duplicated",
            "reordered",
            "bad checksums",
            "trace events",
        ],
        std::iter::once(
            [
                n.datagrams,
                n.lost,
                n.nat_refused,
                n.corrupted,
                n.duplicated,
                n.reordered,
                n.bad_checksums,
                n.trace_events,
            ]
            .map(|v| v.to_string())
            .to_vec(),
        ),
    );
    h += "<h2>Invariants and expectations</h2>\n<ul>\n";
    if s.invariants.violations.is_empty() {
        h += &format!(
            "<li class=\"ok\">invariants held after every one of {} steps</li>\n",
            s.invariants.checks
        );
    } else {
        h += &format!(
            "<li class=\"bad\">{} invariant(s) broken, listed below</li>\n",
            s.invariants.violations.len()
        );
    }
    for f in s.expectations_failed {
        h += &format!("<li class=\"bad\">{}</li>\n", esc(f));
    }
    if s.passed {
        h += "<li class=\"ok\">all expectations met</li>\n";
    }
    h += "</ul>\n<h2>Files</h2>\n<ul>\n<li><a href=\"summary.json\">summary.json</a>: this summary as JSON</li>\n";
    for l in &s.links {
        h += &format!(
            "<li><a href=\"{0}\">{0}</a>: link {1}, {2} datagrams, {3} bytes of payload</li>\n",
            esc(&l.file),
            esc(&l.link),
            l.frames,
            l.bytes
        );
    }
    for p in &s.plots {
        h += &format!("<li><a href=\"{p}\">{p}</a></li>\n");
    }
    h += "</ul>\n<p>The pcap files hold what each end sent onto the link (before the link lost, \
          corrupted or duplicated it), as IP and UDP packets stamped with the simulated time.</p>\n\
          </body>\n</html>\n";
    h
}

fn app_row(a: &AppResult) -> Vec<String> {
    let talks = matches!(a.kind.as_str(), "ping" | "udp");
    let asks = talks || a.kind == "lookup";
    vec![
        a.index.to_string(),
        a.host.clone(),
        a.kind.clone(),
        a.name.clone(),
        match &a.lookup {
            Some(l) => lookup(l),
            None if asks => "no answer".into(),
            None => String::new(),
        },
        if talks {
            format!("{}/{}", a.received, a.sent)
        } else {
            String::new()
        },
        a.rtt_ms.map_or(String::new(), |r| {
            format!("{} / {} / {}", num(r.min), num(r.median), num(r.max))
        }),
        a.outages
            .iter()
            .map(|o| format!("{} ms ({} lost)", num(o.ms), o.lost))
            .collect::<Vec<_>>()
            .join(", "),
    ]
}

/// An answer as the summary writes it: rcode, records, EDE, time.
fn lookup(l: &Lookup) -> String {
    let mut s = l.rcode.to_ascii_uppercase();
    for a in l.addresses.iter().chain(&l.names) {
        s += &format!(" {a}");
    }
    if let Some(e) = &l.ede {
        s += &format!(" (EDE {}: {})", e.code, e.text);
    }
    if let Some(t) = l.time_ms {
        s += &format!(" in {} ms", num(t));
    }
    s
}

/// Milliseconds with one decimal, as in the text summary.
fn num(ms: f64) -> String {
    format!("{ms:.1}")
}

/// A table with a header row; every cell is escaped. A table without rows says "none".
fn table(head: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut t = String::from("<table>\n<tr>");
    for c in head {
        t += &format!("<th>{}</th>", esc(c));
    }
    t += "</tr>\n";
    let mut any = false;
    for row in rows {
        any = true;
        t += "<tr>";
        for c in row {
            let class =
                if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit() || b" ./".contains(&b)) {
                    " class=\"n\""
                } else {
                    ""
                };
            t += &format!("<td{class}>{}</td>", esc(&c));
        }
        t += "</tr>\n";
    }
    if !any {
        t += &format!("<tr><td colspan=\"{}\">none</td></tr>\n", head.len());
    }
    t + "</table>\n"
}

/// `text` safe inside an element or a quoted attribute.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_text_is_escaped() {
        assert_eq!(
            esc("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
        let t = table(&["x"], std::iter::once(vec!["<script>".to_string()]));
        assert!(
            t.contains("<td>&lt;script&gt;</td>") && !t.contains("<script>"),
            "{t}"
        );
        assert!(table(&["a", "b"], std::iter::empty()).contains("colspan=\"2\">none"));
    }
}
