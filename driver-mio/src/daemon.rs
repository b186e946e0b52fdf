//! The daemon's event loop: the engine on real time, driven by mio. It reads the TUN and the
//! overlay sockets until `WouldBlock` (with a per-wakeup budget, so one busy source cannot
//! starve the others), carries out the engine's outputs in batches ([`Datapath`]), and
//! sleeps until the engine's next deadline.

use crate::clock::Clock;
use crate::config::{resolv_conf_servers, Loaded};
use crate::control::{Clients, Progress};
use crate::datapath::Datapath;
use crate::socket::{OverlaySocket, MAX_TRAIN};
use crate::tun::Tun;
use crate::upstream::Upstream;
use crate::{state, status};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use ocala_engine::{Command, Engine, Event, Input, Instant, Output, QueryId, UpstreamError};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

const TUN: Token = Token(0);
const SIGNALS: Token = Token(1);
const CONTROL: Token = Token(2);
const UPSTREAM4: Token = Token(3);
const UPSTREAM6: Token = Token(4);
const NETLINK: Token = Token(5);
const METRICS: Token = Token(6);
const OVERLAY_BASE: usize = 16;
/// Control clients' tokens, far above any overlay's.
const CLIENT_BASE: usize = 1 << 20;
/// How long `ocala trace` may take: every hop's setup may need all its attempts.
const TRACE_TIMEOUT: Duration = Duration::from_secs(60);
/// Metrics clients' tokens, above the control clients'.
const METRICS_BASE: usize = 1 << 21;

/// Packets taken from one source per turn before the others get theirs. The budget counts
/// packets, not reads, and a socket receive asks for no more GRO trains than the budget's
/// datagrams need ([`Datapath::receive`]). So a turn on a busy source is about three TUN
/// super-packets (45 segments each) or GRO trains, 190 KiB, a third of a millisecond at
/// 5 Gbit/s, and what the other sources bring waits no longer: echo replies, and a TCP
/// flow's acknowledgements. Those matter beyond their own wait: the sender's TCP paces by
/// how its acknowledgements arrive, and ones held back through a long turn arrive in bursts
/// that BBR answers with a larger window, so a longer queue. Shorter turns cost system
/// calls. On the netns rig (5 s paired runs, benches/README.md) this budget kept a loaded
/// RTT of 1.42 ms encrypted and 1.13 ms plain, where 256 had 2.43 and 1.52 ms, and it
/// moved more than both 256 and 64 (plain 8253 Mbit/s on average against 7558 and 7652).
const READ_BUDGET: usize = 128;
/// Largest netlink message read.
const BUF_LEN: usize = 65_536;

pub struct Daemon {
    cfg: Loaded,
    engine: Engine,
    clock: Clock,
    poll: Poll,
    datapath: Datapath,
    /// The legacy gateways' kernel rules, removed when the daemon stops.
    _legacy_nat: Option<crate::legacy_nat::LegacyNat>,
    /// The userspace stack and its proxies, in place of the TUN (`--userspace`).
    userspace: Option<crate::userspace::Userspace>,
    upstream: Upstream,
    control: UnixListener,
    clients: Clients<mio::net::UnixStream>,
    /// The metrics endpoint and its clients, when `metrics_listen` is set.
    metrics: Option<(TcpListener, Clients<TcpStream>)>,
    signals: Signals,
    /// Underlay changes from the kernel; `None` where netlink is unavailable.
    netlink: Option<crate::netlink::Watcher>,
    deadline: Instant,
    /// The state file and its journal (none without `state_file`), and the engine's handle
    /// version they hold (`checkpoint`).
    store: Option<state::Store>,
    saved_version: u64,
    /// Sources whose budget ran out: read again without waiting for readiness.
    hot: Vec<Token>,
    /// Upstream results to feed back to the engine.
    resolved: Vec<(QueryId, Result<Vec<u8>, UpstreamError>)>,
    last_status: Option<ocala_engine::Status>,
    /// `ocala trace` requests in progress.
    traces: crate::trace::Traces,
    buf: Vec<u8>,
    stop: bool,
}

fn seed() -> io::Result<[u8; 32]> {
    use rand_core::{OsRng, TryRngCore};
    let mut s = [0u8; 32];
    OsRng.try_fill_bytes(&mut s).map_err(io::Error::other)?;
    Ok(s)
}

/// The kernel side of a daemon with a TUN: the device, the legacy gateways' rules and split
/// DNS.
fn kernel_side(cfg: &Loaded) -> io::Result<(Tun, Option<crate::legacy_nat::LegacyNat>)> {
    let tun = Tun::open(
        &cfg.daemon.tun_name,
        cfg.daemon.mtu,
        &cfg.engine.handles,
        cfg.daemon.offload,
        crate::datapath::segments_per_send(cfg.daemon.mtu),
    )?;
    let lan = cfg
        .engine
        .legacy_client
        .as_ref()
        .map(|c| c.lan.as_slice())
        .unwrap_or_default();
    let roles = crate::legacy_nat::Roles {
        server: cfg.engine.legacy_server.is_some(),
        lan,
    };
    let legacy_nat = if roles.server || !roles.lan.is_empty() {
        let n = crate::legacy_nat::LegacyNat::install(tun.name(), &cfg.engine.handles, roles)?;
        if roles.server {
            tracing::info!(
                "legacy server gateway: {} and {} leave masqueraded as this host",
                cfg.engine.handles.pool_v4,
                cfg.engine.handles.pool_v6
            );
        }
        for p in lan {
            tracing::info!("legacy client gateway: serving DNS and handles to {p}");
        }
        Some(n)
    } else {
        None
    };
    if cfg.daemon.resolved_split_dns {
        let mut domains: Vec<String> = cfg.engine.overlays.iter().map(|o| o.name.clone()).collect();
        domains.extend(cfg.daemon.split_dns_domains.iter().cloned());
        crate::tun::split_dns(tun.name(), &cfg.engine.handles.dns_v4.to_string(), &domains)?;
        tracing::info!(
            "systemd-resolved sends {} to {}",
            domains.join(", "),
            cfg.engine.handles.dns_v4
        );
    }
    Ok((tun, legacy_nat))
}

fn upstream_servers(cfg: &Loaded) -> Vec<SocketAddr> {
    if !cfg.daemon.upstream_dns.is_empty() {
        return cfg.daemon.upstream_dns.clone();
    }
    let h = &cfg.engine.handles;
    let ours = [
        IpAddr::V4(h.dns_v4),
        IpAddr::V6(h.dns_v6),
        IpAddr::V4(h.tun_v4),
        IpAddr::V6(h.tun_v6),
    ];
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    resolv_conf_servers(&text, &ours)
}

/// Whether this CPU runs AES-GCM in hardware: AES rounds and carry-less multiplication (with
/// AVX on x86-64, which `ring`'s fastest AES-GCM needs). There AES-256-GCM seals a
/// 1400-byte packet in about a third of ChaCha20-Poly1305's time.
fn cpu_runs_aes_gcm() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("avx");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[allow(unreachable_code)]
    false
}

impl Daemon {
    /// Opens the TUN (or, in `userspace` mode, the userspace stack and its proxies), the
    /// sockets and the control socket, and restores checkpointed handles.
    pub fn start(mut cfg: Loaded, userspace: bool) -> io::Result<Daemon> {
        let clock = Clock::new();
        // Certificates speak wall-clock time; the engine's clock starts now.
        cfg.engine.security.unix_time_at_zero = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // `security.cipher = "auto"` offers AES-256-GCM where it is the faster cipher; the
        // engine never looks at the CPU.
        cfg.engine.security.hardware_aes = cpu_runs_aes_gcm();
        tracing::info!(
            "AES-GCM in hardware: {}",
            if cfg.engine.security.hardware_aes {
                "yes"
            } else {
                "no"
            }
        );
        let poll = Poll::new()?;
        let (tun, legacy_nat, userspace) = if userspace {
            let u = crate::userspace::Userspace::start(&cfg, poll.registry(), clock.now())?;
            (None, None, Some(u))
        } else {
            let (tun, nat) = kernel_side(&cfg)?;
            poll.registry()
                .register(&mut SourceFd(&tun.as_raw_fd()), TUN, Interest::READABLE)?;
            (Some(tun), nat, None)
        };
        // A TUN with offloads takes packets whose checksum is partial: peers may then leave
        // theirs so.
        cfg.engine.security.partial_checksums = tun.as_ref().is_some_and(Tun::offload);
        let mut engine = Engine::new(cfg.engine.clone(), seed()?, clock.now())
            .map_err(|e| io::Error::other(format!("{}: {}", e.key, e.message)))?;
        let store = (!cfg.daemon.state_file.as_os_str().is_empty()).then(|| {
            let path = &cfg.daemon.state_file;
            let (mut store, bindings) = state::open_or_report(path);
            let n = engine.restore_handles(&bindings);
            tracing::info!(
                "restored {n} of {} handles from {}",
                bindings.len(),
                path.display()
            );
            // What was restored becomes the snapshot, and the journal starts empty.
            if let Err(e) = store.snapshot(&engine.handle_bindings()) {
                tracing::warn!("checkpoint {}: {e}", path.display());
            }
            store
        });
        let mut sockets = Vec::new();
        for (i, o) in cfg.engine.overlays.iter().enumerate() {
            let addr = SocketAddr::new(cfg.daemon.bind, o.port);
            let mut s = OverlaySocket::bind(addr, cfg.daemon.offload).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("overlay '{}': binding {addr}: {e}", o.name),
                )
            })?;
            poll.registry()
                .register(s.source(), Token(OVERLAY_BASE + i), Interest::READABLE)?;
            sockets.push(s);
        }
        let servers = upstream_servers(&cfg);
        if servers.is_empty() {
            tracing::warn!("no upstream resolver: names that are not overlay names get SERVFAIL");
        }
        let mut upstream = Upstream::new(
            servers,
            Duration::from_millis(cfg.daemon.upstream_timeout_ms),
            cfg.daemon.upstream_attempts,
        )?;
        if let Some(s) = upstream.v4.as_mut() {
            poll.registry().register(s, UPSTREAM4, Interest::READABLE)?;
        }
        if let Some(s) = upstream.v6.as_mut() {
            poll.registry().register(s, UPSTREAM6, Interest::READABLE)?;
        }
        let path = &cfg.daemon.control_socket;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        // A socket file left by a daemon that died is in the way; a live daemon answers.
        if path.exists() && UnixStream::connect(path).is_err() {
            std::fs::remove_file(path)?;
        }
        let control = UnixListener::bind(path).map_err(|e| {
            io::Error::new(e.kind(), format!("control socket {}: {e}", path.display()))
        })?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        control.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&control.as_raw_fd()),
            CONTROL,
            Interest::READABLE,
        )?;
        let tun_name = tun.as_ref().map_or(String::new(), |t| t.name().to_string());
        let netlink = match crate::netlink::Watcher::open(&tun_name) {
            Ok(w) => {
                poll.registry().register(
                    &mut SourceFd(&w.as_raw_fd()),
                    NETLINK,
                    Interest::READABLE,
                )?;
                Some(w)
            }
            Err(e) => {
                tracing::warn!("no netlink ({e}): address changes are noticed at the next refresh");
                None
            }
        };
        let datapath = Datapath::new(tun, sockets, cfg.daemon.data_threads(), &cfg.daemon.cpus)?;
        let d = datapath.stats();
        tracing::info!(
            "data path: TUN offloads {}, TUN USO {}, UDP GSO {}, UDP GRO {}, {}",
            match (d.tun_offload, d.tun_segments) {
                (true, Some(n)) => format!("on ({n} segments at most)"),
                (true, None) => "on".into(),
                (false, _) => "off".into(),
            },
            if d.tun_uso { "on" } else { "off" },
            if d.udp_gso > 1 {
                format!("on ({} segments)", d.udp_gso)
            } else {
                "off".into()
            },
            if d.udp_gro { "on" } else { "off" },
            d.where_threads_run(),
        );
        let metrics = match cfg.daemon.metrics_listen {
            Some(addr) => {
                let mut l = TcpListener::bind(addr).map_err(|e| {
                    io::Error::new(e.kind(), format!("daemon.metrics_listen {addr}: {e}"))
                })?;
                poll.registry()
                    .register(&mut l, METRICS, Interest::READABLE)?;
                tracing::info!("metrics at http://{addr}/metrics");
                Some((l, Clients::new(METRICS_BASE, b"\r\n\r\n")))
            }
            None => None,
        };
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let saved_version = engine.handles_version();
        tracing::info!(
            "ocalad up: {} ({} / {}), DNS at {}",
            if tun_name.is_empty() {
                "userspace stack".to_string()
            } else {
                format!("TUN {tun_name}")
            },
            cfg.engine.handles.tun_v4,
            cfg.engine.handles.tun_v6,
            cfg.engine.handles.dns_v4
        );
        let mut d = Daemon {
            cfg,
            engine,
            clock,
            poll,
            datapath,
            _legacy_nat: legacy_nat,
            userspace,
            upstream,
            control,
            clients: Clients::new(CLIENT_BASE, b"\n"),
            metrics,
            signals,
            netlink,
            deadline: Instant::MAX,
            store,
            saved_version,
            hot: Vec::new(),
            resolved: Vec::new(),
            last_status: None,
            traces: Default::default(),
            buf: vec![0; BUF_LEN],
            stop: false,
        };
        d.drain();
        Ok(d)
    }

    /// Runs until SIGTERM or SIGINT, then closes paths, checkpoints and returns.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        crate::notify::notify("READY=1");
        while !self.stop {
            let deadline = self
                .deadline
                .min(self.upstream.next_deadline())
                .min(self.clients.next_deadline())
                .min(
                    self.metrics
                        .as_ref()
                        .map_or(Instant::MAX, |(_, c)| c.next_deadline()),
                )
                .min(self.userspace_deadline());
            let timeout = if self.hot.is_empty() {
                self.clock.until(deadline)
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let mut ready: Vec<Token> = std::mem::take(&mut self.hot);
            for ev in events.iter() {
                if !ready.contains(&ev.token()) {
                    ready.push(ev.token());
                }
            }
            for token in ready {
                self.serve(token)?;
            }
            self.on_timers();
            self.run_userspace();
            self.advance_traces();
        }
        self.shutdown()
    }

    fn input(&mut self, input: Input<'_>) {
        let now = self.clock.now();
        if let Err(e) = self.engine.handle_input(now, input) {
            tracing::error!("engine: {e}");
        }
        self.drain();
    }

    fn serve(&mut self, token: Token) -> io::Result<()> {
        match token {
            TUN => self.read_tun(),
            SIGNALS => {
                if self.signals.pending().next().is_some() {
                    tracing::info!("signal received: shutting down");
                    self.stop = true;
                }
            }
            CONTROL => self.serve_control(),
            NETLINK => {
                let changed = self.netlink.as_ref().is_some_and(|w| w.read(&mut self.buf));
                if changed {
                    tracing::info!("underlay changed: overlays renew what they keep at others");
                    self.input(Input::NetworkChanged);
                }
            }
            UPSTREAM4 | UPSTREAM6 => {
                let done = self.upstream.receive();
                self.resolved.extend(done);
                self.drain();
            }
            t if self.clients.owns(t) => self.serve_client(t),
            METRICS => self.accept_metrics(),
            t if self.metrics.as_ref().is_some_and(|(_, c)| c.owns(t)) => self.serve_metrics(t),
            Token(t) if t >= OVERLAY_BASE => self.read_overlay(t - OVERLAY_BASE),
            Token(_) => {}
        }
        Ok(())
    }

    /// Reads the TUN until it is empty or the budget is spent. Each read is fed whole to the
    /// engine. A super-packet (up to 64 KiB of TCP segments) is a batch of its own and leaves
    /// at once; what single-packet reads bring (a TCP flow's ACKs, a UDP flow's datagrams)
    /// is gathered over the reads that find packets waiting, up to a train's worth, so it
    /// leaves in as few sends as GSO allows rather than one send a packet.
    fn read_tun(&mut self) {
        let mut taken = 0;
        let more = loop {
            if taken >= READ_BUDGET {
                break true;
            }
            let now = self.clock.now();
            match self.datapath.read_tun(&mut self.engine, now) {
                Ok(packets) => {
                    taken += packets.max(1);
                    self.collect();
                    if packets > 1 || self.datapath.queued() >= MAX_TRAIN {
                        self.datapath.flush(&mut self.engine);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(e) => {
                    tracing::warn!("reading TUN: {e}");
                    break false;
                }
            }
        };
        self.datapath.flush(&mut self.engine);
        if more {
            self.hot.push(TUN);
        }
    }

    /// Reads overlay `index` a batch at a time; each message (a datagram, or a GRO train of
    /// them) is fed to the engine and its results leave as one batch.
    fn read_overlay(&mut self, index: usize) {
        let mut taken = 0;
        while taken < READ_BUDGET {
            match self.datapath.receive(index, READ_BUDGET - taken) {
                Ok(0) => return,
                Ok(messages) => {
                    for m in 0..messages {
                        let now = self.clock.now();
                        taken += self.datapath.feed(index, m, &mut self.engine, now);
                        self.drain();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("overlay socket {index}: {e}");
                    return;
                }
            }
        }
        self.hot.push(Token(OVERLAY_BASE + index));
    }

    /// Sends the queries traces are ready for and answers the traces that are done, until
    /// none moves (an up path answers at once).
    fn advance_traces(&mut self) {
        let clients = &self.clients;
        self.traces.retain_clients(|t| clients.alive(t));
        for _ in 0..64 {
            let now = self.clock.now();
            let engine = &self.engine;
            let next = self
                .traces
                .advance(now, &self.cfg.engine.handles, |n| engine.path_summary(n));
            if next.is_empty() {
                return;
            }
            for n in next {
                match n {
                    crate::trace::Next::Ask(packet) => self.input(Input::TunPacket(&packet)),
                    crate::trace::Next::Done(token, report) => {
                        self.clients.answer(self.poll.registry(), token, report)
                    }
                }
            }
        }
    }

    /// When the userspace stack or a proxy handshake needs the loop next.
    fn userspace_deadline(&mut self) -> Instant {
        let now = self.clock.now();
        self.userspace
            .as_mut()
            .map_or(Instant::MAX, |u| u.deadline(now))
    }

    /// Runs the userspace stack and its proxies until nothing moves: what the stack sends
    /// goes to the engine as TUN packets, what the engine delivers goes back to the stack.
    fn run_userspace(&mut self) {
        for _ in 0..64 {
            let now = self.clock.now();
            let Some(u) = self.userspace.as_mut() else {
                return;
            };
            let moved = u.step(self.poll.registry(), now);
            let mut packets = std::mem::take(&mut u.stack.link.to_engine);
            if packets.is_empty() && !moved && !u.stack.link.pending() {
                return;
            }
            let batch = packets.iter().map(|p| Input::TunPacket(p));
            if let Err(e) = self.engine.handle_batch(now, batch) {
                tracing::error!("engine: {e}");
            }
            if let Some(u) = self.userspace.as_mut() {
                for p in packets.drain(..) {
                    u.stack.link.recycle(p);
                }
                u.stack.link.to_engine = packets;
            }
            self.drain();
        }
    }

    fn on_timers(&mut self) {
        let now = self.clock.now();
        if self.deadline <= now {
            self.input(Input::Timeout);
        }
        if self.upstream.next_deadline() <= now {
            let done = self.upstream.on_timeout(now);
            self.resolved.extend(done);
            self.drain();
        }
        if self.clients.next_deadline() <= now {
            self.clients.expire(self.poll.registry(), now);
        }
        if let Some((_, c)) = self.metrics.as_mut() {
            c.expire(self.poll.registry(), now);
        }
    }

    /// Carries out everything the engine asked for, its datagrams and TUN writes included.
    fn drain(&mut self) {
        self.collect();
        self.datapath.flush(&mut self.engine);
    }

    /// What takes packets for local apps before the TUN, and the data path, which takes the
    /// rest.
    fn before_tun(&mut self) -> (BeforeTun<'_>, &mut Datapath) {
        let before = BeforeTun {
            traces: &mut self.traces,
            userspace: self.userspace.as_mut(),
            engine: &self.engine,
            handles: &self.cfg.engine.handles,
            clock: &self.clock,
        };
        (before, &mut self.datapath)
    }

    /// Before an app can see an address bound since the last checkpoint, the checkpoint.
    fn checkpoint_new_bindings(&mut self) {
        if self.engine.handles_version() != self.saved_version {
            self.checkpoint();
        }
    }

    /// Carries out everything the engine asked for, but leaves its datagrams and TUN writes
    /// queued in the data path's batch, for a later [`Datapath::flush`].
    fn collect(&mut self) {
        loop {
            match self.engine.poll_output() {
                Output::Timeout(at) => {
                    self.deadline = at;
                    // Upstream answers, and queries that failed at once, go back in before
                    // the loop sleeps, so apps hear of them now.
                    let Some((id, result)) = self.resolved.pop() else {
                        break;
                    };
                    let now = self.clock.now();
                    let result = result.as_deref().map_err(|e| *e);
                    if let Err(e) = self
                        .engine
                        .handle_input(now, Input::Resolved { id, result })
                    {
                        tracing::error!("engine: {e}");
                    }
                }
                Output::WriteTun(p) => {
                    self.checkpoint_new_bindings();
                    let (before, datapath) = self.before_tun();
                    if before.took(&p) {
                        self.engine.recycle(p);
                    } else {
                        datapath.deliver(p);
                    }
                }
                Output::WriteTunInPlace(d) => {
                    self.checkpoint_new_bindings();
                    let (before, datapath) = self.before_tun();
                    // The bytes are looked up only for a trace or the userspace stack.
                    let taken =
                        before.active() && datapath.lent(&d).is_some_and(|p| before.took(p));
                    if !taken {
                        datapath.deliver_lent(d);
                    }
                }
                Output::Transmit {
                    overlay,
                    to,
                    payload,
                    ecn,
                } => self.datapath.transmit(overlay, to, payload, ecn),
                Output::UpstreamDns { id, query } => {
                    let now = self.clock.now();
                    if let Err(e) = self.upstream.send(now, id, &query) {
                        self.resolved.push((id, Err(e)));
                    }
                    self.engine.recycle(query);
                }
                Output::Event(e) => self.log(e),
            }
        }
    }

    fn log(&mut self, e: Event) {
        match e {
            Event::Dropped { reason } => tracing::debug!("dropped: {reason}"),
            Event::Status(s) => self.last_status = Some(*s),
            Event::SetupFailed { name, reason } => {
                tracing::warn!("path to {name} failed: {reason}");
                self.traces.failures.insert(name, reason);
            }
            Event::PathUp {
                name,
                label,
                setup,
                protection,
            } => {
                tracing::info!("path to {name} up in {setup:?} ({protection:?}, label {label:#x})");
                self.traces.setups.insert(name, setup);
            }
            Event::PathDown { name, reason } => tracing::info!("path to {name} down: {reason}"),
            Event::OverlayNotice { overlay, text } => tracing::info!("{overlay}: {text}"),
            Event::PoolExhausted { name } => {
                tracing::warn!("handle pool exhausted (asked for {name})")
            }
            other => tracing::info!("{other:?}"),
        }
    }

    /// Saves the bindings made since the last save (a line each in the state's journal).
    /// Called whenever they changed, before the engine's next packet reaches an app, so a
    /// crash never loses an address an app has seen (a restarted daemon would hand it to
    /// another name); bindings change on new names, not per packet.
    fn checkpoint(&mut self) {
        let new = self.engine.handle_bindings_since(self.saved_version);
        self.saved_version = self.engine.handles_version();
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let engine = &self.engine;
        if let Err(e) = store.save_new(&new, || engine.handle_bindings()) {
            tracing::warn!("checkpoint {}: {e}", self.cfg.daemon.state_file.display());
        }
    }

    /// Writes every binding as a fresh snapshot (at shutdown: releases reach the state too).
    fn snapshot(&mut self) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Err(e) = store.snapshot(&self.engine.handle_bindings()) {
            tracing::warn!("checkpoint {}: {e}", self.cfg.daemon.state_file.display());
        }
    }

    /// Accepts control clients; they are served as their sockets become ready.
    fn serve_control(&mut self) {
        loop {
            let stream = match self.control.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("control socket: {e}");
                    return;
                }
            };
            let now = self.clock.now();
            let added = stream.set_nonblocking(true).and_then(|()| {
                let stream = mio::net::UnixStream::from_std(stream);
                self.clients.add(self.poll.registry(), stream, now)
            });
            if let Err(e) = added {
                tracing::debug!("control client: {e}");
            }
        }
    }

    /// Accepts metrics clients; they are served as their sockets become ready.
    fn accept_metrics(&mut self) {
        let Some((listener, clients)) = self.metrics.as_mut() else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let now = self.clock.now();
                    if let Err(e) = clients.add(self.poll.registry(), stream, now) {
                        tracing::debug!("metrics client: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!("metrics listener: {e}");
                    return;
                }
            }
        }
    }

    /// A metrics request, answered from a fresh status.
    fn serve_metrics(&mut self, token: Token) {
        let Some((_, clients)) = self.metrics.as_mut() else {
            return;
        };
        let Progress::Request(line) = clients.ready(self.poll.registry(), token) else {
            return;
        };
        let answer = crate::metrics::http_answer(&line, || {
            self.input(Input::Command(Command::Status));
            let status = self.last_status.take().unwrap_or_default();
            crate::metrics::render(&status, &self.datapath.stats())
        });
        if let Some((_, clients)) = self.metrics.as_mut() {
            clients.answer(self.poll.registry(), token, answer);
        }
    }

    /// One request line (`status` or `resolve NAME`), one answer, then the connection closes.
    fn serve_client(&mut self, token: Token) {
        let Progress::Request(line) = self.clients.ready(self.poll.registry(), token) else {
            return;
        };
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("status"), _) => {
                self.input(Input::Command(Command::Status));
                let v = self
                    .last_status
                    .take()
                    .map(|s| status::to_json(&s))
                    .map(|mut v| {
                        v["datapath"] = self.datapath.stats().to_json();
                        v
                    })
                    .unwrap_or_default();
                format!("{v}\n")
            }
            (Some("resolve"), Some(name)) => self.engine.explain(name),
            (Some("trace"), Some(name)) => {
                let started = self
                    .engine
                    .trace_plan(name)
                    .and_then(|plan| self.traces.start(token, plan));
                match started {
                    Ok(()) => {
                        let until = self.clock.now().saturating_add(TRACE_TIMEOUT);
                        self.clients.hold(token, until);
                        // The answer comes when the last hop has answered.
                        return self.advance_traces();
                    }
                    Err(e) => format!("error: {e}\n"),
                }
            }
            _ => "error: requests are 'status', 'resolve NAME' or 'trace NAME'\n".to_string(),
        };
        self.clients.answer(self.poll.registry(), token, reply);
    }

    fn shutdown(&mut self) -> io::Result<()> {
        crate::notify::notify("STOPPING=1");
        self.snapshot();
        self.input(Input::Command(Command::Shutdown));
        let _ = std::fs::remove_file(&self.cfg.daemon.control_socket);
        match &self.datapath.tun {
            Some(t) => tracing::info!("ocalad stopped; TUN {} removed", t.name()),
            None => tracing::info!("ocalad stopped"),
        }
        Ok(())
    }
}

/// What may take a packet for local apps before the TUN: traces waiting for probe answers,
/// and the userspace stack.
struct BeforeTun<'a> {
    traces: &'a mut crate::trace::Traces,
    userspace: Option<&'a mut crate::userspace::Userspace>,
    engine: &'a Engine,
    handles: &'a ocala_engine::config::HandleConfig,
    clock: &'a Clock,
}

impl BeforeTun<'_> {
    /// Whether anything may take packets before the TUN.
    fn active(&self) -> bool {
        self.traces.running() || self.userspace.is_some()
    }

    /// Whether a packet for local apps was a trace's probe answer (looked for only while a
    /// trace runs) or went to the userspace stack; the rest is for the TUN.
    fn took(self, packet: &[u8]) -> bool {
        if self.traces.running() {
            let (engine, now) = (self.engine, self.clock.now());
            if self
                .traces
                .take_answer(packet, self.handles, now, |n| engine.path_summary(n))
            {
                return true;
            }
        }
        match self.userspace {
            Some(u) => {
                u.stack.link.deliver(packet);
                true
            }
            None => false,
        }
    }
}
