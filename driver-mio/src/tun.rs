//! The TUN device: opened without packet information (raw IP packets), non-blocking, with the
//! node's addresses on it. The addresses carry the handle pools' routes: with
//! `198.18.0.1/15` on the device, every handle and the DNS sentinel route into it, and the
//! kernel picks `198.18.0.1` as the source of apps' packets.

use ocala_engine::config::HandleConfig;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::Command;
use tun_tap::{Iface, Mode};

/// An open, configured TUN device. Closing it (drop) removes the device and its routes.
pub struct Tun {
    iface: Iface,
}

/// Runs `ip` with these arguments; the error says which command failed and why.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

impl Tun {
    /// Opens `name` and gives it the node's addresses and `mtu`.
    pub fn open(name: &str, mtu: u16, handles: &HandleConfig) -> io::Result<Tun> {
        let iface = Iface::without_packet_info(name, Mode::Tun).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening TUN {name}: {e} (root and /dev/net/tun needed)"),
            )
        })?;
        iface.set_non_blocking()?;
        let dev = iface.name().to_string();
        let v4 = format!("{}/{}", handles.tun_v4, handles.pool_v4.len);
        let v6 = format!("{}/{}", handles.tun_v6, handles.pool_v6.len);
        ip(&["link", "set", "dev", &dev, "mtu", &mtu.to_string()])?;
        ip(&["addr", "add", &v4, "dev", &dev])?;
        ip(&["-6", "addr", "add", &v6, "dev", &dev, "nodad"])?;
        ip(&["link", "set", "dev", &dev, "up"])?;
        Ok(Tun { iface })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        self.iface.name()
    }

    /// Reads one packet; `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    /// Writes one packet to local apps.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.iface.send(packet)
    }
}

/// The `resolvectl` commands that send only `domains` (and their subdomains) to the sentinel
/// on `dev`: systemd-resolved's split DNS. Routing-only domains (`~udp`) are not search domains.
pub fn split_dns_commands(dev: &str, sentinel: &str, domains: &[String]) -> Vec<Vec<String>> {
    let mut domain = vec!["domain".to_string(), dev.to_string()];
    domain.extend(
        domains
            .iter()
            .map(|d| format!("~{}", d.trim_start_matches('.'))),
    );
    vec![vec!["dns".into(), dev.into(), sentinel.into()], domain]
}

/// Applies split DNS with `resolvectl`; the settings vanish with the device.
pub fn split_dns(dev: &str, sentinel: &str, domains: &[String]) -> io::Result<()> {
    for args in split_dns_commands(dev, sentinel, domains) {
        let out = Command::new("resolvectl")
            .args(&args)
            .output()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("resolvectl: {e} (is systemd-resolved installed?)"),
                )
            })?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "resolvectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_dns_routes_only_overlay_domains() {
        let cmds = split_dns_commands("ocala0", "198.18.0.2", &["udp".into(), ".corp".into()]);
        assert_eq!(cmds[0], ["dns", "ocala0", "198.18.0.2"]);
        assert_eq!(cmds[1], ["domain", "ocala0", "~udp", "~corp"]);
    }
}
