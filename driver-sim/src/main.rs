//! `ocala-sim run [FILE] [--seed N]`: replays a scenario and prints its summary, then
//! `digest: <hex>` as the very last line. Exits 1 when an expectation fails or an engine
//! reports an error, 2 on a bad command line or scenario file.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: ocala-sim run [FILE] [--seed N]   (no FILE: the built-in quickstart scenario)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut file = None;
    let mut seed = None;
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        None | Some("run") => {}
        Some("-h" | "--help") => return usage(),
        Some(other) => {
            eprintln!("unknown command '{other}'");
            return usage();
        }
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => match it.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(s) => seed = Some(s),
                None => return usage(),
            },
            f if file.is_none() && !f.starts_with('-') => file = Some(f.to_string()),
            _ => return usage(),
        }
    }
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
    match ocala_sim::run_text(&name, &text, seed) {
        Ok(out) => {
            print!("{}", out.summary);
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
