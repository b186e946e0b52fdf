//! `ocala-sim run [FILE] [--seed N] [--csv DIR]`: replays a scenario and prints its summary,
//! then `digest: <hex>` as the very last line; with `--csv`, each ping and UDP app's RTT over
//! time goes to a CSV file in DIR. Exits 1 when an expectation fails or an engine
//! reports an error, 2 on a bad command line or scenario file.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: ocala-sim run [FILE] [--seed N] [--csv DIR]   (no FILE: the built-in quickstart scenario)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut file = None;
    let mut seed = None;
    let mut csv_dir: Option<std::path::PathBuf> = None;
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
            "--csv" => match it.next() {
                Some(d) => csv_dir = Some(d.into()),
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
            if let Some(dir) = &csv_dir {
                if let Err(e) = write_csv(dir, &out.rtt_csv) {
                    eprintln!("{}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
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

fn write_csv(dir: &std::path::Path, files: &[(String, String)]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
