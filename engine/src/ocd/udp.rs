//! The `udp` overlay: a direct tunnel over UDP to another ocala node. The peer's address
//! comes from the config's address book, an IP literal in the name, or a DNS lookup of the
//! host part done through the driver. Keepalives keep NAT bindings open and tell when a peer
//! has gone silent.

use super::{Datagram, HopSpec, Overlay, OverlayEvent, Peer, Received, TunnelRef};
use crate::config::OverlayConfig;
use crate::keyed::Keyed;
use crate::last_lookup::LastLookup;
use crate::packet::{Packet, PacketPool};
use crate::time::Instant;
use crate::wire::message::{Keepalive, Message, KEEPALIVE_TYPE_BYTE};
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where a tunnel's far end is.
#[derive(Debug)]
enum Remote {
    /// Waiting for the driver's DNS answer.
    Resolving { token: u64 },
    /// Known.
    Known(SocketAddr),
}

#[derive(Debug)]
struct Tunnel {
    remote: Remote,
    host: String,
    last_rx: Instant,
    last_tx: Instant,
    /// When the last keepalive was sent, so one goes out per interval at most.
    last_probe: Instant,
    /// Keepalives sent on this tunnel.
    probes: u32,
    /// The sequence number the last keepalive carried: keyed, so an off-path forger of
    /// the peer's address cannot answer it.
    probe_seq: u32,
}

/// The tunnel of each known remote address, with the last answer kept: the map's search
/// was about 2 % of the engine's work per packet. Any change forgets it (an address can
/// be given to a new tunnel).
#[derive(Debug, Default)]
struct Remotes {
    map: BTreeMap<SocketAddr, TunnelRef>,
    last: LastLookup<SocketAddr, TunnelRef>,
}

impl Remotes {
    fn get(&self, addr: &SocketAddr) -> Option<&TunnelRef> {
        self.map.get(addr)
    }

    /// [`Remotes::get`], remembering the answer.
    fn lookup(&self, addr: SocketAddr) -> Option<TunnelRef> {
        self.last.get(addr, || self.map.get(&addr).copied())
    }

    fn insert(&mut self, addr: SocketAddr, tunnel: TunnelRef) {
        self.last.forget();
        self.map.insert(addr, tunnel);
    }

    fn remove(&mut self, addr: &SocketAddr) {
        self.last.forget();
        self.map.remove(addr);
    }
}

/// The module.
pub struct UdpOverlay {
    port: u16,
    book: BTreeMap<String, SocketAddr>,
    keepalive: Duration,
    misses: u32,
    tunnels: Slab<Tunnel>,
    by_remote: Remotes,
    next_token: u64,
    next_tick: Instant,
    events: VecDeque<OverlayEvent>,
    /// Draws keepalive sequence numbers.
    seq_key: Keyed,
}

impl UdpOverlay {
    /// A module for one `[[overlays]]` entry with `module = "udp"`.
    pub fn new(cfg: &OverlayConfig, keepalive_misses: u32, seed: &[u8; 32]) -> UdpOverlay {
        UdpOverlay {
            port: cfg.port,
            book: cfg
                .address_book
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                .collect(),
            keepalive: Duration::from_secs(cfg.keepalive_secs.max(1)),
            misses: keepalive_misses.max(1),
            tunnels: Slab::new(),
            by_remote: Remotes::default(),
            next_token: 1,
            next_tick: Instant::MAX,
            events: VecDeque::new(),
            seq_key: Keyed::derive(seed, "udp keepalive sequence"),
        }
    }

    fn tick_period(&self) -> Duration {
        (self.keepalive / 5).max(Duration::from_millis(100))
    }

    fn arm_tick(&mut self, now: Instant) {
        if self.next_tick == Instant::MAX {
            self.next_tick = now.saturating_add(self.tick_period());
        }
    }

    /// Marks a tunnel usable at `addr`; if a tunnel to that address exists already (the
    /// peer reached us first, or another name resolved to it), OC-I is told to use that one:
    /// datagrams from the address can only belong to one tunnel.
    fn become_known(&mut self, now: Instant, tunnel: TunnelRef, addr: SocketAddr) {
        if let Some(&existing) = self.by_remote.get(&addr) {
            if existing != tunnel && self.tunnels.contains(existing as usize) {
                self.events
                    .push_back(OverlayEvent::SameAs { tunnel, existing });
                return;
            }
        }
        if let Some(t) = self.tunnels.get_mut(tunnel as usize) {
            t.remote = Remote::Known(addr);
            t.last_rx = now;
            t.last_tx = now;
            self.by_remote.insert(addr, tunnel);
            self.events.push_back(OverlayEvent::SetupDone(tunnel));
            self.arm_tick(now);
        }
    }

    fn probe(&mut self, now: Instant, tunnel: TunnelRef, addr: SocketAddr) {
        let Some(t) = self.tunnels.get_mut(tunnel as usize) else {
            return;
        };
        t.probes = t.probes.wrapping_add(1);
        t.probe_seq = self.seq_key.hash_one((tunnel, t.probes)) as u32;
        t.last_probe = now;
        t.last_tx = now;
        let msg = Message::Keepalive(Keepalive {
            reply_requested: true,
            is_reply: false,
            seq: t.probe_seq,
        });
        let mut payload = Packet::from_slice(&[]);
        if msg.encode(payload.tail_vec()).is_ok() {
            self.events
                .push_back(OverlayEvent::Transmit(Datagram { to: addr, payload }));
        }
    }
}

impl Overlay for UdpOverlay {
    fn parse_hop(&self, prefix: &str) -> Result<HopSpec, String> {
        // The udp overlay has no options of its own: the whole prefix is the host name.
        HopSpec::host_only(prefix)
    }

    fn setup(&mut self, now: Instant, hop: &HopSpec) -> TunnelRef {
        let host = hop.host.to_ascii_lowercase();
        let direct = self.book.get(&host).copied().or_else(|| {
            host.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, self.port))
        });
        if let Some(addr) = direct {
            if let Some(&existing) = self.by_remote.get(&addr) {
                if self.tunnels.contains(existing as usize) {
                    self.events.push_back(OverlayEvent::SetupDone(existing));
                    return existing;
                }
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        let tunnel = self.tunnels.insert(Tunnel {
            remote: Remote::Resolving { token },
            host: host.clone(),
            last_rx: now,
            last_tx: now,
            last_probe: now,
            probes: 0,
            probe_seq: 0,
        }) as TunnelRef;
        match direct {
            Some(addr) => self.become_known(now, tunnel, addr),
            None => self.events.push_back(OverlayEvent::Resolve { token, host }),
        }
        tunnel
    }

    fn accept(&mut self, now: Instant, from: &Peer) -> TunnelRef {
        // Our own tokens are socket addresses (see `receive`).
        let from = from
            .to_socket()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        if let Some(&existing) = self.by_remote.get(&from) {
            if self.tunnels.contains(existing as usize) {
                return existing;
            }
        }
        let tunnel = self.tunnels.insert(Tunnel {
            remote: Remote::Known(from),
            host: from.to_string(),
            last_rx: now,
            last_tx: now,
            last_probe: now,
            probes: 0,
            probe_seq: 0,
        }) as TunnelRef;
        self.by_remote.insert(from, tunnel);
        self.arm_tick(now);
        tunnel
    }

    fn reply(&mut self, _now: Instant, to: &Peer, datagram: Packet) {
        if let Some(to) = to.to_socket() {
            self.events.push_back(OverlayEvent::Transmit(Datagram {
                to,
                payload: datagram,
            }));
        }
    }

    fn close(&mut self, tunnel: TunnelRef) {
        let Some(t) = self.tunnels.try_remove(tunnel as usize) else {
            return;
        };
        if let Remote::Known(addr) = t.remote {
            if self.by_remote.get(&addr) == Some(&tunnel) {
                self.by_remote.remove(&addr);
            }
        }
        if self.tunnels.is_empty() {
            self.next_tick = Instant::MAX;
        }
    }

    fn send(&mut self, now: Instant, tunnel: TunnelRef, _: &mut Packet) -> Option<SocketAddr> {
        let t = self.tunnels.get_mut(tunnel as usize)?;
        match t.remote {
            Remote::Known(to) => {
                t.last_tx = now;
                Some(to)
            }
            Remote::Resolving { .. } => None,
        }
    }

    fn receive<'a>(
        &mut self,
        now: Instant,
        from: &SocketAddr,
        payload: &'a [u8],
        _pool: &mut PacketPool,
    ) -> Received<'a> {
        let from = *from;
        // Liveness comes from answers to our own keepalives and from what OC-I authenticates
        // (`authenticated`), not from the source address alone.
        let tunnel = self.by_remote.lookup(from);
        if payload.first() != Some(&KEEPALIVE_TYPE_BYTE) {
            return Received::Message {
                tunnel,
                peer: Peer::socket(from),
                message: payload,
            };
        }
        let ka = match Message::parse(payload) {
            Ok(Message::Keepalive(ka)) => ka,
            Ok(_) => {
                return Received::Message {
                    tunnel,
                    peer: Peer::socket(from),
                    message: payload,
                }
            }
            Err(e) => return Received::Malformed(e),
        };
        if let Some(t) = tunnel.and_then(|r| self.tunnels.get_mut(r as usize)) {
            if ka.is_reply && t.probes > 0 && ka.seq == t.probe_seq {
                t.last_rx = now;
            }
        }
        // Answer only peers we have a tunnel with, so spoofed probes cannot make us reflect.
        if ka.reply_requested && tunnel.is_some() {
            let reply = Message::Keepalive(Keepalive {
                reply_requested: false,
                is_reply: true,
                seq: ka.seq,
            });
            let mut out = Packet::from_slice(&[]);
            if reply.encode(out.tail_vec()).is_ok() {
                self.events.push_back(OverlayEvent::Transmit(Datagram {
                    to: from,
                    payload: out,
                }));
            }
        }
        Received::Consumed
    }

    fn resolved(&mut self, now: Instant, token: u64, result: Result<Vec<IpAddr>, String>) {
        let Some((tunnel, host)) = self.tunnels.iter().find_map(|(k, t)| {
            matches!(t.remote, Remote::Resolving { token: tk } if tk == token)
                .then(|| (k as TunnelRef, t.host.clone()))
        }) else {
            return;
        };
        match result {
            Ok(addrs) => match addrs.first() {
                Some(ip) => {
                    let addr = SocketAddr::new(*ip, self.port);
                    self.become_known(now, tunnel, addr);
                }
                None => self.events.push_back(OverlayEvent::SetupFailed(
                    tunnel,
                    format!("'{host}' has no address"),
                )),
            },
            Err(why) => self.events.push_back(OverlayEvent::SetupFailed(
                tunnel,
                format!("'{host}': {why}"),
            )),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = if self.tunnels.is_empty() {
            Instant::MAX
        } else {
            now.saturating_add(self.tick_period())
        };
        let dead_after = self.keepalive * self.misses;
        let mut probes = Vec::new();
        let mut dead = Vec::new();
        for (k, t) in self.tunnels.iter() {
            let Remote::Known(addr) = t.remote else {
                continue;
            };
            if now.since(t.last_rx) >= dead_after {
                dead.push(k as TunnelRef);
            } else if (now.since(t.last_tx) >= self.keepalive
                || now.since(t.last_rx) >= self.keepalive)
                && now.since(t.last_probe) >= self.keepalive
            {
                probes.push((k as TunnelRef, addr));
            }
        }
        for (k, addr) in probes {
            self.probe(now, k, addr);
        }
        for k in dead {
            if let Some(t) = self.tunnels.get_mut(k as usize) {
                // Reported once; OC-I closes the tunnel's paths and drops its references.
                t.last_rx = now;
            }
            self.events.push_back(OverlayEvent::TunnelDead(k));
        }
    }

    fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    fn poll_event(&mut self) -> Option<OverlayEvent> {
        self.events.pop_front()
    }

    fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    fn authenticated(&mut self, now: Instant, tunnel: TunnelRef) {
        if let Some(t) = self.tunnels.get_mut(tunnel as usize) {
            t.last_rx = now;
        }
    }

    fn describe(&self, tunnel: TunnelRef) -> String {
        match self.tunnels.get(tunnel as usize) {
            Some(Tunnel {
                remote: Remote::Known(a),
                host,
                ..
            }) => format!("{host} at {a}"),
            Some(Tunnel { host, .. }) => format!("{host} (resolving)"),
            None => "closed".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOB: &str = "192.0.2.2:4789";

    /// A module that knows bob, keepalives every second, dead after 3 quiet seconds, and
    /// its tunnel to bob (up at once, from the address book).
    fn with_bob() -> (UdpOverlay, TunnelRef) {
        let cfg = OverlayConfig {
            name: "udp".into(),
            module: "udp".into(),
            local_name: "alice".into(),
            port: 4789,
            keepalive_secs: 1,
            address_book: [("bob".to_string(), BOB.parse().unwrap())].into(),
            i3: Default::default(),
            ron: Default::default(),
        };
        let mut m = UdpOverlay::new(&cfg, 3, &[9; 32]);
        let t = m.setup(Instant::ZERO, &HopSpec::host_only("bob").unwrap());
        while m.poll_event().is_some() {}
        (m, t)
    }

    /// Runs the module in 100 ms steps for `secs`, feeding it what `heard` makes of each
    /// keepalive it sends; returns whether it reported the tunnel dead.
    fn run(
        m: &mut UdpOverlay,
        t: TunnelRef,
        secs: u64,
        mut heard: impl FnMut(&mut UdpOverlay, Instant, Option<Keepalive>),
    ) -> bool {
        let mut dead = false;
        for step in 1..=secs * 10 {
            let now = Instant::from_nanos(step * 100_000_000);
            m.handle_timeout(now);
            let mut probe = None;
            while let Some(e) = m.poll_event() {
                match e {
                    OverlayEvent::Transmit(Datagram { payload, .. }) => {
                        if let Ok(Message::Keepalive(k)) = Message::parse(&payload) {
                            probe = Some(k);
                        }
                    }
                    OverlayEvent::TunnelDead(d) => dead |= d == t,
                    _ => {}
                }
            }
            heard(m, now, probe);
        }
        dead
    }

    fn from_bob(m: &mut UdpOverlay, now: Instant, msg: &Message<'_>) {
        let mut bytes = Vec::new();
        msg.encode(&mut bytes).unwrap();
        let mut pool = PacketPool::default();
        let _ = m.receive(now, &BOB.parse().unwrap(), &bytes, &mut pool);
    }

    #[test]
    fn a_send_says_where_the_datagram_goes_and_queues_nothing() {
        let (mut m, t) = with_bob();
        let mut datagram = Packet::from_slice(b"data");
        let to = m.send(Instant::ZERO, t, &mut datagram);
        assert_eq!(to, Some(BOB.parse().unwrap()), "the tunnel to bob is up");
        assert_eq!(&*datagram, b"data", "udp adds no encapsulation");
        assert!(!m.has_events());
        assert!(m.poll_event().is_none(), "OC-I does not drain after a send");
        // A tunnel that is gone sends nothing.
        m.close(t);
        assert_eq!(m.send(Instant::ZERO, t, &mut datagram), None);
    }

    #[test]
    fn a_datagram_names_the_tunnel_its_address_has_now() {
        let (mut m, t) = with_bob();
        let bob: SocketAddr = BOB.parse().unwrap();
        let tunnel_of = |m: &mut UdpOverlay| {
            let data = [0x11, 0, 0, 0, 1];
            match m.receive(Instant::ZERO, &bob, &data, &mut PacketPool::default()) {
                Received::Message { tunnel, .. } => tunnel,
                _ => panic!("a data message"),
            }
        };
        assert_eq!(tunnel_of(&mut m), Some(t));
        assert_eq!(tunnel_of(&mut m), Some(t), "remembered");
        m.close(t);
        assert_eq!(tunnel_of(&mut m), None, "forgotten with the tunnel");
        let again = m.accept(Instant::ZERO, &Peer::socket(bob));
        assert_eq!(tunnel_of(&mut m), Some(again));
    }

    #[test]
    fn a_forger_of_the_peers_address_cannot_keep_a_dead_tunnel_alive() {
        let (mut m, t) = with_bob();
        // bob is gone; someone sends from his address all the time: data with made-up
        // labels, keepalive requests, and answers to keepalives with guessed numbers.
        let dead = run(&mut m, t, 6, |m, now, probe| {
            from_bob(
                m,
                now,
                &Message::Data {
                    label: 7,
                    payload: b"x",
                },
            );
            for seq in [0, 1, 2, probe.map_or(0, |p| p.seq.wrapping_add(1))] {
                from_bob(
                    m,
                    now,
                    &Message::Keepalive(Keepalive {
                        reply_requested: seq == 0,
                        is_reply: seq != 0,
                        seq,
                    }),
                );
            }
        });
        assert!(dead, "the forged datagrams kept bob's tunnel alive");
    }

    #[test]
    fn answers_to_our_keepalives_and_authenticated_packets_keep_it_alive() {
        let (mut m, t) = with_bob();
        let alive = !run(&mut m, t, 6, |m, now, probe| {
            if let Some(p) = probe {
                let answer = Keepalive {
                    reply_requested: false,
                    is_reply: true,
                    seq: p.seq,
                };
                from_bob(m, now, &Message::Keepalive(answer));
            }
        });
        assert!(alive, "bob answered every keepalive");
        let alive = !run(&mut m, t, 6, |m, now, _| m.authenticated(now, t));
        assert!(alive, "OC-I heard bob all along");
    }
}
