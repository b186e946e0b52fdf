//! `ocalad --config FILE [--log-format text|json]`: the OCALA daemon. `ocalad --check-config
//! FILE` only checks the file. Logs go to stderr: text (coloured only on a terminal), or one
//! JSON object per line for log collectors. `ocalad --help` lists everything
//! (`ocala_mio::cli`).

use clap::Parser;
use ocala_mio::cli::{self, LogFormat, Ocalad};
use ocala_mio::{config, daemon::Daemon};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Ocalad::parse();
    if let Some(shell) = args.completions {
        cli::completions::<Ocalad>(shell, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if args.man {
        return match cli::man::<Ocalad>(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ocalad: {e}");
                ExitCode::from(1)
            }
        };
    }
    let (check, Some(file)) = (
        args.check_config.is_some(),
        args.check_config.or(args.config),
    ) else {
        // clap requires one of them.
        return ExitCode::from(2);
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
    match args.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let result = Daemon::start(loaded, args.userspace).and_then(|mut d| d.run());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocalad: {e}");
            ExitCode::from(1)
        }
    }
}
