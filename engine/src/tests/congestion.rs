//! Congestion signals (`crate::codel`, `crate::wire::ecn`): from a long receive queue,
//! ECN-capable packets arrive marked and the others are dropped; a gateway marks the outer
//! header, which the end carries in, as it carries in marks from the underlay; a short queue
//! and small packets are left alone.

use super::secure::secure_pair;
use super::*;
use crate::wire::checksum::verify;
use crate::wire::ecn::{set_ecn, Ecn};

/// A UDP packet of `len` payload bytes from `node`'s apps to `handle` with the ECN field
/// set to `ecn`.
fn packet(net: &Net, node: usize, handle: IpAddr, ecn: u8, len: usize) -> Vec<u8> {
    let src: IpAddr = net.nodes[node].cfg.handles.tun_v4.into();
    let mut p = udp_to(src, handle, &vec![b'x'; len]);
    set_ecn(&mut p, Ecn::from_bits(ecn)).expect("an IPv4 header");
    p
}

/// Sends a bulk packet from node 0 to `handle` every 100 µs for `ms` milliseconds, each
/// arriving after waiting `queued`; returns the ECN fields of what the last node's apps
/// received.
fn send_for(net: &mut Net, handle: IpAddr, ms: u64, queued: Duration, ecn: u8) -> Vec<u8> {
    send_sized(net, handle, ms, queued, ecn, 1000)
}

fn send_sized(
    net: &mut Net,
    handle: IpAddr,
    ms: u64,
    queued: Duration,
    ecn: u8,
    len: usize,
) -> Vec<u8> {
    net.queued = queued;
    let last = net.nodes.len() - 1;
    let before = net.tun[last].len();
    for _ in 0..ms * 10 {
        net.now = net.now.saturating_add(Duration::from_micros(100));
        let p = packet(net, 0, handle, ecn, len);
        net.input(0, Input::TunPacket(&p));
    }
    net.tun[last][before..]
        .iter()
        .inspect(|p| assert!(verify(&p[..20]), "header checksum after marking"))
        .map(|p| p[1] & 0b11)
        .collect()
}

#[test]
fn a_standing_queue_marks_ecn_capable_packets_and_drops_the_others() {
    let mut net = pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    // A short queue: nothing is signalled.
    let calm = send_for(&mut net, handle, 50, Duration::from_micros(300), 0b10);
    assert_eq!(calm.len(), 500);
    assert!(calm.iter().all(|&e| e == 0b10));
    // A queue that stays above 500 µs: after 5 ms, CE marks, ever closer together.
    let ect = send_for(&mut net, handle, 30, Duration::from_millis(2), 0b10);
    assert_eq!(ect.len(), 300, "ECN-capable packets are never dropped");
    let marked = ect.iter().filter(|&&e| e == 0b11).count();
    assert!((4..30).contains(&marked), "{marked} marked");
    assert_eq!(net.nodes[1].counters.ecn_marked, marked as u64);
    assert_eq!(net.drops(1, DropReason::Congested), 0);
    // Not ECN-capable: the same signals are drops.
    let plain = send_for(&mut net, handle, 30, Duration::from_millis(2), 0);
    let dropped = net.drops(1, DropReason::Congested);
    assert!(dropped > 4, "{dropped} dropped");
    assert_eq!(plain.len() as u64 + dropped, 300);
    assert!(plain.iter().all(|&e| e == 0));
}

#[test]
fn small_packets_pass_a_long_queue_untouched() {
    let mut net = pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    // Pings and acknowledgements: neither marked nor dropped, however long the wait.
    for ecn in [0, 0b10] {
        let got = send_sized(&mut net, handle, 30, Duration::from_millis(20), ecn, 100);
        assert_eq!(got, vec![ecn; 300]);
    }
    assert_eq!(net.drops(1, DropReason::Congested), 0);
    assert_eq!(net.nodes[1].counters.ecn_marked, 0);
}

#[test]
fn packets_are_marked_after_decryption_on_a_secure_path() {
    let mut net = secure_pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    let got = send_for(&mut net, handle, 30, Duration::from_millis(2), 0b01);
    assert_eq!(got.len(), 300);
    assert!(got.iter().filter(|&&e| e == 0b11).count() >= 4);
    assert_eq!(net.drops(1, DropReason::Forged), 0);
}

#[test]
fn a_congested_gateway_marks_the_outer_header_and_the_end_carries_the_mark_in() {
    let mut net = through_gateway();
    // Only the gateway's queue signals.
    net.nodes[2].overlays[0].queue = crate::codel::Codel::new(Duration::ZERO, Duration::ZERO);
    let handle = answered_v4(&net.lookup(0, "carol.udp_gw.udp").unwrap());
    let got = send_for(&mut net, handle, 30, Duration::from_millis(2), 0b10);
    assert_eq!(
        got.len(),
        300,
        "ECN-capable packets are marked, not dropped"
    );
    let marked = got.iter().filter(|&&e| e == 0b11).count();
    assert!(marked >= 4, "{marked} marked");
    assert_eq!(net.nodes[2].counters.ecn_marked, marked as u64);
    assert_eq!(
        net.nodes[1].counters.ecn_marked, 0,
        "the gateway cannot open them"
    );
    // The gateway cannot mark what its sender did not make ECN-capable: it drops.
    let plain = send_for(&mut net, handle, 30, Duration::from_millis(2), 0);
    let dropped = net.drops(1, DropReason::Congested);
    assert!(dropped >= 4, "{dropped} dropped at the gateway");
    assert_eq!(plain.len() as u64 + dropped, 300);
}

#[test]
fn the_outer_header_starts_with_the_inner_ecn_field_and_underlay_marks_reach_the_app() {
    let mut net = secure_pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    // A router on the way marks every ECN-capable datagram (and cannot mark the others).
    net.underlay_marks = true;
    for (ecn, arrives) in [(0b00, 0b00), (0b01, 0b11), (0b10, 0b11), (0b11, 0b11)] {
        let got = send_sized(&mut net, handle, 1, Duration::ZERO, ecn, 100);
        assert_eq!(got, vec![arrives; 10], "sent {ecn:#04b}");
    }
    assert_eq!(
        net.nodes[1].counters.ecn_marked, 20,
        "the ECT(0) and ECT(1) ones"
    );
    assert_eq!(net.drops(1, DropReason::Congested), 0);
}

#[test]
fn a_zero_target_turns_signals_off_and_a_bad_interval_is_named() {
    let mut cfg = config("bob", &[("alice", 1)], false);
    cfg.limits.queue_target_us = 0;
    let mut net = Net::new(vec![config("alice", &[("bob", 2)], false), cfg]);
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    let got = send_for(&mut net, handle, 30, Duration::from_millis(50), 0);
    assert_eq!(got.len(), 300);
    let mut bad = config("a", &[], false);
    bad.limits.queue_interval_us = 100;
    let e = Engine::new(bad, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "limits.queue_interval_us");
}

/// A node on one `i3` overlay whose server is node 0 (10.0.0.1).
fn i3_node(name: &str, serve: bool) -> Config {
    let mut cfg = config(name, &[], false);
    let server = addr(1);
    cfg.overlays[0] = OverlayConfig {
        name: "i3".into(),
        module: "i3".into(),
        local_name: name.into(),
        port: 4789,
        keepalive_secs: 25,
        address_book: BTreeMap::new(),
        i3: crate::ocd::i3::I3Config {
            servers: vec![server],
            serve_as: serve.then_some(server),
            ..Default::default()
        },
        ron: Default::default(),
    };
    cfg
}

#[test]
fn an_i3_server_relays_the_ecn_field_as_it_came() {
    let mut net = Net::new(vec![
        i3_node("server", true),
        i3_node("alice", false),
        i3_node("bob", false),
    ]);
    net.advance(Duration::from_millis(100));
    let handle = answered_v4(&net.lookup(1, "bob.i3").expect("bob through the server"));
    // Marks on the way reach bob only if the server passed the field on.
    net.underlay_marks = true;
    let relayed_before = net.wire.iter().filter(|(from, _, _)| *from == 0).count();
    for _ in 0..5 {
        let p = packet(&net, 1, handle, 0b10, 600);
        net.input(1, Input::TunPacket(&p));
    }
    let relayed = net.wire.iter().filter(|(from, _, _)| *from == 0).count() - relayed_before;
    assert!(relayed >= 5, "the server relayed them ({relayed})");
    let got: Vec<u8> = net.tun[2]
        .iter()
        .rev()
        .take(5)
        .map(|p| p[1] & 0b11)
        .collect();
    assert_eq!(got, vec![0b11; 5]);
}
