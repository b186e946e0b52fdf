//! End-to-end security between engines: each refusal is checked to happen, and to be
//! counted — impersonation, a missing certificate, tampering, replays, downgrades, reflected
//! handshakes and the responder's policy.

use super::*;
use crate::config::HexBytes;
use crate::security::noise::public_key;
use crate::security::{CaKey, CertSpec, IdentityKey};

pub(super) const NOW: u64 = 1_800_000_000;

/// `config` with a certificate for `name.udp` from the test CA (or another `names`).
pub(super) fn secure(name: &str, peers: &[(&str, u8)], names: &[&str]) -> Config {
    let mut cfg = config(name, peers, false);
    let ca = CaKey::from_seed([7; 32]);
    let static_private = [name.len() as u8 + name.as_bytes()[0]; 32];
    let spec = CertSpec {
        serial: 1,
        names: names.iter().map(|n| n.to_string()).collect(),
        static_key: public_key(&static_private),
        identity_key: IdentityKey::from_seed([1; 32]).public(),
        not_before: NOW - 10,
        not_after: NOW + 86_400,
    };
    cfg.security = crate::config::SecurityConfig {
        static_key: Some(HexBytes(static_private.to_vec())),
        certificate: Some(HexBytes(ca.issue(&spec).unwrap().encode())),
        trust: vec![HexBytes(ca.public().to_vec())],
        unix_time_at_zero: NOW,
        ..Default::default()
    };
    cfg
}

pub(super) fn secure_pair() -> Net {
    Net::new(vec![
        secure("alice", &[("bob", 2)], &["alice.udp"]),
        secure("bob", &[("alice", 1)], &["bob.udp"]),
    ])
}

/// alice sends one UDP packet to bob's handle; returns the data datagram that crossed.
fn send_secret(net: &mut Net, handle: IpAddr) -> Vec<u8> {
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let before = net.wire.len();
    net.input(
        0,
        Input::TunPacket(&udp_to(src, handle, b"the secret payload")),
    );
    net.wire[before..]
        .iter()
        .find(|(from, _, d)| *from == 0 && d.first() == Some(&0x11))
        .map(|(_, _, d)| d.clone())
        .expect("a data datagram")
}

#[test]
fn secure_by_default_and_the_wire_shows_no_payload() {
    let mut net = secure_pair();
    let handle = answered_v4(
        &net.lookup(0, "bob.udp")
            .expect("answered after one round trip"),
    );
    let datagram = send_secret(&mut net, handle);
    assert!(
        !datagram.windows(6).any(|w| w == b"secret"),
        "payload in the clear"
    );
    assert!(net.tun[1].last().unwrap().ends_with(b"the secret payload"));
    let kinds: Vec<u8> = net.wire.iter().map(|(_, _, d)| d[0]).collect();
    assert_eq!(&kinds[..3], &[0x12, 0x13, 0x17], "setup, accept, confirm");
}

#[test]
fn packets_opened_on_a_secure_path_are_marked_authentic_and_no_others() {
    let mut net = secure_pair();
    net.nodes[1].cfg.security.accept_plain = true;
    let secure = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    let plain = answered_v4(&net.lookup(0, "bob.udp_plain.oci").expect("path up"));
    send_secret(&mut net, secure);
    send_secret(&mut net, plain);
    assert_eq!(
        net.authentic[1],
        [true, false],
        "bob: the secure path's packet only"
    );
    assert!(
        net.authentic[0].iter().all(|a| !a),
        "alice's DNS answers: not from a path"
    );
}

#[test]
fn tampered_and_replayed_packets_are_dropped_and_counted() {
    let mut net = secure_pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    let mut datagram = send_secret(&mut net, handle);
    let delivered = net.tun[1].len();
    net.datagram(1, &addr(1), &mut datagram);
    assert_eq!(net.drops(1, DropReason::Replayed), 1);
    let mut tampered = send_secret(&mut net, handle);
    let delivered_after = net.tun[1].len();
    let last = tampered.len() - 20;
    tampered[last] ^= 0x40;
    // A fresh nonce, so only the tag can catch it.
    tampered[12] = tampered[12].wrapping_add(10);
    net.datagram(1, &addr(1), &mut tampered);
    assert_eq!(net.drops(1, DropReason::Forged), 1);
    assert_eq!(
        net.tun[1].len(),
        delivered_after,
        "nothing delivered from forgeries"
    );
    assert_eq!(delivered_after, delivered + 1);
}

#[test]
fn an_impostor_with_a_valid_certificate_for_another_name_is_refused() {
    // The address book sends bob.udp to mallory, whose certificate names mallory.udp.
    let mut net = Net::new(vec![
        secure("alice", &[("bob", 2)], &["alice.udp"]),
        secure("mallory", &[("alice", 1)], &["mallory.udp"]),
    ]);
    let answer = net.lookup(0, "bob.udp").expect("answered");
    assert_eq!(rcode(&answer), 2, "SERVFAIL");
    assert!(String::from_utf8_lossy(&answer).contains("certificate names mallory.udp, not bob.udp"));
    assert_eq!(net.drops(0, DropReason::AuthFailed), 1);
    assert!(net.tun[1].is_empty());
}

#[test]
fn without_a_certificate_a_node_cannot_open_secure_paths() {
    let mut net = Net::new(vec![
        config("alice", &[("bob", 2)], false),
        secure("bob", &[], &["bob.udp"]),
    ]);
    net.nodes[0].cfg.security.default = Protection::Encrypt;
    let answer = net.lookup(0, "bob.udp").expect("answered at once");
    assert_eq!(rcode(&answer), 2);
    assert!(String::from_utf8_lossy(&answer).contains("no certificate"));
    assert!(net.wire.is_empty(), "nothing sent");
}

#[test]
fn a_gateway_cannot_downgrade_encrypt_to_plain() {
    // A man in the middle rewrites alice's setup to plain and drops its handshake.
    let strip = |d: &mut Vec<u8>| {
        if let Ok(Message::Setup(s)) = Message::parse(d) {
            let plain = Setup {
                options: 4,
                handshake: &[],
                ..s
            };
            let mut out = Vec::new();
            Message::Setup(plain).encode(&mut out).unwrap();
            *d = out;
        }
    };
    let mut net = secure_pair();
    net.tamper = Some(Box::new(strip));
    let answer = net.lookup(0, "bob.udp");
    assert!(
        answer.is_some_and(|a| rcode(&a) == 2),
        "bob refuses plain paths"
    );
    assert_eq!(net.drops(1, DropReason::Refused), 1);

    // Even a responder that accepts plain paths cannot make alice accept an answer without
    // the handshake she asked for.
    let mut net = secure_pair();
    net.nodes[1].cfg.security.accept_plain = true;
    net.tamper = Some(Box::new(strip));
    let answer = net.lookup(0, "bob.udp").expect("answered");
    assert_eq!(rcode(&answer), 2);
    assert!(String::from_utf8_lossy(&answer).contains("downgrade"));

    // Flipping the option bits but keeping the handshake breaks the Noise prologue: every
    // answer fails to decrypt (as a corrupted one would), alice tries again on each
    // retransmission, and once she gives up says the answers were tampered with.
    let mut net = secure_pair();
    net.tamper = Some(Box::new(|d: &mut Vec<u8>| {
        if d.first() == Some(&0x12) {
            d[14] = 2; // encrypt -> auth
        }
    }));
    assert!(net.lookup(0, "bob.udp").is_none(), "still trying");
    let before = net.tun[0].len();
    for _ in 0..100 {
        net.advance(Duration::from_millis(100));
    }
    let answer = net.tun[0].get(before).expect("answered in the end")[28..].to_vec();
    assert_eq!(rcode(&answer), 2);
    assert!(String::from_utf8_lossy(&answer).contains("did not decrypt"));
    assert!(net.drops(0, DropReason::Forged) >= 2, "one per answer");
}

#[test]
fn a_corrupted_accept_is_dropped_and_the_next_one_taken() {
    // The first accept alice gets has one bit of its handshake flipped on the way; her setup
    // is retransmitted, bob repeats his accept, and the path comes up.
    let mut net = secure_pair();
    let mut first = true;
    net.tamper = Some(Box::new(move |d: &mut Vec<u8>| {
        if d.first() == Some(&0x13) && first {
            first = false;
            let last = d.len() - 1;
            d[last] ^= 1;
        }
    }));
    assert!(
        net.lookup(0, "bob.udp").is_none(),
        "waiting for a good accept"
    );
    assert_eq!(net.drops(0, DropReason::Forged), 1);
    let before = net.tun[0].len();
    for _ in 0..10 {
        net.advance(Duration::from_millis(100));
    }
    let answer = net.tun[0].get(before).expect("answered")[28..].to_vec();
    assert_eq!(rcode(&answer), 0, "the path came up");
    assert_eq!(net.drops(0, DropReason::AuthFailed), 0);
}

#[test]
fn a_reflected_setup_is_dropped() {
    let mut net = Net::new(vec![secure("alice", &[("bob", 9)], &["alice.udp"])]);
    assert!(net.lookup(0, "bob.udp").is_none());
    let (_, mut setup) = net.strays.pop().expect("alice's setup");
    net.datagram(0, &addr(9), &mut setup);
    assert_eq!(net.drops(0, DropReason::Reflected), 1);
    assert!(net.strays.is_empty(), "no answer to a reflection");
}

#[test]
fn the_responders_allow_list_is_enforced() {
    let mut net = secure_pair();
    net.nodes[1].credentials.allow = vec![regex::Regex::new("^carol\\.").unwrap()];
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("alice authenticated bob"));
    assert_eq!(
        net.drops(1, DropReason::AuthFailed),
        1,
        "bob refused alice's confirm"
    );
    let down = net.events[0].iter().any(
        |e| matches!(e, Event::PathDown { reason, .. } if reason.contains("may not open paths")),
    );
    assert!(down, "{:?}", net.events[0]);
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"x")));
    assert!(net.tun[1].is_empty(), "nothing reaches bob's apps");
}

#[test]
fn replies_leave_on_the_path_their_request_came_in_on() {
    let mut net = secure_pair();
    net.nodes[1].cfg.security.accept_plain = true;
    let encrypted = answered_v4(&net.lookup(0, "bob.udp").unwrap());
    let plain = answered_v4(&net.lookup(0, "bob.udp_plain.oci").unwrap());
    assert_ne!(encrypted, plain);
    let alice: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let bob: IpAddr = net.nodes[1].cfg.handles.tun_v4.into();
    for handle in [encrypted, plain, encrypted] {
        net.input(0, Input::TunPacket(&udp_to(alice, handle, b"ping")));
        let at_bob = net.tun[1].last().unwrap().clone();
        let alice_at_bob = IpAddr::from([at_bob[12], at_bob[13], at_bob[14], at_bob[15]]);
        net.input(1, Input::TunPacket(&udp_to(bob, alice_at_bob, b"pong")));
        let back = net.tun[0].last().unwrap();
        assert_eq!(
            IpAddr::from([back[12], back[13], back[14], back[15]]),
            handle,
            "reply came from the handle asked"
        );
    }
}

#[test]
fn a_setup_repeated_after_the_confirm_gets_no_second_accept() {
    let mut net = secure_pair();
    answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    let mut setup = net
        .wire
        .iter()
        .find(|(from, _, d)| *from == 0 && matches!(Message::parse(d), Ok(Message::Setup(_))))
        .map(|(_, _, d)| d.clone())
        .expect("alice's setup");
    let before = net.wire.len();
    net.datagram(1, &addr(1), &mut setup);
    let accepts = net.wire[before..]
        .iter()
        .filter(|(from, _, d)| *from == 1 && matches!(Message::parse(d), Ok(Message::Accept(_))))
        .count();
    assert_eq!(accepts, 0, "alice had the accept: she confirmed it");
    assert!(
        net.nodes[1].paths.iter().all(|(_, p)| p.answer.is_empty()),
        "and bob let it go"
    );
    // The path still carries data both ways.
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("still up"));
    send_secret(&mut net, handle);
    assert!(net.tun[1].last().unwrap().ends_with(b"the secret payload"));
}

#[test]
fn a_gateway_lets_the_accept_go_once_the_confirm_passes() {
    let mut net = secure_through_gateway();
    answered_v4(&net.lookup(0, "carol.udp_gw.udp").expect("path up"));
    let halves: Vec<(bool, usize)> = net.nodes[1]
        .paths
        .iter()
        .map(|(_, p)| (p.confirmed, p.answer.len()))
        .collect();
    assert_eq!(halves.len(), 2, "{halves:?}");
    assert!(
        halves.iter().all(|(_, held)| *held == 0) && halves.iter().any(|(c, _)| *c),
        "{halves:?}"
    );
    assert!(net.nodes[2]
        .paths
        .iter()
        .all(|(_, p)| p.confirmed && p.answer.is_empty()));
}

/// alice, gateway gw and carol, all with certificates.
pub(super) fn secure_through_gateway() -> Net {
    let mut gw = secure("gw", &[("alice", 1), ("carol", 3)], &["gw.udp"]);
    gw.gateway = true;
    Net::new(vec![
        secure("alice", &[("gw", 2)], &["alice.udp"]),
        gw,
        secure("carol", &[("gw", 2)], &["carol.udp"]),
    ])
}

#[test]
fn a_refusal_after_accept_travels_back_through_the_gateway() {
    let mut net = secure_through_gateway();
    net.nodes[2].credentials.allow = vec![regex::Regex::new("^bob\\.").unwrap()];
    answered_v4(
        &net.lookup(0, "carol.udp_gw.udp")
            .expect("alice authenticated carol"),
    );
    let down = net.events[0].iter().any(
        |e| matches!(e, Event::PathDown { reason, .. } if reason.contains("may not open paths")),
    );
    assert!(down, "{:?}", net.events[0]);
    assert_eq!(
        net.nodes[1].paths.len(),
        0,
        "the gateway let go of both halves"
    );
    assert_eq!(net.nodes[2].paths.len(), 0);
}

#[test]
fn status_counts_traffic_per_overlay_setup_latency_and_rekeys() {
    let mut cfgs = vec![
        secure("alice", &[("bob", 2)], &["alice.udp"]),
        secure("bob", &[("alice", 1)], &["bob.udp"]),
    ];
    for c in &mut cfgs {
        c.security.rekey_after_secs = 30;
    }
    let mut net = Net::new(cfgs);
    net.lookup(0, "bob.udp").expect("path up");
    let (a, b) = (net.nodes[0].status(), net.nodes[1].status());
    // Setup, accept, confirm and the confirm's acknowledgement: all counted on `udp`.
    assert_eq!(a.overlays.len(), 1);
    assert_eq!(a.overlays[0].overlay, "udp");
    assert_eq!(a.overlays[0].datagrams_out, b.overlays[0].datagrams_in);
    assert_eq!(a.overlays[0].bytes_out, b.overlays[0].bytes_in);
    assert_eq!(a.overlays[0].datagrams_in, b.overlays[0].datagrams_out);
    assert!(a.overlays[0].datagrams_out >= 2 && a.overlays[0].bytes_out > 100);
    // Only the initiator times its setup; in memory it takes no time at all.
    assert_eq!(a.counters.setup_latency.count, 1);
    assert_eq!(a.counters.setup_latency.buckets[0], 1, "within 1 ms");
    assert_eq!(b.counters.setup_latency.count, 0);
    assert_eq!(a.counters.rekeys, 0);
    net.advance(Duration::from_secs(31));
    let a = net.nodes[0].status();
    assert_eq!(a.counters.rekeys, 1, "one rekey after rekey_after_secs");
    assert_eq!(
        a.counters.setup_latency.count, 2,
        "the successor's setup is timed too"
    );
}

#[test]
fn latency_buckets_hold_what_is_at_most_their_bound() {
    use crate::api::LatencyHistogram;
    let mut h = LatencyHistogram::default();
    for ms in [0, 1, 2, 3, 5000, 5001] {
        h.observe(Duration::from_millis(ms));
    }
    h.observe(Duration::from_micros(1500));
    // 0 and 1 ms in `≤ 1`; 1.5 and 2 ms in `≤ 2`; 3 in `≤ 5`; 5000 in the last; 5001 beyond.
    assert_eq!(h.buckets, [2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(h.count, 7);
    assert_eq!(h.sum_nanos, 10_008_500_000);
}
