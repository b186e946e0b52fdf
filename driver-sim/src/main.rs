//! `ocala-sim run [FILE] [--seed N] [--csv DIR] [--report DIR [--pcap A-B]...]`: replays a
//! scenario and prints its summary, then `digest: <hex>` as the very last line; with
//! `--csv`, each app's RTT or goodput over time goes to a CSV file in DIR; with
//! `--report`, a report folder (`ocala_sim::report`). A run of more than a few seconds
//! shows a progress bar when stderr is a terminal. Exits 1 when an expectation fails or an
//! engine reports an error, 2 on a bad command line or scenario file, or when a file cannot
//! be written. `ocala-sim --help` lists everything; `completions SHELL` and `man` print what
//! the package installs.

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use std::path::PathBuf;
use std::process::ExitCode;

/// The OCALA simulator: runs many ocala nodes in a deterministic in-memory network and
/// replays a scenario (overlays, gateways, security, faults), printing what happened and a
/// digest that identical runs share.
#[derive(Parser, Debug)]
#[command(name = "ocala-sim", version)]
struct Cli {
    /// What to do; with none, the built-in quickstart scenario runs.
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay a scenario and print its summary, then `digest: <hex>` as the last line.
    Run(Run),
    /// Print shell completions for SHELL.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(clap::Args, Debug, Default)]
struct Run {
    /// A scenario file (TOML); the built-in quickstart scenario when left out.
    file: Option<PathBuf>,
    /// Seed for everything random in the run, instead of the scenario's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Write each ping, UDP and TCP request app's RTT over time, and each TCP bulk app's
    /// goodput over time, as CSV files into DIR.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// Write a report into DIR: index.html, summary.json, RTT and goodput plots (SVG), and
    /// a pcap file of each link's traffic (links/A-B.pcap).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Capture only this link for the report (named after its two nodes, A-B); repeat for
    /// more. Every link without it.
    #[arg(long, value_name = "A-B", requires = "report")]
    pcap: Vec<String>,
    /// `random`: add faults chosen by the seed (links down, lossy, corrupting; nodes
    /// restarting). A failure is reproduced by the same scenario and seed.
    #[arg(long, value_enum)]
    faults: Option<Faults>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Faults {
    Random,
}

fn main() -> ExitCode {
    let run = match Cli::parse().command {
        None => Run::default(),
        Some(Cmd::Run(r)) => r,
        Some(Cmd::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ocala-sim", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Cmd::Man) => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ocala-sim: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let Run {
        file,
        seed,
        csv: csv_dir,
        report,
        pcap,
        faults,
    } = run;
    let file = file.map(|f| f.display().to_string());
    let (name, text) = match &file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => (f.clone(), t),
            Err(e) => {
                eprintln!("{f}: {e}");
                return ExitCode::from(2);
            }
        },
        None => (
            "quickstart (built in)".to_string(),
            ocala_sim::QUICKSTART.to_string(),
        ),
    };
    let options = ocala_sim::RunOptions {
        seed,
        random_faults: faults == Some(Faults::Random),
        // Payloads are kept only for a report that shows them.
        capture: report.as_ref().map(|_| pcap),
        control_log: false,
        series: csv_dir.is_some() || report.is_some(),
    };
    let mut progress = ocala_sim::progress::Progress::on_stderr();
    let started = std::time::Instant::now();
    let result = ocala_sim::run_with(&name, &text, &options, &mut |now, end| {
        progress.update(now, end)
    });
    progress.finish();
    match result {
        Ok(out) => {
            if let Some(dir) = &csv_dir {
                let files: Vec<_> = out.rtt_csv.iter().chain(&out.goodput_csv).collect();
                if let Err(e) = write_csv(dir, &files) {
                    eprintln!("{}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            if let Some(dir) = &report {
                if let Err(e) = ocala_sim::report::write(dir, &out) {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            }
            if faults == Some(Faults::Random) {
                println!("faults: random, chosen by the seed (replay with the same --seed)");
            }
            print!("{}", out.summary);
            // The one line that is not the same in every run: how fast this machine ran it.
            let wall = started.elapsed().as_secs_f64();
            println!(
                "speed: {} deliveries in {wall:.2} s of wall-clock time, {:.0} per second",
                out.network.deliveries,
                out.network.deliveries as f64 / wall.max(1e-9)
            );
            println!("digest: {}", out.digest);
            if out.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn write_csv(dir: &std::path::Path, files: &[&(String, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_of_earlier_releases_still_parse() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["ocala-sim"])
            .unwrap()
            .command
            .is_none());
        let c = Cli::try_parse_from(["ocala-sim", "run", "f.toml", "--seed", "7", "--csv", "d"]);
        let Some(Cmd::Run(r)) = c.unwrap().command else {
            panic!("not a run")
        };
        assert_eq!(
            (r.file, r.seed, r.csv),
            (Some("f.toml".into()), Some(7), Some("d".into()))
        );
        let e = Cli::try_parse_from(["ocala-sim", "run", "--seed", "x"]).unwrap_err();
        assert!(e.to_string().contains("invalid digit"), "{e}");
    }

    #[test]
    fn pcap_needs_a_report() {
        let c = Cli::try_parse_from(["ocala-sim", "run", "--report", "r", "--pcap", "a-b"]);
        let Some(Cmd::Run(r)) = c.unwrap().command else {
            panic!("not a run")
        };
        assert_eq!(
            (r.report, r.pcap),
            (Some("r".into()), vec!["a-b".to_string()])
        );
        let e = Cli::try_parse_from(["ocala-sim", "run", "--pcap", "a-b"]).unwrap_err();
        assert!(e.to_string().contains("--report"), "{e}");
    }
}
