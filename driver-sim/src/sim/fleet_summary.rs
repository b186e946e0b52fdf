//! The summary of a scenario with fleets: a fleet's members are alike, so the text summary
//! shows each fleet's nodes, apps and paths as one line apiece (every app and path is still
//! in `Outcome`, and so in `summary.json`).

use crate::apps::{ms, App};
use std::time::Duration;

/// Lines in first-appearance order, each gathering the items that share its label.
pub(super) struct Groups<T> {
    groups: Vec<(String, Vec<T>)>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups { groups: Vec::new() }
    }
}

impl<T> Groups<T> {
    pub(super) fn add(&mut self, label: &str, item: T) {
        match self.groups.iter_mut().find(|(l, _)| l == label) {
            Some((_, items)) => items.push(item),
            None => self.groups.push((label.to_string(), vec![item])),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(String, Vec<T>)> {
        self.groups.iter()
    }
}

/// Smallest, median and largest, as the summary writes them.
fn spread(mut values: Vec<Duration>) -> Option<String> {
    values.sort();
    let median = values.get(values.len() / 2)?;
    Some(format!(
        "{}/{}/{}",
        ms(*values.first()?),
        ms(*median),
        ms(*values.last()?)
    ))
}

/// One line for the same app on every member of a fleet: lookups, requests answered, RTTs
/// over all of them, and how many missed an expectation.
pub(super) fn apps_line(label: &str, apps: &[(&App, bool)]) -> String {
    let n = apps.len();
    let looked_up = apps
        .iter()
        .filter(|(a, _)| {
            a.answer
                .as_ref()
                .is_some_and(|x| x.rcode.eq_ignore_ascii_case("noerror"))
        })
        .count();
    let sent: u64 = apps.iter().map(|(a, _)| u64::from(a.sent)).sum();
    let rtts: Vec<Duration> = apps.iter().flat_map(|(a, _)| a.rtts()).collect();
    let answered = rtts.len();
    let missed = apps.iter().filter(|(_, failed)| *failed).count();
    let rtt = spread(rtts).map_or(String::new(), |s| format!(", rtt min/median/max {s}"));
    format!(
        "{label} on {n} hosts: lookup NOERROR on {looked_up}; {answered}/{sent} replies{rtt}; \
         {missed} missed an expectation"
    )
}

/// One line for the paths a fleet's members set up to names alike.
pub(super) fn paths_line(label: &str, setups: &[(Duration, String)]) -> String {
    let mut protections: Vec<&str> = setups.iter().map(|(_, p)| p.as_str()).collect();
    protections.sort();
    protections.dedup();
    let took = spread(setups.iter().map(|(d, _)| *d).collect()).unwrap_or_default();
    format!(
        "{label}: {} up ({}), setup took min/median/max {took}",
        setups.len(),
        protections.join(", ")
    )
}
