//! `ocala-sim`: many OCALA engines in one deterministic in-memory network. Scenario files
//! describe nodes, links, apps and faults; a run prints a summary and a digest of its whole
//! trace, the same for the same seed on every machine.

pub mod apps;
pub mod control;
pub mod hoststack;
pub mod identity;
pub mod legacy;
pub mod nat;
pub mod resolver;
pub mod scenario;
pub mod sim;
pub mod tcp;

pub use scenario::Scenario;
pub use sim::{Outcome, Sim};

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
    let mut sc = Scenario::parse(file, text)?;
    if random_faults {
        let s = seed.unwrap_or(sc.seed);
        sc.add_random_faults(s);
    }
    Ok(Sim::new(sc, seed)?.run())
}
