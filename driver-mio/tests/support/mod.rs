//! Network namespaces for end-to-end tests: hosts joined by veth links, each running a real
//! `ocalad`. Everything the topology creates — namespaces, resolv.conf overrides, daemons,
//! servers — is removed when it is dropped, also when a test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a command, returning its output; panics with the command line if it cannot start.
pub fn run(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.join(" ")))
}

/// Runs a command that must succeed.
pub fn must(cmd: &[&str]) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        cmd.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A program's stdout and stderr together, for assertion messages.
#[allow(dead_code)] // not every test binary reads a command's output as text
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stops the test unless it runs as root.
pub fn require_root() {
    assert!(
        run(&["id", "-u"]).stdout.starts_with(b"0"),
        "the end-to-end tests need root (TUN devices, network namespaces)"
    );
}

/// A Python DNS server for a test's namespaces: it answers every A query with `answer`
/// (TTL 60) and every other type with no records, echoing the question. Run it with
/// `python3 -c`.
#[allow(dead_code)] // not every test binary runs a resolver
pub fn resolver(bind: &str, port: u16, answer: [u8; 4]) -> String {
    let [a, b, c, d] = answer;
    format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{bind}", {port}))
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 12:
        continue
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    if question[-4:-2] == b"\x00\x01":
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([{a}, {b}, {c}, {d}])
    else:
        answer = b""
    count = 1 if answer else 0
    s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, count, 0, 0) + question + answer, peer)
"#
    )
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub daemon: Option<Child>,
    /// More command-line arguments for its ocalad.
    pub daemon_args: Vec<String>,
    /// What its ocalad runs under (`setpriv` to drop root, the systemd-resolved wrapper).
    pub prefix: Vec<String>,
}

pub struct Topology {
    pub dir: PathBuf,
    pub hosts: Vec<Host>,
    servers: Vec<Child>,
    /// The daemons' `RUST_LOG` (debug unless a test floods them).
    pub log_filter: &'static str,
}

impl Topology {
    /// Namespaces named `<prefix><host>`; stale ones from an earlier crashed run are removed.
    pub fn new(prefix: &str, hosts: &[&str]) -> Topology {
        let dir = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut t = Topology {
            dir: dir.clone(),
            hosts: Vec::new(),
            servers: Vec::new(),
            log_filter: "debug",
        };
        for h in hosts {
            let ns = format!("{prefix}{h}");
            let _ = run(&["ip", "netns", "del", &ns]);
            must(&["ip", "netns", "add", &ns]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            // Apps in the namespace resolve through ocalad's sentinel address.
            let etc = PathBuf::from("/etc/netns").join(&ns);
            std::fs::create_dir_all(&etc).expect("/etc/netns");
            std::fs::write(
                etc.join("resolv.conf"),
                "nameserver 198.18.0.2\noptions timeout:5 attempts:2\n",
            )
            .expect("resolv.conf");
            t.hosts.push(Host {
                name: h.to_string(),
                ns,
                config: dir.join(format!("{h}.toml")),
                socket: dir.join(format!("{h}.sock")),
                daemon: None,
                daemon_args: Vec::new(),
                prefix: Vec::new(),
            });
        }
        t
    }

    /// Makes `server` the resolver of apps in a host's namespace (a legacy host's gateway).
    #[allow(dead_code)] // only the legacy test has hosts without ocalad
    pub fn set_resolver(&self, host: &str, server: &str) {
        let etc = PathBuf::from("/etc/netns").join(&self.host(host).ns);
        std::fs::write(
            etc.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:5 attempts:2\n"),
        )
        .expect("resolv.conf");
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("host exists")
    }

    fn host_mut(&mut self, name: &str) -> &mut Host {
        self.hosts
            .iter_mut()
            .find(|h| h.name == name)
            .expect("host exists")
    }

    /// A veth link between two hosts with these addresses (CIDR).
    pub fn link(&self, a: &str, a_addr: &str, b: &str, b_addr: &str) {
        let (na, nb) = (&self.host(a).ns, &self.host(b).ns);
        let (ia, ib) = (format!("v-{b}"), format!("v-{a}"));
        must(&[
            "ip", "link", "add", &ia, "netns", na, "type", "veth", "peer", "name", &ib, "netns", nb,
        ]);
        must(&["ip", "-n", na, "addr", "add", a_addr, "dev", &ia]);
        must(&["ip", "-n", nb, "addr", "add", b_addr, "dev", &ib]);
        must(&["ip", "-n", na, "link", "set", &ia, "up"]);
        must(&["ip", "-n", nb, "link", "set", &ib, "up"]);
    }

    /// Runs a command inside a host's namespace.
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.host(host).ns];
        full.extend_from_slice(cmd);
        run(&full)
    }

    /// Like `exec`, but the command must succeed; returns its stdout.
    #[allow(dead_code)] // not every test binary needs a command to succeed
    pub fn must(&self, host: &str, cmd: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.host(host).ns];
        full.extend_from_slice(cmd);
        must(&full)
    }

    /// Starts a long-running server in a host (stopped when the topology is dropped).
    #[allow(dead_code)] // the flood test serves nothing
    pub fn serve(&mut self, host: &str, cmd: &[&str]) {
        let ns = self.host(host).ns.clone();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        self.servers.push(child);
    }

    /// Waits (at most 10 s) until something in `host` listens on `port`: a TCP listener, or
    /// a bound UDP socket when `udp`. Servers started with `serve` take a moment.
    #[allow(dead_code)] // not every test binary waits for a server
    pub fn wait_listening(&self, host: &str, port: u16, udp: bool) {
        let filter = format!("sport = :{port}");
        let flags = if udp { "-Hlun" } else { "-Hltn" };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let out = self.exec(host, &["ss", flags, &filter]);
            if !out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on port {port} in {host}");
    }

    /// Makes a CA for the topology and issues each host a certificate for `<host>.<overlay>`
    /// on each of `overlays`, with the `ocala ca` command line.
    pub fn certify(&self, overlays: &[&str]) {
        let ca = self.dir.join("ca");
        let ocala = env!("CARGO_BIN_EXE_ocala");
        must(&[ocala, "ca", "init", &ca.display().to_string()]);
        for h in &self.hosts {
            let out = self.dir.join(format!("{}-keys", h.name));
            let ca = ca.display().to_string();
            let out = out.display().to_string();
            let names: Vec<String> = overlays.iter().map(|o| format!("{}.{o}", h.name)).collect();
            let mut cmd = vec![ocala, "ca", "issue", "--ca", &ca, "--out", &out];
            for n in &names {
                cmd.extend_from_slice(&["--name", n]);
            }
            must(&cmd);
        }
    }

    /// Adds command-line arguments to `host`'s ocalad.
    #[allow(dead_code)]
    pub fn host_mut_args(&mut self, host: &str, args: &[&str]) {
        let h = self.host_mut(host);
        h.daemon_args.extend(args.iter().map(|a| a.to_string()));
    }

    /// The process id of `host`'s ocalad.
    #[allow(dead_code)]
    pub fn daemon_pid(&self, host: &str) -> Option<u32> {
        self.host(host).daemon.as_ref().map(|c| c.id())
    }

    /// The user id `host`'s ocalad runs as, from /proc.
    #[allow(dead_code)]
    pub fn uid_of_daemon(&self, host: &str) -> Option<u32> {
        let pid = self.daemon_pid(host)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("Uid:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Runs `host`'s ocalad as user `uid` from now on: its keys become that user's, and the
    /// topology's folder takes the files it writes (control socket, state).
    #[allow(dead_code)] // only the userspace test runs a daemon without root
    pub fn run_as(&mut self, host: &str, uid: u32) {
        let keys = self.dir.join(format!("{host}-keys"));
        must(&["chown", "-R", &uid.to_string(), &keys.display().to_string()]);
        must(&["chmod", "1777", &self.dir.display().to_string()]);
        self.host_mut(host).prefix = vec![
            "setpriv".into(),
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ];
    }

    /// Runs `host`'s ocalad beside a real systemd-resolved of its own
    /// (`support/with-resolved.sh`); returns the D-Bus address to reach that resolved at.
    #[allow(dead_code)] // only the main end-to-end test checks split DNS
    pub fn with_resolved(&mut self, host: &str) -> String {
        let dir = self.dir.join(format!("{host}-resolved"));
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/with-resolved.sh"
        );
        self.host_mut(host).prefix = vec![
            "unshare".into(),
            "-m".into(),
            "sh".into(),
            script.into(),
            dir.display().to_string(),
        ];
        format!("unix:path={}/bus", dir.display())
    }

    /// Writes a host's config (the daemon keys are filled in, with its certificate when
    /// `certify` made one, plus `daemon` lines of the caller's) and starts its ocalad.
    pub fn start(&mut self, host: &str, config: &str, daemon: &str) {
        let h = self.host(host);
        let state = self.dir.join(format!("{host}.state.json"));
        let keys = self.dir.join(format!("{host}-keys"));
        let identity = if keys.exists() {
            format!(
                "static_key_file = \"{k}/static.key\"\ncertificate_file = \"{k}/cert\"\ntrust_files = [\"{c}/ca.pub\"]\n",
                k = keys.display(),
                c = self.dir.join("ca").display()
            )
        } else {
            String::new()
        };
        let full = format!(
            "{config}\n[daemon]\ncontrol_socket = \"{}\"\nstate_file = \"{}\"\nupstream_timeout_ms = 300\n{identity}{daemon}",
            h.socket.display(),
            state.display()
        );
        std::fs::write(&h.config, full).expect("config");
        self.launch(host);
    }

    /// (Re)starts a host's ocalad with the config written by `start`.
    pub fn launch(&mut self, host: &str) {
        let (ns, config, args, log) = {
            let h = self.host(host);
            (
                h.ns.clone(),
                h.config.clone(),
                h.daemon_args.clone(),
                self.dir.join(format!("{host}.log")),
            )
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log");
        let prefix = self.host(host).prefix.clone();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(&prefix)
            .args([env!("CARGO_BIN_EXE_ocalad"), "--config"])
            .arg(&config)
            .args(&args)
            .env("RUST_LOG", self.log_filter)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ocalad starts");
        self.host_mut(host).daemon = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if self.ocala(host, &["status", "--json"]).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ocalad on {host} did not come up:\n{}", self.log(host));
    }

    /// Kills a host's ocalad with SIGKILL (a crash: no checkpoint, no goodbye) and waits.
    #[allow(dead_code)] // only the crash test kills
    pub fn kill(&mut self, host: &str) {
        if let Some(mut child) = self.host_mut(host).daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops a host's ocalad with SIGTERM and waits for it.
    pub fn stop(&mut self, host: &str) {
        if let Some(mut child) = self.host_mut(host).daemon.take() {
            // `ip netns exec` execs ocalad, so the child's pid is the daemon's.
            let _ = run(&["kill", "-TERM", &child.id().to_string()]);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `ocala` against a host's daemon; None when it fails.
    pub fn ocala(&self, host: &str, args: &[&str]) -> Option<String> {
        let socket = self.host(host).socket.display().to_string();
        let mut cmd = vec![env!("CARGO_BIN_EXE_ocala"), "--socket", &socket];
        cmd.extend_from_slice(args);
        let out = run(&cmd);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn log(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{host}.log"))).unwrap_or_default()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for h in &names {
            self.stop(h);
        }
        for h in &self.hosts {
            // Whatever a daemon's wrapper started (a private D-Bus and resolved) goes too.
            let pids = run(&["ip", "netns", "pids", &h.ns]);
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = run(&["kill", pid]);
            }
            let _ = run(&["ip", "netns", "del", &h.ns]);
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&h.ns));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
