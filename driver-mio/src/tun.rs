//! The TUN device: opened without packet information (raw IP packets), non-blocking, with the
//! node's addresses on it. The addresses carry the handle pools' routes: with
//! `198.18.0.1/15` on the device, every handle and the DNS sentinel route into it, and the
//! kernel picks `198.18.0.1` as the source of apps' packets.

use ocala_engine::config::HandleConfig;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

/// An open, configured TUN device. Closing it (drop) removes the device and its routes.
///
/// Opened with `IFF_VNET_HDR`: every read and write starts with a [`VnetHdr`]. With offloads
/// on (`TUNSETOFFLOAD`: checksum, TSO for IPv4 and IPv6, and USO where the kernel has it) the
/// kernel hands over TCP and UDP super-packets and partial checksums, which
/// [`crate::offload`] turns into plain packets.
/// The `tun-tap` crate fixes the device's flags when it creates it and has no way to ask for
/// `IFF_VNET_HDR`, so the device is opened here with the same two ioctls it makes plus one.
///
/// [`VnetHdr`]: crate::offload::vnet::VnetHdr
pub struct Tun {
    file: File,
    name: String,
    offload: bool,
    uso: bool,
    segments: Option<u32>,
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

/// `struct ifreq` as TUNSETIFF reads it: a name and the flags.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Creates the device `name` on a new `/dev/net/tun` handle; returns the handle and the name
/// the kernel gave it.
fn create(name: &str) -> io::Result<(File, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short,
        _pad: [0; 22],
    };
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "device name '{name}' is longer than {} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is laid out as.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let given: Vec<u8> = req
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Ok((file, String::from_utf8_lossy(&given).into_owned()))
}

/// Asks the kernel to build TCP super-packets of at most `segments` segments on `dev`
/// (`gso_max_segs`): `segments` full-size datagrams are what one GSO send carries, so a
/// super-packet then leaves in one send and arrives as one GRO train, where the kernel's
/// default (up to 64 KiB) needed a second send for the last few segments of each. Only a
/// matter of speed: a kernel or `ip` without the setting gets a warning and the default.
fn limit_segments(dev: &str, segments: u32) -> Option<u32> {
    let limit = segments.to_string();
    match ip(&["link", "set", "dev", dev, "gso_max_segs", &limit]) {
        Ok(()) => Some(segments),
        Err(e) => {
            tracing::warn!("super-packets keep the kernel's size: {e}");
            None
        }
    }
}

/// Asks for checksum and TCP segmentation offloads, and UDP segmentation (USO) with them
/// where the kernel has it (Linux 6.2 and later; an older one refuses the whole set, and
/// then gets the rest alone). Whether each was granted: (checksum and TCP, UDP).
fn enable_offloads(file: &File) -> (bool, bool) {
    let set = |flags: libc::c_uint| {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                flags as libc::c_ulong,
            ) == 0
        }
    };
    let tcp = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    if set(tcp | libc::TUN_F_USO4 | libc::TUN_F_USO6) {
        (true, true)
    } else {
        (set(tcp), false)
    }
}

impl Tun {
    /// Opens `name` and gives it the node's addresses and `mtu`; asks for offloads when
    /// `offload` is set and reports whether the kernel granted them ([`Tun::offload`],
    /// [`Tun::uso`]), and then for super-packets of at most `segments` segments
    /// ([`Tun::segments`]).
    pub fn open(
        name: &str,
        mtu: u16,
        handles: &HandleConfig,
        offload: bool,
        segments: u32,
    ) -> io::Result<Tun> {
        let (file, dev) = create(name).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("opening TUN {name}: {e} (root and /dev/net/tun needed)"),
            )
        })?;
        let (offload, uso) = if offload {
            enable_offloads(&file)
        } else {
            (false, false)
        };
        let v4 = format!("{}/{}", handles.tun_v4, handles.pool_v4.len);
        let v6 = format!("{}/{}", handles.tun_v6, handles.pool_v6.len);
        ip(&["link", "set", "dev", &dev, "mtu", &mtu.to_string()])?;
        ip(&["addr", "add", &v4, "dev", &dev])?;
        ip(&["-6", "addr", "add", &v6, "dev", &dev, "nodad"])?;
        ip(&["link", "set", "dev", &dev, "up"])?;
        let segments = offload.then(|| limit_segments(&dev, segments)).flatten();
        Ok(Tun {
            file,
            name: dev,
            offload,
            uso,
            segments,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the kernel hands over TCP super-packets and partial checksums.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Whether the kernel also hands over, and takes, UDP super-packets (USO).
    pub fn uso(&self) -> bool {
        self.uso
    }

    /// The most segments the kernel puts in one super-packet, where it took the limit.
    pub fn segments(&self) -> Option<u32> {
        self.segments
    }

    /// Reads one header and packet; `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one header and packet to local apps, in one system call: `parts` are the
    /// header and the packet's pieces, in order (the kernel takes one packet per write).
    pub fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.file).write_vectored(parts)
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
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_the_kernel_does_not_limit_keeps_its_default_size() {
        // `ip` refuses (no such device): a warning and the kernel's own size, not an error.
        assert_eq!(limit_segments("ocala-no-such", 45), None);
    }

    #[test]
    fn split_dns_routes_only_overlay_domains() {
        let cmds = split_dns_commands("ocala0", "198.18.0.2", &["udp".into(), ".corp".into()]);
        assert_eq!(cmds[0], ["dns", "ocala0", "198.18.0.2"]);
        assert_eq!(cmds[1], ["domain", "ocala0", "~udp", "~corp"]);
    }
}
