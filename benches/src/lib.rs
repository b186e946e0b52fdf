//! A small in-memory harness for benchmarking the OCALA engine and checking that its data
//! path does not allocate.
//!
//! [`Net`] wires several [`Engine`]s together: every `Transmit` one of them emits is handed
//! to the engine whose overlay address it names as a `Datagram` (coming from the sender's
//! address), `WriteTun` packets are collected per node, and every buffer goes back to the
//! engine that produced it with [`Engine::recycle`]. Time only moves when the caller says so
//! ([`Net::advance`]); nothing here reads a clock.
//!
//! [`Pair`] is alice and bob, one `udp` hop apart, with the path from alice to `bob.udp` up;
//! [`Chain`] is alice, a gateway `gw` and carol, with the path from alice to
//! `carol.udp_gw.udp` up. Both are plain (no end-to-end protection, see [`node_config`]);
//! [`Pair::secure`] is the same pair with certificates from a [`TestCa`] and the path
//! protected `encrypt` or `auth`. [`I3Trio`] is alice and bob as `i3` hosts with an i3 server
//! between them, the path to `bob.i3` (or `bob.shortcut.i3`, direct) up. The free functions [`send`], [`send_into`], [`receive`] and
//! [`drain_recycle`] drive a single engine one step without allocating, for benchmark loops.

use ocala_engine::config::{CipherPolicy, HexBytes, OverlayConfig, Protection};
use ocala_engine::dns::message::{build_address_query, id_of, parse_address_answer};
use ocala_engine::security::noise::public_key;
use ocala_engine::security::{CaKey, CertSpec, IdentityKey};
use ocala_engine::wire::ip::{IpView, PROTO_UDP};
use ocala_engine::wire::rewrite::write_udp_packet;
use ocala_engine::wire::transport::UdpView;
use ocala_engine::{Config, Engine, Event, Input, Instant, Output, OverlayId};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The only overlay every node here runs (index 0 of its config).
pub const OVERLAY: OverlayId = OverlayId(0);
/// The overlay's UDP port on every node.
pub const PORT: u16 = 4789;
/// Port apps use on both sides of test packets.
pub const APP_PORT: u16 = 40_000;
/// When the harness starts its engines.
pub const START: Instant = Instant::from_nanos(1_000_000_000);
/// Size of the IPv4 + UDP headers of the test packets.
pub const IP_UDP_HEADERS: usize = 28;

/// Overlay address of a node in the harness: `10.0.0.<host>:4789`.
pub fn overlay_addr(host: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)), PORT)
}

/// Wall-clock time (Unix seconds) at engine instant zero on every node of the harness
/// (2027-01-15T08:00:00Z): certificates are checked against it.
pub const UNIX_TIME_AT_ZERO: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

/// A node's config: one `udp` overlay named `udp` with the given local name and address
/// book, paths **plain** (`security.default = Plain`, `accept_plain = true`: no certificate,
/// no handshake, no per-packet crypto), `Config::default()` otherwise.
pub fn node_config(local_name: &str, book: &[(&str, SocketAddr)], gateway: bool) -> Config {
    let mut cfg = bare_config(local_name, book, gateway);
    cfg.security.default = Protection::Plain;
    cfg.security.accept_plain = true;
    cfg
}

/// A node's config whose paths are protected with `mode` by default and that accepts no
/// plain paths, with a static key and a certificate from `ca` naming it in its overlay
/// (`<local_name>.udp`). `key_seed` makes its keys; give every node its own.
pub fn secure_node_config(
    local_name: &str,
    book: &[(&str, SocketAddr)],
    mode: Protection,
    ca: &TestCa,
    key_seed: u8,
) -> Config {
    let mut cfg = bare_config(local_name, book, false);
    cfg.security.default = mode;
    cfg.security.accept_plain = false;
    ca.provision(&mut cfg, key_seed);
    cfg
}

fn bare_config(local_name: &str, book: &[(&str, SocketAddr)], gateway: bool) -> Config {
    Config {
        overlays: vec![OverlayConfig {
            name: "udp".into(),
            module: "udp".into(),
            local_name: local_name.into(),
            port: PORT,
            keepalive_secs: 25,
            address_book: book
                .iter()
                .map(|(n, a)| ((*n).to_string(), *a))
                .collect::<BTreeMap<_, _>>(),
            i3: Default::default(),
            ron: Default::default(),
        }],
        gateway,
        ..Config::default()
    }
}

/// A certificate authority for the harness, minting keys and certificates from fixed seeds
/// with the engine's public API (`ocala_engine::security`), so runs are repeatable.
pub struct TestCa {
    key: CaKey,
}

impl TestCa {
    /// The CA whose key comes from `seed`.
    pub fn new(seed: u8) -> TestCa {
        TestCa {
            key: CaKey::from_seed([seed; 32]),
        }
    }

    /// Its public key, as a trust bundle holds it.
    pub fn public(&self) -> [u8; 32] {
        self.key.public()
    }

    /// Gives `cfg` a static key and identity key made from `key_seed`, a certificate naming
    /// the node in each of its overlays (`<local_name>.<overlay>`), valid from a day before
    /// [`UNIX_TIME_AT_ZERO`] for a year, this CA as the only one trusted, and the wall-clock
    /// time at instant zero.
    pub fn provision(&self, cfg: &mut Config, key_seed: u8) {
        let names: Vec<String> = cfg
            .overlays
            .iter()
            .map(|o| format!("{}.{}", o.local_name, o.name).to_ascii_lowercase())
            .collect();
        self.provision_names(cfg, key_seed, names);
    }

    /// Like [`TestCa::provision`], with a certificate for `names` (a node that answers to
    /// many names, such as every name an address book gives it).
    pub fn provision_names(&self, cfg: &mut Config, key_seed: u8, names: Vec<String>) {
        let static_private = [key_seed; 32];
        let identity = IdentityKey::from_seed([key_seed ^ 0xa5; 32]);
        let spec = CertSpec {
            serial: u64::from(key_seed),
            names,
            static_key: public_key(&static_private),
            identity_key: identity.public(),
            not_before: UNIX_TIME_AT_ZERO - DAY,
            not_after: UNIX_TIME_AT_ZERO + 365 * DAY,
        };
        let cert = self
            .key
            .issue(&spec)
            .unwrap_or_else(|e| panic!("cannot mint a certificate: {e}"));
        let sec = &mut cfg.security;
        sec.static_key = Some(HexBytes(static_private.to_vec()));
        sec.certificate = Some(HexBytes(cert.encode()));
        sec.trust = vec![HexBytes(self.public().to_vec())];
        sec.unix_time_at_zero = UNIX_TIME_AT_ZERO;
    }
}

/// What one drain of an engine produced. Counting only, so draining does not allocate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// `Transmit` outputs.
    pub transmits: usize,
    /// `WriteTun` outputs.
    pub tun_writes: usize,
    /// Payload bytes of both.
    pub bytes: usize,
    /// `UpstreamDns` outputs.
    pub upstream: usize,
    /// `Event` outputs.
    pub events: usize,
}

/// Polls `engine` until `Output::Timeout`, recycling every buffer, and counts what came out.
pub fn drain_recycle(engine: &mut Engine) -> Drained {
    drain_into(engine, None)
}

/// Like [`drain_recycle`], and copies the payload of the (last) `Transmit` into `out`
/// (cleared first). With enough capacity in `out` this does not allocate either.
fn drain_into(engine: &mut Engine, mut out: Option<&mut Vec<u8>>) -> Drained {
    let mut d = Drained::default();
    loop {
        match engine.poll_output() {
            Output::Timeout(_) => return d,
            Output::Transmit { payload, .. } => {
                d.transmits += 1;
                d.bytes += payload.len();
                if let Some(out) = out.as_deref_mut() {
                    out.clear();
                    out.extend_from_slice(&payload);
                }
                engine.recycle(payload);
            }
            Output::WriteTun(p) => {
                d.tun_writes += 1;
                d.bytes += p.len();
                engine.recycle(p);
            }
            Output::WriteTunInPlace(p) => {
                d.tun_writes += 1;
                d.bytes += p.range.len();
            }
            Output::UpstreamDns { query, .. } => {
                d.upstream += 1;
                engine.recycle(query);
            }
            Output::Event(_) => d.events += 1,
        }
    }
}

/// One packet from local apps into `engine`, then a full drain.
pub fn send(engine: &mut Engine, now: Instant, packet: &[u8]) -> Drained {
    engine
        .handle_input(now, Input::TunPacket(packet))
        .expect("time does not go backwards");
    drain_recycle(engine)
}

/// Like [`send`], but the payload of the (last) `Transmit` is also copied into `out`
/// (cleared first): for feeding the datagram to the peer, as on a network.
pub fn send_into(engine: &mut Engine, now: Instant, packet: &[u8], out: &mut Vec<u8>) -> Drained {
    engine
        .handle_input(now, Input::TunPacket(packet))
        .expect("time does not go backwards");
    drain_into(engine, Some(out))
}

/// A batch of an app's packets, fed at once with `handle_batch` (as the daemon feeds the
/// segments of one TUN read), then a full drain.
pub fn send_batch(engine: &mut Engine, now: Instant, packets: &[&[u8]]) -> Drained {
    engine
        .handle_batch(now, packets.iter().map(|p| Input::TunPacket(p)))
        .expect("time does not go backwards");
    drain_recycle(engine)
}

/// A batch of datagrams from `from` on [`OVERLAY`], fed at once (as the daemon feeds one
/// receive), then a full drain. What the engine delivers in place is rewritten in them.
pub fn receive_batch(
    engine: &mut Engine,
    now: Instant,
    from: SocketAddr,
    datagrams: &mut [Vec<u8>],
) -> Drained {
    let batch = datagrams.iter_mut().map(|payload| Input::Datagram {
        overlay: OVERLAY,
        from: &from,
        payload,
        queued: std::time::Duration::ZERO,
        ecn: ocala_engine::Ecn::NotEct,
    });
    engine
        .handle_batch(now, batch)
        .expect("time does not go backwards");
    drain_recycle(engine)
}

/// One datagram from `from` into `engine` on [`OVERLAY`], then a full drain. What the
/// engine delivers in place is rewritten in it.
pub fn receive(engine: &mut Engine, now: Instant, from: SocketAddr, payload: &mut [u8]) -> Drained {
    engine
        .handle_input(
            now,
            Input::Datagram {
                overlay: OVERLAY,
                from: &from,
                payload,
                queued: std::time::Duration::ZERO,
                ecn: ocala_engine::Ecn::NotEct,
            },
        )
        .expect("time does not go backwards");
    drain_recycle(engine)
}

/// An IPv4/UDP packet of exactly `size` bytes (headers included) from `src` to `dst`, both
/// on [`APP_PORT`], with a recognisable payload.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    assert!(
        size >= IP_UDP_HEADERS,
        "a packet needs room for its headers"
    );
    let payload: Vec<u8> = (0..size - IP_UDP_HEADERS).map(|i| i as u8).collect();
    let mut out = Vec::with_capacity(size);
    write_udp_packet(
        &mut out,
        SocketAddr::new(src.into(), APP_PORT),
        SocketAddr::new(dst.into(), APP_PORT),
        &payload,
    )
    .expect("IPv4 to IPv4 fits");
    assert_eq!(out.len(), size);
    out
}

/// An app's DNS query for `name` (type A, id `id`) as an IPv4/UDP packet from the node's own
/// TUN address, port `client_port`, to its DNS sentinel on port 53.
pub fn dns_query_packet(cfg: &Config, id: u16, name: &str, client_port: u16) -> Vec<u8> {
    dns_query_packet_from(cfg, cfg.handles.tun_v4, id, name, client_port)
}

/// Like [`dns_query_packet`], from `src` (a LAN client of a legacy client gateway).
pub fn dns_query_packet_from(
    cfg: &Config,
    src: Ipv4Addr,
    id: u16,
    name: &str,
    client_port: u16,
) -> Vec<u8> {
    let query = build_address_query(id, name, false).expect("a valid host name");
    let mut out = Vec::with_capacity(query.len() + IP_UDP_HEADERS);
    write_udp_packet(
        &mut out,
        SocketAddr::new(src.into(), client_port),
        SocketAddr::new(cfg.handles.dns_v4.into(), 53),
        &query,
    )
    .expect("IPv4 to IPv4 fits");
    out
}

/// If `packet` is the engine's DNS answer with transaction id `id` (from the sentinel's
/// port 53), the addresses it holds or why it holds none.
pub fn dns_answer(cfg: &Config, packet: &[u8], id: u16) -> Option<Result<Vec<IpAddr>, String>> {
    let ip = IpView::parse(packet).ok()?;
    if ip.src() != IpAddr::V4(cfg.handles.dns_v4) || ip.protocol() != PROTO_UDP {
        return None;
    }
    let udp = UdpView::parse(ip.payload()).ok()?;
    if udp.src_port() != 53 || id_of(udp.payload()) != Some(id) {
        return None;
    }
    Some(parse_address_answer(udp.payload(), id).map_err(|e| e.to_string()))
}

/// One engine in a [`Net`], with what it wrote to its TUN and the events it reported.
pub struct Node {
    /// For messages.
    pub name: String,
    /// Its overlay socket's address; datagrams it sends come from here.
    pub addr: SocketAddr,
    /// Its configuration (a copy of what the engine got).
    pub cfg: Config,
    pub engine: Engine,
    /// Packets it delivered to local apps, oldest first.
    pub tun: Vec<Vec<u8>>,
    /// Events it reported, oldest first.
    pub events: Vec<Event>,
    /// `UpstreamDns` requests it made (answered with `Unreachable` by nobody: just counted).
    pub upstream: usize,
}

/// Engines wired back to back in memory.
pub struct Net {
    /// The current time; every input carries it.
    pub now: Instant,
    pub nodes: Vec<Node>,
    /// Datagrams sent but not yet delivered: (destination node, sender's address, payload).
    in_flight: VecDeque<(usize, SocketAddr, Vec<u8>)>,
    next_dns_id: u16,
}

impl Net {
    /// The IPv4 handle `node` bound for `name`, from its `HandleBound` events.
    pub fn bound(&self, node: usize, name: &str) -> std::net::Ipv4Addr {
        self.nodes[node]
            .events
            .iter()
            .find_map(|e| match e {
                ocala_engine::Event::HandleBound {
                    name: n,
                    v4: std::net::IpAddr::V4(a),
                    ..
                } if n == name => Some(*a),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name} was never bound"))
    }

    /// Starts one engine per `(name, overlay address, config)` at [`START`].
    pub fn new(nodes: Vec<(&str, SocketAddr, Config)>) -> Net {
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, (name, addr, cfg))| {
                let mut seed = [0u8; 32];
                seed[0] = i as u8 + 1;
                let engine = Engine::new(cfg.clone(), seed, START)
                    .unwrap_or_else(|e| panic!("config of {name}: {e}"));
                Node {
                    name: name.to_string(),
                    addr,
                    cfg,
                    engine,
                    tun: Vec::new(),
                    events: Vec::new(),
                    upstream: 0,
                }
            })
            .collect();
        Net {
            now: START,
            nodes,
            in_flight: VecDeque::new(),
            next_dns_id: 0x4000,
        }
    }

    /// The index of the node called `name`.
    pub fn index(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Drains one node's outputs: datagrams go in flight, TUN packets and events are kept;
    /// those delivered in place lie in `lent`, the datagram it was last fed.
    fn drain(&mut self, i: usize, lent: &[u8]) {
        loop {
            let node = &mut self.nodes[i];
            match node.engine.poll_output() {
                Output::Timeout(_) => return,
                Output::Transmit {
                    overlay,
                    to,
                    payload,
                    ..
                } => {
                    assert_eq!(overlay, OVERLAY, "{} used an unknown overlay", node.name);
                    let from = node.addr;
                    let bytes = payload.to_vec();
                    node.engine.recycle(payload);
                    // Datagrams to an address no node has are lost, as on a real network.
                    if let Some(dst) = self.nodes.iter().position(|n| n.addr == to) {
                        self.in_flight.push_back((dst, from, bytes));
                    }
                }
                Output::WriteTun(p) => {
                    node.tun.push(p.to_vec());
                    node.engine.recycle(p);
                }
                Output::WriteTunInPlace(d) => {
                    let p = lent.get(d.range).expect("delivered in its datagram");
                    node.tun.push(p.to_vec());
                }
                Output::UpstreamDns { query, .. } => {
                    node.upstream += 1;
                    node.engine.recycle(query);
                }
                Output::Event(e) => node.events.push(e),
            }
        }
    }

    /// Delivers datagrams until none is in flight. Panics on what looks like a livelock.
    pub fn run(&mut self) {
        for i in 0..self.nodes.len() {
            self.drain(i, &[]);
        }
        let mut delivered = 0usize;
        while let Some((dst, from, mut payload)) = self.in_flight.pop_front() {
            delivered += 1;
            assert!(delivered < 100_000, "datagrams keep flowing: livelock?");
            let now = self.now;
            self.nodes[dst]
                .engine
                .handle_input(
                    now,
                    Input::Datagram {
                        overlay: OVERLAY,
                        from: &from,
                        payload: &mut payload,
                        queued: std::time::Duration::ZERO,
                        ecn: ocala_engine::Ecn::NotEct,
                    },
                )
                .expect("time does not go backwards");
            self.drain(dst, &payload);
        }
    }

    /// Moves time forward, lets every engine's timers fire, and runs the network.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        for i in 0..self.nodes.len() {
            let now = self.now;
            self.nodes[i]
                .engine
                .handle_input(now, Input::Timeout)
                .expect("time does not go backwards");
        }
        self.run();
    }

    /// A packet from node `i`'s local apps, then the network runs.
    pub fn tun_input(&mut self, i: usize, packet: &[u8]) {
        let now = self.now;
        self.nodes[i]
            .engine
            .handle_input(now, Input::TunPacket(packet))
            .expect("time does not go backwards");
        self.run();
    }

    /// Looks `name` up (type A) from node `i`'s app side, as an app would, and waits —
    /// advancing time in 100 ms steps for at most 10 s — for the answer. The engine answers
    /// an overlay name only once its path is up, so `Ok` means the path is ready. Returns the
    /// handle.
    pub fn lookup(&mut self, i: usize, name: &str) -> Result<Ipv4Addr, String> {
        let own = self.nodes[i].cfg.handles.tun_v4;
        self.lookup_from(i, own, name)
    }

    /// Like [`Net::lookup`], asked by `src` (a LAN client when node `i` is a legacy client
    /// gateway).
    pub fn lookup_from(&mut self, i: usize, src: Ipv4Addr, name: &str) -> Result<Ipv4Addr, String> {
        let id = self.next_dns_id;
        self.next_dns_id = self.next_dns_id.wrapping_add(1);
        let port = 50_000 + id % 10_000;
        let query = dns_query_packet_from(&self.nodes[i].cfg, src, id, name, port);
        let seen = self.nodes[i].tun.len();
        self.tun_input(i, &query);
        for _ in 0..100 {
            let node = &self.nodes[i];
            let answer = node.tun[seen..]
                .iter()
                .find_map(|p| dns_answer(&node.cfg, p, id));
            match answer {
                Some(Ok(addrs)) => {
                    return match addrs.first() {
                        Some(IpAddr::V4(a)) => Ok(*a),
                        other => Err(format!("answer for {name} holds {other:?}")),
                    }
                }
                Some(Err(e)) => return Err(format!("lookup of {name}: {e}")),
                None => self.advance(Duration::from_millis(100)),
            }
        }
        Err(format!("no answer for {name} within 10 s"))
    }

    /// The `Transmit` payloads node `i` emits for one packet from its apps, without
    /// delivering them. For capturing datagrams to replay in benchmarks.
    pub fn capture_send(&mut self, i: usize, packet: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.capture(i, Input::TunPacket(packet))
    }

    /// The `Transmit` payloads node `i` emits for one datagram from `from`, without
    /// delivering them.
    pub fn capture_receive(
        &mut self,
        i: usize,
        from: SocketAddr,
        payload: &mut [u8],
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        self.capture(
            i,
            Input::Datagram {
                overlay: OVERLAY,
                from: &from,
                payload,
                queued: std::time::Duration::ZERO,
                ecn: ocala_engine::Ecn::NotEct,
            },
        )
    }

    fn capture(&mut self, i: usize, input: Input<'_>) -> Vec<(SocketAddr, Vec<u8>)> {
        let now = self.now;
        let node = &mut self.nodes[i];
        let engine = &mut node.engine;
        engine
            .handle_input(now, input)
            .expect("time does not go backwards");
        let mut out = Vec::new();
        loop {
            match engine.poll_output() {
                Output::Timeout(_) => return out,
                Output::Transmit { to, payload, .. } => {
                    out.push((to, payload.to_vec()));
                    engine.recycle(payload);
                }
                Output::WriteTun(p) => engine.recycle(p),
                Output::WriteTunInPlace(_) => {}
                Output::UpstreamDns { query, .. } => engine.recycle(query),
                Output::Event(e) => node.events.push(e),
            }
        }
    }
}

/// Alice and bob, one `udp` hop apart (alice at 10.0.0.1, bob at 10.0.0.2), with alice's
/// path to `bob.udp` up.
pub struct Pair {
    pub net: Net,
    /// Alice's handle for `bob.udp`.
    pub bob_handle: Ipv4Addr,
}

impl Pair {
    pub const ALICE: usize = 0;
    pub const BOB: usize = 1;

    /// Both engines started with plain paths ([`node_config`]), and `bob.udp` looked up from
    /// alice's apps until its path is up.
    pub fn new() -> Pair {
        let (a, b) = (overlay_addr(1), overlay_addr(2));
        Pair::with_configs(
            node_config("alice", &[("bob", b)], false),
            node_config("bob", &[("alice", a)], false),
        )
    }

    /// Both engines started with certificates from one [`TestCa`] and `mode` as their
    /// protection ([`secure_node_config`]), and `bob.udp` looked up from alice's apps until
    /// its secure path is up (handshake done, certificates checked both ways).
    pub fn secure(mode: Protection) -> Pair {
        Pair::secure_with(mode, CipherPolicy::Auto)
    }

    /// Like [`Pair::secure`], both ends offering the data ciphers `cipher` allows (with
    /// `Auto` ChaCha20-Poly1305 only: the engine alone assumes no AES hardware).
    pub fn secure_with(mode: Protection, cipher: CipherPolicy) -> Pair {
        let (a, b) = (overlay_addr(1), overlay_addr(2));
        let ca = TestCa::new(0xca);
        let mut alice = secure_node_config("alice", &[("bob", b)], mode, &ca, 1);
        let mut bob = secure_node_config("bob", &[("alice", a)], mode, &ca, 2);
        alice.security.cipher = cipher;
        bob.security.cipher = cipher;
        Pair::with_configs(alice, bob)
    }

    /// Alice (10.0.0.1) and bob (10.0.0.2) with these configs, and `bob.udp` looked up.
    pub fn with_configs(alice: Config, bob: Config) -> Pair {
        let mut net = Pair::start(alice, bob);
        let bob_handle = net
            .lookup(Pair::ALICE, "bob.udp")
            .unwrap_or_else(|e| panic!("{e}"));
        Pair { net, bob_handle }
    }

    /// Alice and bob with these configs, started and nothing else.
    pub fn start(alice: Config, bob: Config) -> Net {
        let (a, b) = (overlay_addr(1), overlay_addr(2));
        Net::new(vec![("alice", a, alice), ("bob", b, bob)])
    }

    /// Alice's own TUN address (the source of her apps' packets).
    pub fn alice_tun(&self) -> Ipv4Addr {
        self.net.nodes[Pair::ALICE].cfg.handles.tun_v4
    }

    /// A UDP packet of `size` bytes from alice's apps to `bob.udp`'s handle.
    pub fn packet_to_bob(&self, size: usize) -> Vec<u8> {
        udp_packet(self.alice_tun(), self.bob_handle, size)
    }

    /// The datagram alice sends bob for `packet` (captured, not delivered).
    pub fn datagram_for_bob(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut sent = self.net.capture_send(Pair::ALICE, packet);
        assert_eq!(sent.len(), 1, "one packet, one datagram");
        let (to, bytes) = sent.pop().expect("one datagram");
        assert_eq!(to, self.net.nodes[Pair::BOB].addr);
        bytes
    }

    pub fn alice(&mut self) -> &mut Engine {
        &mut self.net.nodes[Pair::ALICE].engine
    }

    pub fn bob(&mut self) -> &mut Engine {
        &mut self.net.nodes[Pair::BOB].engine
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

/// Alice (10.0.0.1), the gateway `gw` (10.0.0.3) and carol (10.0.0.4), with alice's path to
/// `carol.udp_gw.udp` — over `gw.udp`, then on to `carol.udp` — up.
pub struct Chain {
    pub net: Net,
    /// Alice's handle for `carol.udp_gw.udp`.
    pub carol_handle: Ipv4Addr,
}

impl Chain {
    pub const ALICE: usize = 0;
    pub const GW: usize = 1;
    pub const CAROL: usize = 2;
    /// The name alice looks up.
    pub const NAME: &'static str = "carol.udp_gw.udp";

    pub fn new() -> Chain {
        let (a, g, c) = (overlay_addr(1), overlay_addr(3), overlay_addr(4));
        let mut net = Net::new(vec![
            ("alice", a, node_config("alice", &[("gw", g)], false)),
            ("gw", g, node_config("gw", &[("carol", c)], true)),
            ("carol", c, node_config("carol", &[("gw", g)], false)),
        ]);
        let carol_handle = net
            .lookup(Chain::ALICE, Chain::NAME)
            .unwrap_or_else(|e| panic!("{e}"));
        Chain { net, carol_handle }
    }

    /// A UDP packet of `size` bytes from alice's apps to carol's handle.
    pub fn packet_to_carol(&self, size: usize) -> Vec<u8> {
        let src = self.net.nodes[Chain::ALICE].cfg.handles.tun_v4;
        udp_packet(src, self.carol_handle, size)
    }

    /// The datagram alice sends the gateway for `packet` (captured, not delivered).
    pub fn datagram_for_gw(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut sent = self.net.capture_send(Chain::ALICE, packet);
        assert_eq!(sent.len(), 1, "one packet, one datagram");
        let (to, bytes) = sent.pop().expect("one datagram");
        assert_eq!(to, self.net.nodes[Chain::GW].addr);
        bytes
    }

    pub fn gw(&mut self) -> &mut Engine {
        &mut self.net.nodes[Chain::GW].engine
    }
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

/// Alice (10.0.0.1) and the legacy server gateway `gw` (10.0.0.3), with alice's plain
/// path to the legacy server `10.9.0.80.ip_gw.udp` up: the path ends at gw, which writes
/// its packets to its TUN towards 10.9.0.80 from the path's egress address.
pub struct LegacyChain {
    pub net: Net,
    /// Alice's handle for the server.
    pub server_handle: Ipv4Addr,
    /// gw's egress address for alice's path.
    pub egress: Ipv4Addr,
}

impl LegacyChain {
    pub const ALICE: usize = 0;
    pub const GW: usize = 1;
    /// The legacy server's address.
    pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 80);
    pub const NAME: &'static str = "10.9.0.80.ip_gw.udp";

    pub fn new() -> LegacyChain {
        let (a, g) = (overlay_addr(1), overlay_addr(3));
        let mut gw = node_config("gw", &[("alice", a)], true);
        gw.legacy_server = Some(ocala_engine::legacy::LegacyServerConfig {
            allow: vec![ocala_engine::legacy::AllowRule {
                clients: vec!["alice.udp".into()],
                destinations: vec!["10.9.0.0/16".into()],
                plain: true,
            }],
            resolve_ttl_secs: 60,
        });
        let mut net = Net::new(vec![
            ("alice", a, node_config("alice", &[("gw", g)], false)),
            ("gw", g, gw),
        ]);
        let server_handle = net
            .lookup(LegacyChain::ALICE, LegacyChain::NAME)
            .unwrap_or_else(|e| panic!("{e}"));
        let egress = net.bound(LegacyChain::GW, "10.9.0.80.ip<alice.udp");
        LegacyChain {
            net,
            server_handle,
            egress,
        }
    }

    /// A UDP packet of `size` bytes from alice's apps to the server's handle.
    pub fn packet_to_server(&self, size: usize) -> Vec<u8> {
        let src = self.net.nodes[LegacyChain::ALICE].cfg.handles.tun_v4;
        udp_packet(src, self.server_handle, size)
    }

    /// The server's answer as gw's TUN hands it over: to the egress address.
    pub fn packet_from_server(&self, size: usize) -> Vec<u8> {
        udp_packet(LegacyChain::SERVER, self.egress, size)
    }

    /// The datagram alice sends gw for `packet` (captured, not delivered).
    pub fn datagram_for_gw(&mut self, packet: &[u8]) -> Vec<u8> {
        let mut sent = self.net.capture_send(LegacyChain::ALICE, packet);
        assert_eq!(sent.len(), 1, "one packet, one datagram");
        sent.pop().expect("one datagram").1
    }

    pub fn gw(&mut self) -> &mut Engine {
        &mut self.net.nodes[LegacyChain::GW].engine
    }
}

impl Default for LegacyChain {
    fn default() -> Self {
        LegacyChain::new()
    }
}

/// A legacy client gateway `gw` (10.0.0.3) for the LAN 192.168.1.0/24 and bob (10.0.0.2),
/// with the paths of `clients` LAN clients (192.168.1.10 on) to `bob.udp` up: one handle
/// address, one path per client.
pub struct LanChain {
    pub net: Net,
    /// gw's handle for bob, shared by every client.
    pub bob_handle: Ipv4Addr,
}

impl LanChain {
    pub const GW: usize = 0;
    pub const BOB: usize = 1;
    pub const NAME: &'static str = "bob.udp";

    /// The `n`th LAN client's address.
    pub fn client(n: usize) -> Ipv4Addr {
        let n = u32::try_from(n).expect("a LAN's worth of clients");
        Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 1, 10)) + n)
    }

    pub fn new(clients: usize) -> LanChain {
        let (g, b) = (overlay_addr(3), overlay_addr(2));
        let mut gw = node_config("gw", &[("bob", b)], false);
        gw.legacy_client = Some(ocala_engine::legacy::LegacyClientConfig {
            lan: vec!["192.168.0.0/16".parse().expect("a prefix")],
        });
        let mut net = Net::new(vec![
            ("gw", g, gw),
            ("bob", b, node_config("bob", &[("gw", g)], false)),
        ]);
        let mut bob_handle = None;
        for n in 0..clients {
            let h = net
                .lookup_from(LanChain::GW, LanChain::client(n), LanChain::NAME)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(bob_handle.is_none_or(|b| b == h), "one shared handle");
            bob_handle = Some(h);
        }
        LanChain {
            net,
            bob_handle: bob_handle.expect("at least one client"),
        }
    }

    /// LAN client `n`'s query for bob, as gw's TUN hands it over.
    pub fn query_from(&self, n: usize) -> Vec<u8> {
        let cfg = &self.net.nodes[LanChain::GW].cfg;
        dns_query_packet_from(cfg, LanChain::client(n), 7, LanChain::NAME, 5353)
    }

    /// A UDP packet of `size` bytes from LAN client `n` to bob's handle.
    pub fn packet_from(&self, n: usize, size: usize) -> Vec<u8> {
        udp_packet(LanChain::client(n), self.bob_handle, size)
    }

    pub fn gw(&mut self) -> &mut Engine {
        &mut self.net.nodes[LanChain::GW].engine
    }
}

/// An `i3` host's config (overlay `i3` on [`PORT`], plain paths) whose only rendezvous server
/// is `server`; `serve` runs the server role on it too. Triggers are refreshed once an hour
/// and direct paths probed once a minute, so a measured window holds data packets only
/// (refreshes and probes are control messages, rare, and built outside the data path's
/// buffer pool).
pub fn i3_node_config(local_name: &str, server: SocketAddr, serve: bool) -> Config {
    let mut cfg = node_config(local_name, &[], false);
    let overlay = &mut cfg.overlays[0];
    overlay.name = "i3".into();
    overlay.module = "i3".into();
    overlay.i3.servers = vec![server];
    overlay.i3.serve_as = serve.then_some(server);
    overlay.i3.refresh_secs = 3600;
    overlay.i3.probe_ms = 60_000;
    cfg
}

/// Alice (10.0.0.1) and bob (10.0.0.2), `i3` hosts with no route of their own, and the i3
/// server `s` (10.0.0.9), with alice's path to `bob.i3` or `bob.shortcut.i3` up. For the
/// shortcut, packets flow until alice sends straight to bob's address.
pub struct I3Trio {
    pub net: Net,
    /// Alice's handle for the name.
    pub bob_handle: Ipv4Addr,
}

impl I3Trio {
    pub const ALICE: usize = 0;
    pub const BOB: usize = 1;
    pub const SERVER: usize = 2;

    pub fn new(name: &str) -> I3Trio {
        let s = overlay_addr(9);
        let mut net = Net::new(vec![
            ("alice", overlay_addr(1), i3_node_config("alice", s, false)),
            ("bob", overlay_addr(2), i3_node_config("bob", s, false)),
            ("s", s, i3_node_config("s", s, true)),
        ]);
        // The hosts' triggers go in on their first tick.
        net.advance(Duration::from_millis(10));
        let bob_handle = net
            .lookup(I3Trio::ALICE, name)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut trio = I3Trio { net, bob_handle };
        if name.contains(".shortcut.") {
            let bob = trio.net.nodes[I3Trio::BOB].addr;
            let packet = trio.packet_to_bob(100);
            // A relayed packet asks for the shortcut (once per refresh period), so the first
            // one must reach the server.
            for _ in 0..100 {
                trio.net.tun_input(I3Trio::ALICE, &packet);
                trio.net.advance(Duration::from_millis(100));
                if trio.datagram_for(&packet).0 == bob {
                    return trio;
                }
            }
            panic!("{name}: no direct path within 10 s");
        }
        trio
    }

    /// A UDP packet of `size` bytes from alice's apps to bob's handle.
    pub fn packet_to_bob(&self, size: usize) -> Vec<u8> {
        let src = self.net.nodes[I3Trio::ALICE].cfg.handles.tun_v4;
        udp_packet(src, self.bob_handle, size)
    }

    /// Where alice sends `packet`, and the datagram (captured, not delivered).
    pub fn datagram_for(&mut self, packet: &[u8]) -> (SocketAddr, Vec<u8>) {
        let mut sent = self.net.capture_send(I3Trio::ALICE, packet);
        assert_eq!(sent.len(), 1, "one packet, one datagram");
        sent.pop().expect("one datagram")
    }
}

/// Two boringtun peers with fixed keys, handshake done (initiation, response, and the
/// initiator's keepalive that lets the responder send too): the userspace WireGuard that
/// the secure benches compare against.
pub fn wireguard_pair() -> (boringtun::noise::Tunn, boringtun::noise::Tunn) {
    use boringtun::noise::{Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};
    let (a_key, b_key) = (
        StaticSecret::from([0x11; 32]),
        StaticSecret::from([0x22; 32]),
    );
    let (a_pub, b_pub) = (PublicKey::from(&a_key), PublicKey::from(&b_key));
    let mut a = Tunn::new(a_key, b_pub, None, None, 1, None);
    let mut b = Tunn::new(b_key, a_pub, None, None, 2, None);
    let (mut x, mut y) = (vec![0u8; 2048], vec![0u8; 2048]);
    let init = match a.format_handshake_initiation(&mut x, false) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("initiation: {other:?}"),
    };
    let response = match b.decapsulate(None, &init, &mut y) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("response: {other:?}"),
    };
    let keepalive = match a.decapsulate(None, &response, &mut x) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("keepalive: {other:?}"),
    };
    match b.decapsulate(None, &keepalive, &mut y) {
        TunnResult::Done => {}
        other => panic!("keepalive at b: {other:?}"),
    }
    (a, b)
}
