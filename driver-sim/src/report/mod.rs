//! `ocala-sim run FILE --report DIR`: a folder that shows a run to a person and to tools —
//! `index.html` (the summary as tables, the plots, links to the rest), `summary.json`,
//! `rtt.svg` and `goodput.svg` (when the run has such apps), and `links/A-B.pcap` for each
//! captured link (`Sim::capture`). Written only from the [`Outcome`], so the same scenario
//! and seed give the same files, byte for byte.

pub mod html;
pub mod json;
pub mod pcap;
pub mod plot;

use crate::outcome::Outcome;
use std::path::Path;

/// Writes the report of `out` into `dir` (created if need be). An error names the file.
pub fn write(dir: &Path, out: &Outcome) -> Result<(), String> {
    let secs = out.duration_ms as f64 / 1000.0;
    let charts = [
        (
            "rtt.svg",
            &out.rtt_csv,
            plot::Chart {
                title: "Round-trip time of ping and UDP apps",
                y_desc: "RTT (ms)",
                x_max: secs,
            },
            ("sent_ms", "rtt_ms"),
        ),
        (
            "goodput.svg",
            &out.goodput_csv,
            plot::Chart {
                title: "Goodput of TCP bulk apps",
                y_desc: "goodput (Mbit/s)",
                x_max: secs,
            },
            ("t_ms", "mbps"),
        ),
    ];
    let mut plots = Vec::new();
    for (file, csv, chart, (x, y)) in &charts {
        if csv.is_empty() {
            continue;
        }
        let mut series = plot::series(csv, x, y);
        for s in &mut series {
            if let Some(label) = app_label(out, &s.label) {
                s.label = label;
            }
        }
        let svg =
            plot::svg(chart, &series).map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
        save(dir, file, svg.as_bytes())?;
        plots.push(*file);
    }
    let summary = json::Summary::new(out, plots);
    for (link, listed) in out.links.iter().zip(&summary.links) {
        save(dir, &listed.file, &pcap::file(&link.frames))?;
    }
    let text = summary
        .to_json()
        .map_err(|e| format!("{}: {e}", dir.join("summary.json").display()))?;
    save(dir, "summary.json", text.as_bytes())?;
    save(dir, "index.html", html::page(&summary).as_bytes())
}

/// A legend text for the series of CSV file `appN-...`: app N's host, kind and name
/// (`app2 alice: ping bob.i3`).
fn app_label(out: &Outcome, stem: &str) -> Option<String> {
    let (index, _) = stem.strip_prefix("app")?.split_once('-')?;
    let a = out.apps.get(index.parse::<usize>().ok()?)?;
    Some(format!("app{index} {}: {} {}", a.host, a.kind, a.name))
}

/// Writes `bytes` to `dir/name`, creating the folders on the way; errors name the file.
fn save(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    let made = match path.parent() {
        Some(parent) => std::fs::create_dir_all(parent),
        None => Ok(()),
    };
    made.and_then(|()| std::fs::write(&path, bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The path of a link's pcap file inside the report: `links/NAME.pcap`, with any character
/// of the name that could leave the folder or upset a shell replaced by `_`.
pub fn pcap_path(link: &str) -> String {
    let name: String = link
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    let name = if name.starts_with('.') {
        format!("_{name}")
    } else {
        name
    };
    format!("links/{name}.pcap")
}
