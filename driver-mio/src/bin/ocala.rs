//! `ocala`: the control command line. `ocala status [--json]` shows paths, tunnels, handles,
//! counters and drop reasons; `ocala resolve NAME` explains how a name parses and which path
//! it would take; `ocala trace NAME` sets the path up hop by hop and times each hop;
//! `ocala ca init | issue | show` runs a certificate authority for overlay
//! names. `--socket PATH` picks another daemon's control socket; `ocala --help` lists
//! everything (`ocala_mio::cli`).

use clap::Parser;
use ocala_mio::cli::{self, Ca, Command, Ocala};
use ocala_mio::{ca, status};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

fn ask(socket: &str, request: &str) -> Result<String, String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("{socket}: {e} (is ocalad running?)"))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn run(args: Ocala) -> Result<String, String> {
    let socket = args.socket.as_str();
    match args.command {
        Command::Status { json } => ask(socket, "status").and_then(|reply| {
            let v: serde_json::Value =
                serde_json::from_str(&reply).map_err(|e| format!("bad reply: {e}"))?;
            Ok(if json {
                format!("{v:#}\n")
            } else {
                status::to_table(&v)
            })
        }),
        Command::Resolve { name } => ask(socket, &format!("resolve {name}")),
        Command::Trace { name } => {
            ask(socket, &format!("trace {name}")).and_then(|r| match r.strip_prefix("error: ") {
                Some(e) => Err(e.trim_end().to_string()),
                None => Ok(r),
            })
        }
        Command::Ca(Ca::Init { dir }) => ca::init(&dir),
        Command::Ca(Ca::Show { file }) => ca::show(&file),
        Command::Ca(Ca::Issue(i)) => ca::issue(&i.ca, &i.names, i.days, &i.out),
        Command::Ca(Ca::Delegate {
            node,
            middleboxes,
            days,
        }) => ca::delegate(&node, &middleboxes, days),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            cli::completions::<Ocala>(shell, &mut out);
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Command::Man => {
            let mut out = Vec::new();
            cli::man::<Ocala>(&mut out).map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
    }
}

fn main() -> ExitCode {
    match run(Ocala::parse()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ocala: {e}");
            ExitCode::from(1)
        }
    }
}
