//! `ocalad --config FILE [--log-format text|json]`: the OCALA daemon. `ocalad --check-config
//! FILE` only checks the file. Logs go to stderr: text (coloured only on a terminal), or one
//! JSON object per line for log collectors.

use ocala_mio::{config, daemon::Daemon};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: ocalad --config FILE [--log-format text|json] | ocalad --check-config FILE");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut run, mut json) = (None, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next().map(String::as_str)) {
            ("--config", Some(f)) => run = Some((false, PathBuf::from(f))),
            ("--check-config", Some(f)) => run = Some((true, PathBuf::from(f))),
            ("--log-format", Some("json")) => json = true,
            ("--log-format", Some("text")) => json = false,
            _ => return usage(),
        }
    }
    let Some((check, file)) = run else {
        return usage();
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = Daemon::start(loaded).and_then(|mut d| d.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocalad: {e}");
            ExitCode::from(1)
        }
    }
}
