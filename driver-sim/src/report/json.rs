//! `summary.json`: the run's results as JSON, for scripts and for comparing runs. The page
//! (`html.rs`) shows the same [`Summary`], so the two never disagree.

use crate::outcome::{
    AppResult, DropCount, FaultNote, NetworkTotals, NodeCount, NodeNote, Outcome, PathSetup,
};
use serde::Serialize;

/// Everything a report says about a run.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub scenario: &'a str,
    pub description: &'a str,
    pub seed: u64,
    pub duration_ms: u64,
    pub digest: &'a str,
    /// No expectation failed and no engine reported an error.
    pub passed: bool,
    pub apps: &'a [AppResult],
    pub paths: &'a [PathSetup],
    pub relayed: &'a [NodeCount],
    pub setup_failures: &'a [NodeNote],
    pub paths_down: &'a [NodeNote],
    pub drops: &'a [DropCount],
    pub middleboxes: &'a [NodeNote],
    pub faults: &'a [FaultNote],
    pub network: NetworkTotals,
    pub invariants: Invariants<'a>,
    pub expectations_failed: &'a [String],
    /// The pcap files of the report.
    pub links: Vec<LinkFile>,
    /// The plots of the report (`rtt.svg`, `goodput.svg`), those it has.
    pub plots: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct Invariants<'a> {
    /// Checks run (after every step).
    pub checks: u64,
    pub violations: &'a [String],
}

/// A link's pcap file, and what is in it.
#[derive(Debug, Serialize)]
pub struct LinkFile {
    pub link: String,
    /// Its path inside the report folder.
    pub file: String,
    pub frames: usize,
    /// UDP payload bytes in all.
    pub bytes: usize,
}

impl<'a> Summary<'a> {
    pub fn new(out: &'a Outcome, plots: Vec<&'static str>) -> Summary<'a> {
        let links = out
            .links
            .iter()
            .map(|l| LinkFile {
                link: l.name.clone(),
                file: super::pcap_path(&l.name),
                frames: l.frames.len(),
                bytes: l.frames.iter().map(|f| f.payload.len()).sum(),
            })
            .collect();
        Summary {
            scenario: &out.scenario,
            description: &out.description,
            seed: out.seed,
            duration_ms: out.duration_ms,
            digest: &out.digest,
            passed: out.failures.is_empty(),
            apps: &out.apps,
            paths: &out.paths,
            relayed: &out.relayed,
            setup_failures: &out.setup_failures,
            paths_down: &out.paths_down,
            drops: &out.drops,
            middleboxes: &out.middleboxes,
            faults: &out.faults,
            network: out.network,
            invariants: Invariants {
                checks: out.checks,
                violations: &out.violations,
            },
            expectations_failed: &out.failures,
            links,
            plots,
        }
    }

    /// The JSON text, indented, with a final newline.
    pub fn to_json(&self) -> Result<String, String> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        text.push('\n');
        Ok(text)
    }
}
