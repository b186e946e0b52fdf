//! Engine-level tests: two or three engines wired back to back in memory (quinn's `Pair`
//! style), with time moved by hand, and bad input thrown at every entry point.

use crate::api::{ApiError, DropReason, Event, Input, Output, OverlayId};
use crate::config::{Config, OverlayConfig, Protection, RuleConfig};
use crate::dns::message::{build_address_query, parse_address_answer};
use crate::engine::Engine;
use crate::time::Instant;
use crate::wire::message::{Message, RejectReason, Setup};
use crate::wire::rewrite::write_udp_packet;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

mod ciphers;
mod congestion;
mod in_place;
mod invariants;
mod legacy;
mod negotiation;
mod partial;
mod readers;
mod secure;
mod trace;

const UDP: OverlayId = OverlayId(0);

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([10, 0, 0, i]), 4789)
}

/// A node named `name` on one `udp` overlay, knowing `peers` (name, index).
pub(crate) fn config(name: &str, peers: &[(&str, u8)], gateway: bool) -> Config {
    let mut book = BTreeMap::new();
    for (p, i) in peers {
        book.insert(p.to_string(), addr(*i));
    }
    let mut cfg = Config {
        overlays: vec![OverlayConfig {
            name: "udp".into(),
            module: "udp".into(),
            local_name: name.into(),
            port: 4789,
            keepalive_secs: 25,
            address_book: book,
            i3: Default::default(),
            ron: Default::default(),
        }],
        gateway,
        ..Config::default()
    };
    // These tests are about OC-I; security has its own below.
    cfg.security.default = Protection::Plain;
    cfg.security.accept_plain = true;
    cfg
}

/// Engines at addresses 10.0.0.1, .2, ...; datagrams between them arrive instantly.
pub(crate) struct Net {
    nodes: Vec<Engine>,
    now: Instant,
    /// Packets each node wrote to its TUN.
    tun: Vec<Vec<Vec<u8>>>,
    /// For each of those, whether the engine marked it authentic.
    authentic: Vec<Vec<bool>>,
    /// For each of those, where the engine said its checksum is partial.
    partial: Vec<Vec<Option<crate::wire::checksum::PartialChecksum>>>,
    events: Vec<Vec<Event>>,
    /// Datagrams sent to addresses that are not nodes.
    strays: Vec<(SocketAddr, Vec<u8>)>,
    /// Every datagram delivered between nodes: (from node, to node, bytes).
    wire: Vec<(usize, usize, Vec<u8>)>,
    /// Sees (and may change) every datagram before delivery: a man in the middle.
    tamper: Option<Tamper>,
    /// What the upstream resolver answers: host name to address.
    hosts: BTreeMap<String, IpAddr>,
    /// How long every delivered datagram reports having waited in its receive queue.
    queued: Duration,
    /// Whether the underlay marks ECN-capable datagrams CE, as a router's queue would.
    underlay_marks: bool,
}

/// A man in the middle: sees and may rewrite each datagram.
type Tamper = Box<dyn FnMut(&mut Vec<u8>)>;

impl Net {
    fn new(configs: Vec<Config>) -> Net {
        let n = configs.len();
        let nodes = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| Engine::new(c, [i as u8; 32], Instant::ZERO).unwrap())
            .collect();
        Net {
            nodes,
            now: Instant::ZERO,
            tun: vec![Vec::new(); n],
            authentic: vec![Vec::new(); n],
            partial: vec![Vec::new(); n],
            events: vec![Vec::new(); n],
            strays: Vec::new(),
            wire: Vec::new(),
            tamper: None,
            hosts: BTreeMap::new(),
            queued: Duration::ZERO,
            underlay_marks: false,
        }
    }

    fn input(&mut self, node: usize, input: Input<'_>) {
        let now = self.now;
        self.nodes[node].handle_input(now, input).unwrap();
        self.settle(node, &[]);
    }

    /// Feeds `node` a datagram from `from`, as its driver would, and settles.
    fn datagram(&mut self, node: usize, from: &SocketAddr, payload: &mut [u8]) {
        let input = Input::Datagram {
            overlay: UDP,
            from,
            payload,
            queued: Duration::ZERO,
            ecn: crate::Ecn::NotEct,
        };
        let now = self.now;
        self.nodes[node].handle_input(now, input).unwrap();
        self.settle(node, payload);
    }

    /// Drains `first` (which was last fed a datagram of payload `lent`, if any), then
    /// delivers every datagram until the network is quiet, each drained at once as a
    /// driver does, so that what it delivers in place is read from it.
    fn settle(&mut self, first: usize, lent: &[u8]) {
        let mut queue = vec![(first, self.drain(first, lent))];
        while let Some((node, datagrams)) = queue.pop() {
            for (to, mut payload, mut ecn) in datagrams {
                if self.underlay_marks {
                    ecn = ecn.congested().unwrap_or(ecn);
                }
                if let Some(t) = self.tamper.as_mut() {
                    t(&mut payload);
                }
                let Some(dst) = (0..self.nodes.len()).find(|&i| addr(i as u8 + 1) == to) else {
                    self.strays.push((to, payload));
                    continue;
                };
                let from = addr(node as u8 + 1);
                self.wire.push((node, dst, payload.clone()));
                let now = self.now;
                self.nodes[dst]
                    .handle_input(
                        now,
                        Input::Datagram {
                            overlay: UDP,
                            from: &from,
                            payload: &mut payload,
                            queued: self.queued,
                            ecn,
                        },
                    )
                    .unwrap();
                let sent = self.drain(dst, &payload);
                queue.push((dst, sent));
            }
        }
    }

    /// Carries out what `node` asked for, but for its datagrams, which it returns; packets
    /// it delivered in place are read from `lent`, the payload of its last datagram.
    fn drain(&mut self, node: usize, lent: &[u8]) -> Vec<(SocketAddr, Vec<u8>, crate::Ecn)> {
        let mut datagrams = Vec::new();
        loop {
            match self.nodes[node].poll_output() {
                Output::Timeout(_) => return datagrams,
                Output::WriteTun(p) => {
                    self.authentic[node].push(p.authentic());
                    self.partial[node].push(p.partial_checksum());
                    self.tun[node].push(p.to_vec());
                }
                Output::WriteTunInPlace(d) => {
                    assert_eq!(d.datagram, 0, "one datagram a batch");
                    self.authentic[node].push(false);
                    self.partial[node].push(d.partial);
                    self.tun[node].push(lent[d.range].to_vec());
                }
                Output::Transmit {
                    to, payload, ecn, ..
                } => datagrams.push((to, payload.to_vec(), ecn)),
                Output::UpstreamDns { id, query } => {
                    let answer = crate::dns::message::parse_query(&query).ok().and_then(|q| {
                        let ip = *self.hosts.get(&q.name)?;
                        // An address of the other family: the name exists, with no data.
                        let same = ip.is_ipv6() == (q.qtype == 28);
                        let ips = if same { vec![ip] } else { Vec::new() };
                        Some(crate::dns::message::answer_addresses(&q, &ips, 60))
                    });
                    if let Some(a) = answer {
                        let now = self.now;
                        self.nodes[node]
                            .handle_input(now, Input::Resolved { id, result: Ok(&a) })
                            .unwrap();
                    }
                }
                Output::Event(e) => self.events[node].push(e),
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        for i in 0..self.nodes.len() {
            self.input(i, Input::Timeout);
        }
    }

    /// An app on `node` asks for `name`; returns the DNS answer bytes written back.
    fn lookup(&mut self, node: usize, name: &str) -> Option<Vec<u8>> {
        self.ask(node, name, false)
    }

    /// Like `lookup`, for AAAA when `v6`.
    fn ask(&mut self, node: usize, name: &str, v6: bool) -> Option<Vec<u8>> {
        let query = build_address_query(7, name, v6).unwrap();
        let h = &self.nodes[node].cfg.handles;
        let (client, server) = (
            SocketAddr::new(h.tun_v4.into(), 5353),
            SocketAddr::new(h.dns_v4.into(), 53),
        );
        let mut packet = Vec::new();
        write_udp_packet(&mut packet, client, server, &query).unwrap();
        let before = self.tun[node].len();
        self.input(node, Input::TunPacket(&packet));
        self.tun[node].get(before).map(|p| p[28..].to_vec())
    }

    fn drops(&self, node: usize, reason: DropReason) -> u64 {
        self.nodes[node].drops.get(&reason).copied().unwrap_or(0)
    }
}

/// The address in the first A record of an answer.
fn answered_v4(answer: &[u8]) -> IpAddr {
    parse_address_answer(answer, 7).unwrap()[0]
}

fn rcode(answer: &[u8]) -> u8 {
    answer[3] & 0x0f
}

fn udp_to(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    write_udp_packet(
        &mut p,
        SocketAddr::new(src, 1000),
        SocketAddr::new(dst, 2000),
        payload,
    )
    .unwrap();
    p
}

fn datagram(msg: &Message<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    msg.encode(&mut v).unwrap();
    v
}

/// alice, a gateway and carol, who reach each other only through it.
fn through_gateway() -> Net {
    Net::new(vec![
        config("alice", &[("gw", 2)], false),
        config("gw", &[("alice", 1), ("carol", 3)], true),
        config("carol", &[("gw", 2)], false),
    ])
}

fn pair() -> Net {
    Net::new(vec![
        config("alice", &[("bob", 2)], false),
        config("bob", &[("alice", 1)], false),
    ])
}

/// A pair whose path from alice to bob is up: the net, alice's handle for bob and alice's
/// own TUN address.
fn pair_up() -> (Net, IpAddr, IpAddr) {
    let mut net = pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("the path comes up"));
    let tun = net.nodes[0].cfg.handles.tun_v4.into();
    (net, handle, tun)
}

#[test]
fn lookup_sets_up_path_and_packets_arrive_rewritten() {
    let mut net = pair();
    let answer = net
        .lookup(0, "bob.udp")
        .expect("answered once the path is up");
    assert_eq!(rcode(&answer), 0);
    let handle = answered_v4(&answer);
    assert_eq!(handle, IpAddr::from([198, 18, 0, 3]));
    let alice_tun: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let packet = udp_to(alice_tun, handle, b"hello");
    net.input(0, Input::TunPacket(&packet));
    let got = net.tun[1].last().expect("delivered to bob");
    // At bob the packet comes from bob's handle for alice and goes to bob's own address.
    assert_eq!(&got[12..16], &[198, 18, 0, 3]);
    assert_eq!(&got[16..20], &[198, 18, 0, 1]);
    assert_eq!(&got[got.len() - 5..], b"hello");
    assert!(net.events[1]
        .iter()
        .any(|e| matches!(e, Event::PathAccepted { name, .. } if name == "alice.udp")));
}

/// With every keepalive lost on the way, what keeps the tunnels alive is data: each packet
/// that carries a live path's label tells the module its peer was heard
/// (`Overlay::authenticated`).
#[test]
fn data_alone_keeps_tunnels_alive_when_every_keepalive_is_lost() {
    let run = |with_data: bool| {
        let (mut net, at_alice, alice_tun) = pair_up();
        net.input(0, Input::TunPacket(&udp_to(alice_tun, at_alice, b"hi")));
        // Bob's handle for alice is where alice's packet came from.
        let got = net.tun[1].last().expect("delivered to bob").clone();
        let at_bob = IpAddr::from([got[12], got[13], got[14], got[15]]);
        let bob_tun: IpAddr = net.nodes[1].cfg.handles.tun_v4.into();
        net.tamper = Some(Box::new(|d: &mut Vec<u8>| {
            if d.first() == Some(&crate::wire::message::KEEPALIVE_TYPE_BYTE) {
                d[0] = 0xFF;
            }
        }));
        for _ in 0..300 {
            net.advance(Duration::from_secs(1));
            if with_data {
                net.input(0, Input::TunPacket(&udp_to(alice_tun, at_alice, b"a")));
                net.input(1, Input::TunPacket(&udp_to(bob_tun, at_bob, b"b")));
            }
        }
        [0, 1].map(|n| {
            net.events[n]
                .iter()
                .any(|e| matches!(e, Event::PathDown { .. }))
        })
    };
    assert_eq!(run(true), [false, false], "data kept both ends up");
    assert_eq!(
        run(false),
        [true, true],
        "without data both ends saw their peer go silent"
    );
}

/// A packet for local apps that is dropped on its way there (here rewritten in place, on a
/// plain path) leaves no output behind: nothing of it reaches the TUN, and the packets
/// after it arrive as ever.
#[test]
fn a_packet_dropped_at_delivery_leaves_no_output_behind() {
    use crate::wire::message::{DATA_HEADER_LEN, TYPE_DATA, VERSION};
    let (mut net, at_alice, alice_tun) = pair_up();
    net.tamper = Some(Box::new(|d: &mut Vec<u8>| {
        if d.first() == Some(&(VERSION << 4 | TYPE_DATA)) {
            // The inner packet's version nibble: no IP version at all.
            d[DATA_HEADER_LEN] = 0;
        }
    }));
    for _ in 0..3 {
        net.input(0, Input::TunPacket(&udp_to(alice_tun, at_alice, b"bad")));
    }
    assert!(net.tun[1].is_empty(), "{:?}", net.tun[1]);
    let malformed: u64 = net.nodes[1]
        .drops
        .iter()
        .filter(|(r, _)| matches!(r, DropReason::InnerMalformed(_)))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(malformed, 3);
    net.tamper = None;
    net.input(0, Input::TunPacket(&udp_to(alice_tun, at_alice, b"good")));
    assert_eq!(net.tun[1].len(), 1);
    assert!(net.tun[1][0].ends_with(b"good"));
}

/// A datagram built in its output's place (`engine::stage_datagram`) that cannot go out is
/// taken back alone: what was queued before it stays, and taking back when nothing is
/// staged takes nothing.
#[test]
fn a_staged_datagram_taken_back_leaves_the_outputs_before_it() {
    let mut net = pair();
    let e = &mut net.nodes[0];
    e.drop_input(DropReason::NotOurs);
    let staged = crate::engine::stage_datagram(
        &mut e.out,
        crate::OverlayId(0),
        e.pool.take(),
        crate::Ecn::NotEct,
    );
    staged
        .expect("a datagram was staged")
        .extend_from_slice(b"x");
    e.unstage();
    e.unstage();
    assert!(matches!(
        e.poll_output(),
        Output::Event(Event::Dropped {
            reason: DropReason::NotOurs
        })
    ));
    assert!(matches!(e.poll_output(), Output::Timeout(_)));
}

#[test]
fn packets_too_big_for_the_path_get_icmp_back() {
    let mut net = pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let big = udp_to(src, handle, &[7u8; 1600]);
    let before = net.tun[0].len();
    net.input(0, Input::TunPacket(&big));
    let icmp = net.tun[0].get(before).expect("ICMP back to the app");
    assert_eq!(
        (icmp[9], icmp[20], icmp[21]),
        (1, 3, 4),
        "ICMP fragmentation needed"
    );
    assert_eq!(
        u16::from_be_bytes([icmp[26], icmp[27]]),
        1400,
        "next-hop MTU"
    );
    assert_eq!(&icmp[12..16], &[198, 18, 0, 3], "from the handle");
    assert!(net.tun[1].is_empty(), "nothing sent on");
    assert_eq!(net.drops(0, DropReason::TooBig), 1);
    // Without DF an IPv4 packet may still go: the underlay fragments it.
    let mut no_df = big.clone();
    no_df[6] &= !0x40;
    no_df[10] = 0;
    no_df[11] = 0;
    let c = crate::wire::checksum::internet_checksum(&no_df[..20]);
    no_df[10..12].copy_from_slice(&c.to_be_bytes());
    net.input(0, Input::TunPacket(&no_df));
    assert_eq!(net.tun[1].len(), 1);
}

#[test]
fn a_host_found_by_dns_that_already_reached_us_shares_its_tunnel() {
    // bob knows alice; alice finds bob only through DNS, after bob has opened a path to her.
    let mut net = Net::new(vec![
        config("alice", &[], false),
        config("bob", &[("alice", 1)], false),
    ]);
    net.hosts.insert("bob".into(), IpAddr::from([10, 0, 0, 2]));
    net.lookup(1, "alice.udp").expect("bob reaches alice");
    let answer = net
        .lookup(0, "bob.udp")
        .expect("alice reaches bob over the same tunnel");
    assert_eq!(rcode(&answer), 0);
    assert_eq!(net.nodes[0].tunnels.iter().count(), 1, "one tunnel to bob");
    assert_eq!(net.drops(0, DropReason::WrongPeer), 0);
}

#[test]
fn time_going_backwards_is_the_callers_error() {
    let mut e = Engine::new(config("a", &[], false), [0; 32], Instant::from_nanos(10)).unwrap();
    let err = e
        .handle_input(Instant::from_nanos(5), Input::Timeout)
        .unwrap_err();
    assert!(matches!(err, ApiError::TimeWentBackwards { .. }));
    assert!(matches!(
        e.batch(Instant::from_nanos(5)).err(),
        Some(ApiError::TimeWentBackwards { .. })
    ));
}

/// A module's answer to a datagram (here udp's to a keepalive) leaves with the datagram's
/// own outputs, not at the module's next timer.
#[test]
fn a_keepalive_is_answered_at_once() {
    let mut net = pair();
    net.lookup(0, "bob.udp").unwrap();
    let mut probe = datagram(&Message::Keepalive(crate::wire::message::Keepalive {
        reply_requested: true,
        is_reply: false,
        seq: 77,
    }));
    let bob = &mut net.nodes[1];
    let datagram = Input::Datagram {
        overlay: UDP,
        from: &addr(1),
        payload: &mut probe,
        queued: Duration::ZERO,
        ecn: crate::wire::ecn::Ecn::NotEct,
    };
    bob.handle_input(net.now, datagram).unwrap();
    let Output::Transmit { to, payload, .. } = bob.poll_output() else {
        panic!("bob answered nothing");
    };
    assert_eq!(to, addr(1));
    assert!(matches!(
        Message::parse(&payload),
        Ok(Message::Keepalive(k)) if k.is_reply && k.seq == 77
    ));
}

/// Inputs fed one by one through [`Engine::batch`] (as ocalad feeds a super-packet's
/// segments) come out as the same list through `handle_batch` does.
#[test]
fn a_batch_fed_one_by_one_is_a_batch() {
    let outputs = |one_by_one: bool| {
        let (mut net, handle, tun) = pair_up();
        let packets: Vec<Vec<u8>> = (0..3u8).map(|i| udp_to(tun, handle, &[i; 40])).collect();
        let now = net.now.saturating_add(Duration::from_millis(5));
        let alice = &mut net.nodes[0];
        if one_by_one {
            let mut batch = alice.batch(now).unwrap();
            for p in &packets {
                batch.input(Input::TunPacket(p));
            }
        } else {
            let inputs = packets.iter().map(|p| Input::TunPacket(p));
            alice.handle_batch(now, inputs).unwrap();
        }
        let mut sent = Vec::new();
        while let Output::Transmit { to, payload, .. } = alice.poll_output() {
            sent.push((to, payload.to_vec()));
        }
        sent
    };
    let batched = outputs(false);
    assert_eq!(batched.len(), 3);
    assert_eq!(outputs(true), batched);
}

#[test]
fn config_errors_name_the_key() {
    let mut c = config("a", &[], false);
    c.overlays.push(c.overlays[0].clone());
    assert_eq!(
        Engine::new(c, [0; 32], Instant::ZERO).err().unwrap().key,
        "overlays[1].name"
    );
    let mut c = config("a", &[], false);
    c.overlays[0].module = "carrier-pigeon".into();
    let e = Engine::new(c, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "overlays[0].module");
    assert!(e.message.contains("carrier-pigeon"));
    let mut c = config("a", &[], false);
    c.overlays[0].name = "oci".into();
    assert_eq!(
        Engine::new(c, [0; 32], Instant::ZERO).err().unwrap().key,
        "overlays[0].name"
    );
    let mut c = config("a", &[], false);
    c.rules.push(RuleConfig {
        pattern: "(".into(),
        replace: "x".into(),
    });
    assert_eq!(
        Engine::new(c, [0; 32], Instant::ZERO).err().unwrap().key,
        "rules[0].pattern"
    );
}

#[test]
fn idle_handle_is_released_and_its_path_closed_at_both_ends() {
    let mut net = pair();
    net.lookup(0, "bob.udp").unwrap();
    assert_eq!(net.nodes[1].paths.len(), 1);
    net.advance(Duration::from_secs(3600));
    net.advance(Duration::from_secs(3600));
    net.advance(Duration::from_secs(10));
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::HandleReleased { name } if name == "bob.udp")));
    assert_eq!(net.nodes[0].paths.len(), 0);
    assert_eq!(
        net.nodes[1].paths.len(),
        0,
        "bob's end closed by alice's close"
    );
    assert!(net.nodes[0].handles.by_name("bob.udp").is_none());
}

#[test]
fn dns_refreshes_handle_so_it_is_not_released() {
    let mut net = pair();
    let first = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    for _ in 0..3 {
        net.advance(Duration::from_secs(3000));
        assert_eq!(answered_v4(&net.lookup(0, "bob.udp").unwrap()), first);
    }
    assert!(!net.events[0]
        .iter()
        .any(|e| matches!(e, Event::HandleReleased { .. })));
}

#[test]
fn packets_wait_bounded_while_path_comes_up() {
    let mut net = Net::new(vec![config("alice", &[("bob", 9)], false)]); // bob never answers
    net.lookup(0, "bob.udp");
    let handle = net.nodes[0]
        .handles
        .get(0)
        .map(|h| IpAddr::V4(h.v4))
        .unwrap();
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    for _ in 0..40 {
        net.input(0, Input::TunPacket(&udp_to(src, handle, b"x")));
    }
    let limit = net.nodes[0].cfg.limits.pending_packets as u64;
    assert_eq!(net.drops(0, DropReason::PendingFull), 40 - limit);
}

#[test]
fn setup_to_a_silent_peer_fails_with_servfail_after_backoff() {
    let mut net = Net::new(vec![config("alice", &[("bob", 9)], false)]);
    assert!(
        net.lookup(0, "bob.udp").is_none(),
        "no answer while the path comes up"
    );
    let mut setups = net.strays.len();
    assert_eq!(setups, 1);
    let mut waited = Duration::ZERO;
    let step = Duration::from_millis(50);
    while net.tun[0].is_empty() && waited < Duration::from_secs(10) {
        net.advance(step);
        waited += step;
        setups = net.strays.len();
    }
    let answer = net.tun[0].first().expect("SERVFAIL sent");
    assert_eq!(rcode(&answer[28..]), 2);
    assert_eq!(setups, 5, "five attempts");
    assert!(
        waited >= Duration::from_millis(4900) && waited <= Duration::from_millis(5100),
        "{waited:?}"
    );
    assert_eq!(net.nodes[0].paths.len(), 0);
    assert!(
        net.nodes[0].handles.by_name("bob.udp").is_none(),
        "never handed out: released"
    );
}

#[test]
fn a_setup_whose_retransmission_is_missed_breaks_the_tables_invariant() {
    let mut net = Net::new(vec![config("alice", &[("bob", 9)], false)]);
    assert!(net.lookup(0, "bob.udp").is_none());
    assert_eq!(net.nodes[0].check_tables(), Ok(()));
    // Time moves on but the timer that would move the setup on never runs (a lost wake-up).
    let late = Duration::from_millis(net.nodes[0].cfg.limits.setup_rto_ms);
    net.nodes[0].now = net.nodes[0].now.saturating_add(late);
    let why = net.nodes[0].check_tables().expect_err("a setup hangs on");
    assert!(why.contains("to bob.udp Connecting"), "{why}");
}

#[test]
fn checks_since_skip_still_tables_but_not_a_hanging_setup_or_a_silent_change() {
    let mut net = Net::new(vec![config("alice", &[("bob", 9)], false)]);
    assert!(net.lookup(0, "bob.udp").is_none());
    let mut last = crate::TablesChecked::default();
    assert_eq!(net.nodes[0].check_tables_since(&mut last), Ok(()));
    // A count drifts without the shape moving: caught by a full check within the bound.
    let tunnel = net.nodes[0]
        .tunnels
        .iter()
        .map(|(t, _)| t)
        .next()
        .expect("a tunnel");
    if let Some(t) = net.nodes[0].tunnels.get_mut(tunnel) {
        t.paths += 1;
    }
    let caught = (0..=crate::invariants::MAX_SKIPPED)
        .position(|_| net.nodes[0].check_tables_since(&mut last).is_err());
    assert_eq!(caught, Some(255), "the 256th check is a full one");
    if let Some(t) = net.nodes[0].tunnels.get_mut(tunnel) {
        t.paths -= 1;
    }
    let mut last = crate::TablesChecked::default();
    assert_eq!(net.nodes[0].check_tables_since(&mut last), Ok(()));
    // Its retransmission is missed with the tables as they were: caught at once.
    let late = Duration::from_millis(net.nodes[0].cfg.limits.setup_rto_ms);
    net.nodes[0].now = net.nodes[0].now.saturating_add(late);
    let why = net.nodes[0]
        .check_tables_since(&mut last)
        .expect_err("hangs");
    assert!(why.contains("to bob.udp Connecting"), "{why}");
}

#[test]
fn a_handle_apps_know_survives_a_failed_re_setup() {
    let mut net = pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    // bob vanishes; alice's path dies of silence and a packet tries to set it up again.
    net.nodes.truncate(1);
    net.advance(Duration::from_secs(80));
    net.advance(Duration::from_secs(10));
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::PathDown { .. })));
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"x")));
    for _ in 0..120 {
        net.advance(Duration::from_millis(50));
    }
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::SetupFailed { .. })));
    let h = net.nodes[0]
        .handles
        .by_name("bob.udp")
        .expect("still bound");
    assert_eq!(
        net.nodes[0].handles.get(h).map(|h| IpAddr::V4(h.v4)),
        Some(handle)
    );
}

#[test]
fn stale_labels_are_refused_and_answered_at_a_bounded_rate() {
    let mut net = pair();
    for i in 0..100u32 {
        let mut d = datagram(&Message::Data {
            label: 0x0010_0000 | i,
            payload: b"junk",
        });
        net.datagram(1, &addr(77), &mut d);
    }
    assert_eq!(net.drops(1, DropReason::UnknownLabel), 100);
    assert_eq!(
        net.strays.len(),
        32,
        "unknown-label closes are rate limited"
    );
}

/// Feeds a crafted setup to a node, returning the reject reason it answered with.
fn reject_for(net: &mut Net, node: usize, from: u8, setup: Setup<'_>) -> Option<RejectReason> {
    let before = net.strays.len();
    let mut d = datagram(&Message::Setup(setup));
    net.datagram(node, &addr(from), &mut d);
    net.strays[before..]
        .iter()
        .find_map(|(_, p)| match Message::parse(p) {
            Ok(Message::Reject(r)) => Some(r.reason),
            _ => None,
        })
}

fn setup<'a>(label: u32, path_id: u64, hops: u8, remaining: &'a str) -> Setup<'a> {
    Setup {
        sender_label: label,
        path_id,
        hop_count: hops,
        options: 0,
        return_name: "x.udp",
        remaining,
        handshake: &[],
        sources: Default::default(),
    }
}

#[test]
fn gateways_refuse_loops_and_too_many_hops() {
    let mut net = Net::new(vec![config("gw", &[("far", 50)], true)]);
    assert_eq!(
        reject_for(&mut net, 0, 60, setup(1, 42, 0, "far.udp")),
        None
    );
    assert_eq!(
        reject_for(&mut net, 0, 61, setup(2, 42, 1, "far.udp")),
        Some(RejectReason::Loop)
    );
    assert_eq!(
        reject_for(&mut net, 0, 62, setup(3, 43, 8, "far.udp")),
        Some(RejectReason::HopLimit)
    );
    assert_eq!(
        reject_for(&mut net, 0, 63, setup(4, 44, 0, "far.nosuch")),
        Some(RejectReason::UnknownOverlay)
    );
    assert_eq!(net.drops(0, DropReason::Loop), 1);
    assert_eq!(net.drops(0, DropReason::HopLimit), 1);
}

#[test]
fn a_plain_node_refuses_to_relay() {
    let mut net = Net::new(vec![config("plain", &[("far", 50)], false)]);
    assert_eq!(
        reject_for(&mut net, 0, 60, setup(1, 1, 0, "far.udp")),
        Some(RejectReason::NotAGateway)
    );
    assert_eq!(net.nodes[0].paths.len(), 0);
}

#[test]
fn two_hops_through_a_gateway_swap_labels() {
    let mut net = through_gateway();
    let handle = answered_v4(&net.lookup(0, "carol.udp_gw.udp").expect("path up"));
    assert!(net.events[2]
        .iter()
        .any(|e| matches!(e, Event::PathAccepted { name, .. } if name == "alice.udp_gw.udp")));
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"via gw")));
    assert!(net.tun[2].last().unwrap().ends_with(b"via gw"));
    assert_eq!(net.nodes[1].counters.relayed, 1);
    assert!(net.tun[1].is_empty(), "the gateway's apps see nothing");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_tun_packets_are_counted_never_fatal(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..30)) {
        let mut net = pair();
        for p in &packets {
            net.input(0, Input::TunPacket(p));
        }
        let drops: u64 = net.nodes[0].drops.values().sum();
        prop_assert!(drops <= packets.len() as u64);
        prop_assert_eq!(net.nodes[0].paths.len(), 0);
    }

    #[test]
    fn garbage_datagrams_leave_no_state(datagrams in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..30)) {
        let mut net = pair();
        let mut setups = 0;
        for d in &datagrams {
            if matches!(Message::parse(d), Ok(Message::Setup(_))) {
                setups += 1;
            }
            net.datagram(1, &addr(99), &mut d.clone());
        }
        prop_assert!(net.nodes[1].paths.len() <= setups);
        prop_assert!(net.nodes[1].handles.slab.len() <= setups);
    }

    #[test]
    fn garbage_dns_queries_are_answered_or_dropped(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 1..20)) {
        let mut net = pair();
        let h = net.nodes[0].cfg.handles.clone();
        for p in &payloads {
            let mut packet = Vec::new();
            write_udp_packet(&mut packet, SocketAddr::new(h.tun_v4.into(), 999), SocketAddr::new(h.dns_v4.into(), 53), p).unwrap();
            let before = net.tun[0].len() as u64 + net.drops(0, DropReason::DnsUnreadable);
            net.input(0, Input::TunPacket(&packet));
            let after = net.tun[0].len() as u64 + net.drops(0, DropReason::DnsUnreadable) + net.nodes[0].upstream.len() as u64;
            prop_assert!(after > before || net.nodes[0].waiting_queries > 0);
        }
    }
}
