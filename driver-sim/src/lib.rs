//! `ocala-sim`: many OCALA engines in one deterministic in-memory network. Scenario files
//! describe nodes, links, apps and faults; a run prints a summary and a digest of its whole
//! trace, the same for the same seed on every machine.

pub mod apps;
pub mod control;
pub mod fleets;
pub mod hoststack;
pub mod identity;
pub mod legacy;
pub mod nat;
pub mod outcome;
pub mod progress;
pub mod random_faults;
pub mod report;
pub mod resolver;
pub mod scenario;
pub mod sim;
pub mod tcp;

pub use outcome::Outcome;
pub use scenario::Scenario;
pub use sim::Sim;

/// The scenario `ocala-sim` runs when given no file: the README's main command.
pub const QUICKSTART: &str = include_str!("../scenarios/quickstart.toml");

/// Parses and runs a scenario text.
pub fn run_text(file: &str, text: &str, seed: Option<u64>) -> Result<Outcome, String> {
    run_text_with(file, text, seed, false)
}

/// Like [`run_text`]; with `random_faults`, faults chosen by the seed are added first
/// (`Scenario::add_random_faults`).
pub fn run_text_with(
    file: &str,
    text: &str,
    seed: Option<u64>,
    random_faults: bool,
) -> Result<Outcome, String> {
    let options = RunOptions {
        seed,
        random_faults,
        capture: None,
        control_log: false,
        series: false,
    };
    run_with(file, text, &options, &mut |_, _| {})
}

/// How to run a scenario, beyond what its file says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    /// The seed for everything random, instead of the scenario's own.
    pub seed: Option<u64>,
    /// Add faults chosen by the seed first (`Scenario::add_random_faults`).
    pub random_faults: bool,
    /// Keep links' traffic for pcap files (`Sim::capture`): `Some` of the links named
    /// `a-b`, every link when that list is empty; `None` keeps nothing.
    pub capture: Option<Vec<String>>,
    /// Keep the control log (`Outcome::control`), as the handshake snapshots do.
    pub control_log: bool,
    /// Keep each app's RTT and goodput over time (`Outcome::rtt_csv`, `goodput_csv`), as
    /// `--csv` and reports do.
    pub series: bool,
}

/// Parses and runs a scenario text as `options` say; `progress` is called now and then
/// with the simulated time and the end (`Sim::run_watched`).
pub fn run_with(
    file: &str,
    text: &str,
    options: &RunOptions,
    progress: &mut dyn FnMut(ocala_engine::Instant, ocala_engine::Instant),
) -> Result<Outcome, String> {
    let mut sc = Scenario::parse(file, text)?;
    if options.random_faults {
        let s = options.seed.unwrap_or(sc.seed);
        sc.add_random_faults(s);
    }
    let mut sim = Sim::new(sc, options.seed)?;
    if let Some(links) = &options.capture {
        sim.capture(links).map_err(|e| format!("{file}: {e}"))?;
    }
    if options.control_log {
        sim.keep_control_log();
    }
    if options.series {
        sim.keep_series();
    }
    Ok(sim.run_watched(progress))
}
