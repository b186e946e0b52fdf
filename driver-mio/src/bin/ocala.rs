//! `ocala`: the control command line. `ocala status [--json]` shows paths, tunnels, handles,
//! counters and drop reasons; `ocala resolve NAME` explains how a name parses and which path
//! it would take; `ocala ca init | issue | show` runs a certificate authority for overlay
//! names. `--socket PATH` picks another daemon's control socket.

use ocala_mio::{ca, status, DEFAULT_SOCKET};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: ocala [--socket PATH] status [--json]\n       ocala [--socket PATH] resolve NAME\n       ocala ca init DIR\n       ocala ca issue --ca DIR --name NAME [--name NAME ...] [--days N] --out DIR\n       ocala ca show CERT_FILE"
    );
    ExitCode::from(2)
}

fn ask(socket: &str, request: &str) -> Result<String, String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("{socket}: {e} (is ocalad running?)"))?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `ocala ca issue --ca DIR --name NAME ... [--days N] --out DIR`.
fn issue(args: &[&str]) -> Result<String, String> {
    let (mut ca_dir, mut out, mut names, mut days) = (None, None, Vec::new(), 365);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match *flag {
            "--ca" => ca_dir = Some(*value),
            "--out" => out = Some(*value),
            "--name" => names.push(value.to_string()),
            "--days" => {
                days = value
                    .parse()
                    .map_err(|_| format!("--days: '{value}' is not a number"))?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let ca_dir = ca_dir.ok_or("--ca DIR is required")?;
    let out = out.ok_or("--out DIR is required")?;
    ca::issue(Path::new(ca_dir), &names, days, Path::new(out))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = DEFAULT_SOCKET.to_string();
    if args.first().map(String::as_str) == Some("--socket") {
        if args.len() < 2 {
            return usage();
        }
        socket = args.remove(1);
        args.remove(0);
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["status"] | ["status", "--json"] => ask(&socket, "status").and_then(|reply| {
            let v: serde_json::Value =
                serde_json::from_str(&reply).map_err(|e| format!("bad reply: {e}"))?;
            Ok(if words.len() == 2 {
                format!("{v:#}\n")
            } else {
                status::to_table(&v)
            })
        }),
        ["resolve", name] => ask(&socket, &format!("resolve {name}")),
        ["ca", "init", dir] => ca::init(Path::new(dir)),
        ["ca", "show", file] => ca::show(Path::new(file)),
        ["ca", "issue", rest @ ..] => issue(rest),
        _ => return usage(),
    };
    match result {
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
