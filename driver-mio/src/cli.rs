//! The command lines of `ocalad` and `ocala`, declared once with clap: parsing, `--help` on
//! every subcommand, `--version`, and the shell completions and man pages generated from the
//! same definitions (`ocalad --completions SHELL`, `ocalad --man`, `ocala completions SHELL`,
//! `ocala man`), which the package installs.

use crate::DEFAULT_SOCKET;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;
use std::io::Write;
use std::path::PathBuf;

/// How the daemon writes its logs (to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The OCALA daemon: runs the overlay convergence engine on a TUN device, answers DNS for
/// overlay names and carries apps' traffic over the overlays they name.
#[derive(Parser, Debug)]
#[command(name = "ocalad", version)]
pub struct Ocalad {
    /// Run with this configuration file.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["check_config", "completions", "man"])]
    pub config: Option<PathBuf>,
    /// Check this configuration file (as ocalad would load it) and exit.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Run without a TUN device and without root: apps reach overlay names through a SOCKS5
    /// proxy (daemon.socks_listen, 127.0.0.1:1080) and an HTTP CONNECT proxy
    /// (daemon.http_proxy_listen, 127.0.0.1:8080) on a userspace TCP/IP stack.
    #[arg(long)]
    pub userspace: bool,
    /// Log format on stderr; RUST_LOG sets the level (info by default).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long)]
    pub man: bool,
}

/// Control and certificates for OCALA: asks a running ocalad what it holds, and runs a
/// certificate authority for overlay names.
#[derive(Parser, Debug)]
#[command(name = "ocala", version)]
pub struct Ocala {
    /// The daemon's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Paths, tunnels, handles, counters, drop reasons and the data path's offloads.
    Status {
        /// The status as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// How a name parses, which rules rewrite it and which path it would take.
    Resolve {
        /// An overlay name such as bob.udp or foo.ron_gw.i3.
        name: String,
    },
    /// Set up a name's path hop by hop, as traceroute does: each hop's setup time,
    /// protection and tunnel, or why it refused.
    Trace {
        /// An overlay name such as bob.west_gw.east.
        name: String,
    },
    /// A certificate authority for overlay names.
    #[command(subcommand)]
    Ca(Ca),
    /// Print shell completions for SHELL.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Subcommand, Debug)]
pub enum Ca {
    /// Create a CA (its signing key and public key) in DIR.
    Init {
        /// Where the CA's files go; created if missing.
        dir: PathBuf,
    },
    /// Issue a node a static key and a certificate for its overlay names.
    Issue(Issue),
    /// Let middleboxes read a node's secure paths: sign a chain of delegations with the
    /// node's identity key (from `ocala ca issue`), written to DIR/chain.
    Delegate {
        /// The node's directory (from `ocala ca issue`).
        #[arg(long, value_name = "DIR")]
        node: PathBuf,
        /// A middlebox's certificate; up to four, nearest the far end first.
        #[arg(long = "middlebox", value_name = "CERT", required = true)]
        middleboxes: Vec<PathBuf>,
        /// Days the delegations are valid (never past the node's certificate).
        #[arg(long, default_value_t = 30)]
        days: u64,
    },
    /// Show what a certificate says.
    Show {
        /// A certificate file written by `ocala ca issue`.
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct Issue {
    /// The CA's directory (from `ocala ca init`).
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// An overlay name the node answers to, such as bob.udp; up to eight.
    #[arg(long = "name", value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
    /// Where the node's static.key and cert go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes completions for `shell` of the command `C` to `out`.
pub fn completions<C: CommandFactory>(shell: Shell, out: &mut dyn Write) {
    let mut cmd = C::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes the man page of the command `C` to `out`.
pub fn man<C: CommandFactory>(out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(C::command()).render(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Ocalad::command().debug_assert();
        Ocala::command().debug_assert();
    }

    #[test]
    fn the_command_lines_of_earlier_releases_still_parse() {
        let d = Ocalad::try_parse_from(["ocalad", "--config", "a.toml", "--log-format", "json"])
            .unwrap();
        assert_eq!(d.config, Some(PathBuf::from("a.toml")));
        assert_eq!(d.log_format, LogFormat::Json);
        let d = Ocalad::try_parse_from(["ocalad", "--check-config", "a.toml"]).unwrap();
        assert_eq!(d.check_config, Some(PathBuf::from("a.toml")));
        assert!(
            Ocalad::try_parse_from(["ocalad"]).is_err(),
            "a file is required"
        );

        let c =
            Ocala::try_parse_from(["ocala", "--socket", "/x.sock", "status", "--json"]).unwrap();
        assert_eq!(c.socket, "/x.sock");
        assert!(matches!(c.command, Command::Status { json: true }));
        let c = Ocala::try_parse_from(["ocala", "resolve", "bob.udp"]).unwrap();
        assert_eq!(c.socket, DEFAULT_SOCKET);
        assert!(matches!(c.command, Command::Resolve { name } if name == "bob.udp"));
        let c = Ocala::try_parse_from([
            "ocala", "ca", "issue", "--ca", "ca", "--name", "a.udp", "--name", "a.i3", "--out", "o",
        ])
        .unwrap();
        let Command::Ca(Ca::Issue(i)) = c.command else {
            panic!("{c:?}")
        };
        assert_eq!((i.names.len(), i.days), (2, 365));
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        let e = Ocala::try_parse_from(["ocala", "ca", "issue", "--ca", "ca", "--out", "o"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--name <NAME>"), "{e}");
        let e = Ocalad::try_parse_from(["ocalad", "--config", "a", "--log-format", "xml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("text") && e.contains("json"), "{e}");
    }

    #[test]
    fn completions_and_man_pages_come_from_the_definitions() {
        let mut bash = Vec::new();
        completions::<Ocala>(Shell::Bash, &mut bash);
        let bash = String::from_utf8(bash).unwrap();
        assert!(bash.contains("ocala") && bash.contains("resolve") && bash.contains("--socket"));
        let mut page = Vec::new();
        man::<Ocalad>(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.contains(".TH ocalad") && page.contains("check\\-config"),
            "{page}"
        );
    }
}
