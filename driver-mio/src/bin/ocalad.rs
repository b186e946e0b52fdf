//! `ocalad --config FILE`: the OCALA daemon. `ocalad --check-config FILE` only checks the file.

use ocala_mio::{config, daemon::Daemon};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: ocalad --config FILE | ocalad --check-config FILE");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, file) = match args.as_slice() {
        [flag, file] if flag == "--config" => (false, PathBuf::from(file)),
        [flag, file] if flag == "--check-config" => (true, PathBuf::from(file)),
        _ => return usage(),
    };
    let loaded = match config::load(&file) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}: ok", file.display());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = Daemon::start(loaded).and_then(|mut d| d.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocalad: {e}");
            ExitCode::from(1)
        }
    }
}
