//! The daemon's configuration file: the engine's keys at the top level (as in the simulator's
//! `[nodes.config]`), plus a `[daemon]` table for what only a real host has — the TUN device,
//! the upstream resolver, the control socket, the state file. Errors name the file, the key
//! and what is wrong.

use ocala_engine::config::{
    HandleConfig, HexBytes, Limits, OverlayConfig, RuleConfig, SecurityConfig,
};
use ocala_engine::middlebox::FilterConfig;
use ocala_engine::Config;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    gateway: bool,
    #[serde(default)]
    overlays: Vec<OverlayConfig>,
    #[serde(default)]
    rules: Vec<RuleConfig>,
    #[serde(default)]
    handles: HandleConfig,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    security: SecurityConfig,
    #[serde(default)]
    middlebox: Option<FilterConfig>,
    #[serde(default)]
    legacy_server: Option<ocala_engine::legacy::LegacyServerConfig>,
    #[serde(default)]
    legacy_client: Option<ocala_engine::legacy::LegacyClientConfig>,
}

/// What only the daemon needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// TUN device name.
    pub tun_name: String,
    /// TUN MTU. Leaves room for the IP, UDP and OCALA headers on the underlay
    /// (1500 − 40 − 8 − 5 = 1447 on an IPv6 underlay of MTU 1500).
    pub mtu: u16,
    /// Address the overlay sockets bind to (each on its overlay's port).
    pub bind: IpAddr,
    /// Use the kernel's batching offloads: TCP super-packets through the TUN (TSO, checksum
    /// offload) and UDP GSO/GRO on the overlay sockets, each where the kernel offers it
    /// (`ocala status` says what it granted). Off, every packet takes its own system call.
    pub offload: bool,
    /// Threads that make the data path's system calls: 1, the engine's own; 2, a second
    /// thread writes large batches out (sends and TUN writes) while the engine works on
    /// the next; 0 (the default) chooses 2 where the machine has 4 cores or more.
    pub threads: u8,
    /// CPUs to pin the data path's threads to, in order: the engine thread (which also
    /// serves DNS, the control socket and metrics) takes the first, the writer thread
    /// (`threads = 2`) the second, or the first again; with one thread a second CPU is not
    /// used (`ocala status` shows what was). Empty (the default): the scheduler places them. Worth it where ocalad shares few cores with busy applications, which the
    /// scheduler otherwise now and then stacks on ocalad's core (`benches/README.md`).
    pub cpus: Vec<usize>,
    /// Upstream resolvers for names that are not overlay names; empty means the
    /// `nameserver` lines of /etc/resolv.conf (minus our own sentinel addresses).
    pub upstream_dns: Vec<SocketAddr>,
    /// Milliseconds before an upstream query is sent again (to the next resolver).
    pub upstream_timeout_ms: u64,
    /// Times an upstream query is sent before giving up.
    pub upstream_attempts: u32,
    /// Unix socket where `ocala status` connects.
    pub control_socket: PathBuf,
    /// Userspace mode (`ocalad --userspace`): where the SOCKS5 proxy listens.
    pub socks_listen: SocketAddr,
    /// Userspace mode: where the HTTP CONNECT proxy listens; none to run without it.
    pub http_proxy_listen: Option<SocketAddr>,
    /// Where to serve Prometheus metrics (`GET /metrics`), e.g. `127.0.0.1:9465`; none by
    /// default. The endpoint has no authentication: keep it on loopback or a private network.
    pub metrics_listen: Option<SocketAddr>,
    /// Where handles are checkpointed so apps keep their addresses across restarts (written
    /// whenever a name is bound or released, before an app sees the address); empty
    /// disables checkpoints.
    pub state_file: PathBuf,
    /// Point systemd-resolved at the sentinel for the overlay suffixes only (split DNS), with
    /// `resolvectl dns` / `resolvectl domain` on the TUN device; other names keep going to
    /// the host's usual resolver.
    pub resolved_split_dns: bool,
    /// More domains to route to the sentinel with split DNS (those that rules rewrite, such
    /// as `corp`); the overlay names are always included.
    pub split_dns_domains: Vec<String>,
    /// This node's X25519 static private key, as written by `ocala ca issue` (hex).
    pub static_key_file: PathBuf,
    /// This node's certificate, as written by `ocala ca issue` (hex).
    pub certificate_file: PathBuf,
    /// This node's certificate with delegations to the middleboxes it lets read its secure
    /// paths, as written by `ocala ca delegate` (hex); empty: none may.
    pub chain_file: PathBuf,
    /// Public keys of trusted CAs, as written by `ocala ca init` (hex), one file each.
    pub trust_files: Vec<PathBuf>,
}

impl DaemonConfig {
    /// `threads`, with 0 resolved: a writer thread pays where it has a core of its own
    /// beside the engine's, the kernel's and the apps' work.
    pub fn data_threads(&self) -> u8 {
        match self.threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if cores >= 4 {
                    2
                } else {
                    1
                }
            }
            n => n,
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            tun_name: "ocala0".into(),
            mtu: 1400,
            bind: IpAddr::from([0, 0, 0, 0]),
            offload: true,
            threads: 0,
            cpus: Vec::new(),
            upstream_dns: Vec::new(),
            upstream_timeout_ms: 1500,
            upstream_attempts: 3,
            control_socket: PathBuf::from("/run/ocala/ocalad.sock"),
            metrics_listen: None,
            socks_listen: SocketAddr::from(([127, 0, 0, 1], 1080)),
            http_proxy_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            state_file: PathBuf::new(),
            resolved_split_dns: false,
            split_dns_domains: Vec::new(),
            static_key_file: PathBuf::new(),
            certificate_file: PathBuf::new(),
            chain_file: PathBuf::new(),
            trust_files: Vec::new(),
        }
    }
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub daemon: DaemonConfig,
    pub engine: Config,
}

/// Reads and checks a configuration file. The engine's own checks run too (by building an
/// engine), so `ocalad --check-config` catches everything `ocalad` would.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// Parses configuration text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Loaded, String> {
    let mut f: File = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    read_key_files(file, &f.daemon, &mut f.security)?;
    let engine = Config {
        gateway: f.gateway,
        overlays: f.overlays,
        rules: f.rules,
        handles: f.handles,
        limits: f.limits,
        security: f.security,
        middlebox: f.middlebox,
        legacy_server: f.legacy_server,
        legacy_client: f.legacy_client,
    };
    ocala_engine::Engine::new(engine.clone(), [0; 32], ocala_engine::Instant::ZERO)
        .map_err(|e| format!("{file}: {}: {}", e.key, e.message))?;
    let d = &f.daemon;
    if d.tun_name.is_empty() || d.tun_name.len() > 15 {
        return Err(format!(
            "{file}: daemon.tun_name: '{}' must be 1 to 15 characters",
            d.tun_name
        ));
    }
    if d.mtu < 1280 {
        return Err(format!(
            "{file}: daemon.mtu: {} is below the IPv6 minimum of 1280",
            d.mtu
        ));
    }
    if d.mtu > engine.limits.path_mtu {
        return Err(format!(
            "{file}: daemon.mtu: {} exceeds limits.path_mtu ({}): packets the TUN accepts must fit the path",
            d.mtu, engine.limits.path_mtu
        ));
    }
    if d.threads > 2 {
        return Err(format!(
            "{file}: daemon.threads: {} is not 0 (choose by cores), 1 or 2",
            d.threads
        ));
    }
    if d.cpus.len() > 2 {
        return Err(format!(
            "{file}: daemon.cpus: {} CPUs given, at most 2 are used (the engine thread's, then the writer's)",
            d.cpus.len()
        ));
    }
    if let Some(cpu) = d.cpus.iter().find(|&&c| c >= crate::affinity::MAX_CPUS) {
        return Err(format!(
            "{file}: daemon.cpus: CPU {cpu} is beyond the {} a CPU set can name",
            crate::affinity::MAX_CPUS
        ));
    }
    if d.upstream_attempts == 0 {
        return Err(format!(
            "{file}: daemon.upstream_attempts: must be at least 1"
        ));
    }
    Ok(Loaded {
        daemon: f.daemon,
        engine,
    })
}

/// Reads a hex file written by `ocala ca`; the error names the config key and the file.
pub fn read_hex(file: &str, key: &str, path: &Path) -> Result<HexBytes, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{file}: {key}: {}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|e| format!("{file}: {key}: {}: {e}", path.display()))
}

/// Fills the engine's security section from the key files the `[daemon]` table names.
fn read_key_files(file: &str, d: &DaemonConfig, sec: &mut SecurityConfig) -> Result<(), String> {
    if !d.static_key_file.as_os_str().is_empty() {
        sec.static_key = Some(read_hex(
            file,
            "daemon.static_key_file",
            &d.static_key_file,
        )?);
    }
    if !d.certificate_file.as_os_str().is_empty() {
        sec.certificate = Some(read_hex(
            file,
            "daemon.certificate_file",
            &d.certificate_file,
        )?);
    }
    if !d.chain_file.as_os_str().is_empty() {
        sec.chain = Some(read_hex(file, "daemon.chain_file", &d.chain_file)?);
    }
    for (i, t) in d.trust_files.iter().enumerate() {
        sec.trust
            .push(read_hex(file, &format!("daemon.trust_files[{i}]"), t)?);
    }
    Ok(())
}

/// `nameserver` lines of a resolv.conf, skipping `skip` (our own sentinel addresses: sending
/// our upstream queries back to ourselves would loop).
pub fn resolv_conf_servers(text: &str, skip: &[IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|w| w.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
        .filter(|ip| !skip.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_and_key() {
        let e = parse("x.toml", "gatewy = true").unwrap_err();
        assert!(e.starts_with("x.toml") && e.contains("gatewy"), "{e}");
        let e = parse("x.toml", "[daemon]\nmtu = 500\n").unwrap_err();
        assert!(e.contains("daemon.mtu"), "{e}");
        let e = parse("x.toml", "[daemon]\nthreads = 3\n").unwrap_err();
        assert!(e.starts_with("x.toml: daemon.threads: 3"), "{e}");
        let e = parse("x.toml", "[daemon]\ncpus = [0, 1, 2]\n").unwrap_err();
        assert!(e.starts_with("x.toml: daemon.cpus: 3 CPUs given"), "{e}");
        let e = parse("x.toml", "[daemon]\ncpus = [0, 4096]\n").unwrap_err();
        assert!(
            e.starts_with("x.toml: daemon.cpus: CPU 4096 is beyond"),
            "{e}"
        );
        let e = parse("x.toml", "[daemon]\ncpus = [-1]\n").unwrap_err();
        assert!(
            e.contains("cpus = [-1]") && e.contains("expected usize"),
            "{e}"
        );
        let e = parse(
            "x.toml",
            "[[overlays]]\nname = \"udp\"\nmodule = \"nope\"\nlocal_name = \"a\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("overlays[0].module") && e.contains("nope"),
            "{e}"
        );
        let e = parse("x.toml", "[handles]\npool_v4 = \"1.2.3.4/99\"\n").unwrap_err();
        assert!(e.contains("pool_v4"), "{e}");
        let e = parse("x.toml", "[security]\ncipher = \"des\"\n").unwrap_err();
        assert!(
            e.contains("cipher = \"des\"") && e.contains("expected one of `auto`"),
            "{e}"
        );
        // Whether the CPU runs AES is the daemon's to find out, not the file's to say.
        let e = parse("x.toml", "[security]\nhardware_aes = true\n").unwrap_err();
        assert!(e.contains("hardware_aes"), "{e}");
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
            gateway = true
            [daemon]
            tun_name = "oc1"
            cpus = [1, 0]
            upstream_dns = ["10.0.0.254:53"]
            [[overlays]]
            name = "udp"
            module = "udp"
            local_name = "gw"
            address_book = { bob = "10.0.0.2:4789" }
            [[rules]]
            pattern = '^(.*)\.corp$'
            replace = '${1}.udp'
            [security]
            cipher = "chacha20-poly1305"
        "#;
        let l = parse("x.toml", text).unwrap();
        assert!(l.engine.gateway);
        assert_eq!(
            l.engine.security.cipher,
            ocala_engine::config::CipherPolicy::ChaCha20Poly1305
        );
        assert_eq!(l.daemon.tun_name, "oc1");
        assert_eq!(l.daemon.cpus, [1, 0]);
        assert_eq!(l.engine.overlays[0].address_book.len(), 1);
    }

    #[test]
    fn resolv_conf_skips_our_sentinel() {
        let text = "# comment\nnameserver 198.18.0.2\nnameserver 10.0.0.254\nsearch x\nnameserver fe80::1%eth0\n";
        let got = resolv_conf_servers(text, &["198.18.0.2".parse().unwrap()]);
        assert_eq!(
            got,
            vec![
                "10.0.0.254:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
