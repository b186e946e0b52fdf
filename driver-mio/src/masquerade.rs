//! The legacy server gateway's half in the kernel: the engine sends each path's packets to
//! the legacy server from an egress address of the path's own (a handle, so in the pools the
//! TUN routes), and this masquerade turns that into the host's own address on the way out.
//! The kernel's connection tracking then maps the server's answers back to the egress
//! address, and its protocol helpers see ordinary NAT traffic, as the paper's Linux NAT did.
//!
//! nftables is used where it exists, iptables otherwise. The rules live in a table (or
//! chain) of the daemon's own, removed when the daemon stops.

use ocala_engine::config::HandleConfig;
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// Installed masquerade rules; dropping this removes them.
pub struct Masquerade {
    remove: Vec<Vec<String>>,
}

fn run(cmd: &[String], stdin: Option<&str>) -> io::Result<()> {
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cmd[0])))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{}: {}",
        cmd.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The nftables script that makes the table: everything from the pools that leaves by
/// another interface than the TUN is masqueraded.
pub fn nft_script(table: &str, tun: &str, handles: &HandleConfig) -> String {
    format!(
        "table inet {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
         ip saddr {v4} oifname != \"{tun}\" masquerade\n    ip6 saddr {v6} oifname != \"{tun}\" masquerade\n  }}\n}}\n",
        v4 = handles.pool_v4,
        v6 = handles.pool_v6,
    )
}

impl Masquerade {
    /// Turns on forwarding and masquerades the pools' addresses leaving by other devices.
    pub fn install(tun: &str, handles: &HandleConfig) -> io::Result<Masquerade> {
        // Packets from the TUN to legacy hosts are forwarded by the kernel.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(|e| io::Error::new(e.kind(), format!("enabling IPv4 forwarding: {e}")))?;
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .map_err(|e| io::Error::new(e.kind(), format!("enabling IPv6 forwarding: {e}")))?;
        let table: String = format!("ocala_{tun}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if Command::new("nft").arg("--version").output().is_ok() {
            // A table left by a daemon that died goes first (an error means there was none).
            let _ = run(&args(&["nft", "delete", "table", "inet", &table]), None);
            run(
                &args(&["nft", "-f", "-"]),
                Some(&nft_script(&table, tun, handles)),
            )?;
            return Ok(Masquerade {
                remove: vec![args(&["nft", "delete", "table", "inet", &table])],
            });
        }
        // Rules installed so far are removed again if a later one fails.
        let mut installed = Masquerade { remove: Vec::new() };
        for (tool, pool) in [
            ("iptables", handles.pool_v4.to_string()),
            ("ip6tables", handles.pool_v6.to_string()),
        ] {
            let rule = |op: &str| {
                args(&[
                    tool,
                    "-t",
                    "nat",
                    op,
                    "POSTROUTING",
                    "-s",
                    &pool,
                    "!",
                    "-o",
                    tun,
                    "-j",
                    "MASQUERADE",
                ])
            };
            let _ = run(&rule("-D"), None);
            run(&rule("-A"), None)?;
            installed.remove.push(rule("-D"));
        }
        Ok(installed)
    }
}

impl Drop for Masquerade {
    fn drop(&mut self) {
        for cmd in &self.remove {
            if let Err(e) = run(cmd, None) {
                tracing::warn!("removing the masquerade: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_masquerades_both_pools_off_the_tun() {
        let s = nft_script("ocala_ocala0", "ocala0", &HandleConfig::default());
        assert!(s.contains("table inet ocala_ocala0"));
        assert!(s.contains("ip saddr 198.18.0.0/15 oifname != \"ocala0\" masquerade"));
        assert!(s.contains("ip6 saddr fd6f:6361:6c61::/48 oifname != \"ocala0\" masquerade"));
        assert!(s.contains("type nat hook postrouting priority srcnat"));
    }
}
