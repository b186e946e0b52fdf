//! The legacy gateways' half in the kernel, in one table (or chain set) of the daemon's own,
//! removed when the daemon stops. nftables is used where it exists, iptables otherwise.
//!
//! - A legacy server gateway sends each path's packets to the legacy server from an egress
//!   address of the path's own (a handle, so in the pools the TUN routes); a masquerade turns
//!   that into the host's own address on the way out. The kernel's connection tracking then
//!   maps the server's answers back to the egress address, and its protocol helpers see
//!   ordinary NAT traffic, as the paper's Linux NAT did: FTP control connections from the
//!   pools get the kernel's `ftp` helper (modern kernels assign none by themselves), which
//!   rewrites PORT commands naming the egress address (so, with address negotiation, the
//!   client's own) and opens the way for the server's data connection back.
//! - A legacy client gateway is its LAN's DNS server: queries to any of the host's own
//!   addresses from the LAN are redirected to the engine's DNS address on the TUN, so LAN
//!   clients need only name the gateway as their resolver and route through it. Their
//!   packets to handles are forwarded into the TUN as they are (never masqueraded: the
//!   engine tells the clients apart by address).

use ocala_engine::config::{HandleConfig, Prefix};
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// What the kernel must do for this node's legacy gateway roles.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    /// A legacy server gateway: masquerade the pools leaving by other devices.
    pub server: bool,
    /// A legacy client gateway's LANs: their DNS goes to the engine.
    pub lan: &'a [Prefix],
}

/// Installed rules; dropping this removes them.
pub struct LegacyNat {
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

/// `ip` or `ip6`, as nftables names a prefix's family.
fn nft_family(p: &Prefix) -> &'static str {
    if p.addr.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

/// The engine's DNS address in a prefix's family: where the LAN's queries are redirected.
fn dns_for(handles: &HandleConfig, p: &Prefix) -> String {
    match p.addr {
        std::net::IpAddr::V4(_) => handles.dns_v4.to_string(),
        std::net::IpAddr::V6(_) => handles.dns_v6.to_string(),
    }
}

/// The nftables script that makes the table.
pub fn nft_script(table: &str, tun: &str, handles: &HandleConfig, roles: Roles) -> String {
    let mut s = format!("table inet {table} {{\n");
    if roles.server {
        s += &format!(
            "  ct helper ftp {{\n    type \"ftp\" protocol tcp;\n  }}\n  \
             chain helpers {{\n    type filter hook prerouting priority filter; policy accept;\n    \
             ip saddr {v4} tcp dport 21 ct helper set \"ftp\"\n    \
             ip6 saddr {v6} tcp dport 21 ct helper set \"ftp\"\n  }}\n",
            v4 = handles.pool_v4,
            v6 = handles.pool_v6,
        );
        s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
        // Handles talking to a LAN client stay as they are: that is who the client called.
        for p in roles.lan {
            s += &format!("    {} daddr {p} return\n", nft_family(p));
        }
        s += &format!(
            "    ip saddr {v4} oifname != \"{tun}\" masquerade\n    \
             ip6 saddr {v6} oifname != \"{tun}\" masquerade\n  }}\n",
            v4 = handles.pool_v4,
            v6 = handles.pool_v6,
        );
    }
    if !roles.lan.is_empty() {
        s += "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n";
        for p in roles.lan {
            let (family, dns) = (nft_family(p), dns_for(handles, p));
            // The engine answers DNS over UDP only (stubs retry truncated answers over TCP,
            // and ours are never truncated).
            s += &format!(
                "    iifname != \"{tun}\" {family} saddr {p} fib daddr type local \
                 udp dport 53 dnat {family} to {dns}\n"
            );
        }
        s += "  }\n";
    }
    s + "}\n"
}

/// The iptables rules for the same: tool, table, and the chain and match as `-A` adds them.
fn iptables_rules(
    tun: &str,
    handles: &HandleConfig,
    roles: Roles,
) -> Vec<(String, &'static str, Vec<String>)> {
    let mut rules = Vec::new();
    let tool = |p: &Prefix| {
        if p.addr.is_ipv4() {
            "iptables"
        } else {
            "ip6tables"
        }
    };
    for p in roles.lan {
        let dns = dns_for(handles, p);
        rules.push((
            tool(p).to_string(),
            "nat",
            args(&[
                "PREROUTING",
                "!",
                "-i",
                tun,
                "-s",
                &p.to_string(),
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-p",
                "udp",
                "--dport",
                "53",
                "-j",
                "DNAT",
                "--to-destination",
                &dns,
            ]),
        ));
    }
    if roles.server {
        for p in roles.lan {
            rules.push((
                tool(p).to_string(),
                "nat",
                args(&["POSTROUTING", "-d", &p.to_string(), "-j", "RETURN"]),
            ));
        }
        for pool in [handles.pool_v4, handles.pool_v6] {
            rules.push((
                tool(&pool).to_string(),
                "raw",
                args(&[
                    "PREROUTING",
                    "-s",
                    &pool.to_string(),
                    "-p",
                    "tcp",
                    "--dport",
                    "21",
                    "-j",
                    "CT",
                    "--helper",
                    "ftp",
                ]),
            ));
            rules.push((
                tool(&pool).to_string(),
                "nat",
                args(&[
                    "POSTROUTING",
                    "-s",
                    &pool.to_string(),
                    "!",
                    "-o",
                    tun,
                    "-j",
                    "MASQUERADE",
                ]),
            ));
        }
    }
    rules
}

impl LegacyNat {
    /// Turns on forwarding and installs what the roles need.
    pub fn install(tun: &str, handles: &HandleConfig, roles: Roles) -> io::Result<LegacyNat> {
        // Packets between the TUN and legacy hosts are forwarded by the kernel.
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
                Some(&nft_script(&table, tun, handles, roles)),
            )?;
            return Ok(LegacyNat {
                remove: vec![args(&["nft", "delete", "table", "inet", &table])],
            });
        }
        // Rules installed so far are removed again if a later one fails.
        let mut installed = LegacyNat { remove: Vec::new() };
        for (tool, table, rule) in iptables_rules(tun, handles, roles) {
            let with = |op: &str| {
                let mut cmd = args(&[&tool, "-t", table, op]);
                cmd.extend(rule.iter().cloned());
                cmd
            };
            let _ = run(&with("-D"), None);
            run(&with("-A"), None)?;
            installed.remove.push(with("-D"));
        }
        Ok(installed)
    }
}

impl Drop for LegacyNat {
    fn drop(&mut self) {
        for cmd in &self.remove {
            if let Err(e) = run(cmd, None) {
                tracing::warn!("removing the legacy gateway rules: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_gateway_masquerades_both_pools_off_the_tun() {
        let roles = Roles {
            server: true,
            lan: &[],
        };
        let s = nft_script("ocala_ocala0", "ocala0", &HandleConfig::default(), roles);
        assert!(s.contains("table inet ocala_ocala0"));
        assert!(s.contains("ip saddr 198.18.0.0/15 oifname != \"ocala0\" masquerade"));
        assert!(s.contains("ip6 saddr fd6f:6361:6c61::/48 oifname != \"ocala0\" masquerade"));
        assert!(s.contains("type nat hook postrouting priority srcnat"));
        assert!(s.contains("ip saddr 198.18.0.0/15 tcp dport 21 ct helper set \"ftp\""));
        assert!(!s.contains("dnat"), "{s}");
    }

    #[test]
    fn a_client_gateway_takes_its_lans_dns_and_never_masquerades_toward_them() {
        let lan: Vec<Prefix> = vec![
            "192.168.1.0/24".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ];
        let both = Roles {
            server: true,
            lan: &lan,
        };
        let s = nft_script("t", "ocala0", &HandleConfig::default(), both);
        assert!(
            s.contains(
                "iifname != \"ocala0\" ip saddr 192.168.1.0/24 fib daddr type local udp dport 53 \
             dnat ip to 198.18.0.2"
            ),
            "{s}"
        );
        assert!(s.contains("ip6 saddr fd00:1::/64 fib daddr type local udp dport 53 dnat ip6 to"));
        let ret = s
            .find("ip daddr 192.168.1.0/24 return")
            .expect("return rule");
        assert!(
            ret < s.find("masquerade").unwrap(),
            "the exception comes first: {s}"
        );
        let only_client = Roles {
            server: false,
            lan: &lan,
        };
        let s = nft_script("t", "ocala0", &HandleConfig::default(), only_client);
        assert!(!s.contains("masquerade"), "{s}");
        let ipt = iptables_rules("ocala0", &HandleConfig::default(), only_client);
        assert_eq!(ipt.len(), 2, "{ipt:?}");
        assert_eq!(ipt[0].0, "iptables");
        assert_eq!(ipt[1].0, "ip6tables");
    }
}
