//! Partial checksums from a TUN with offloads: left partial, flagged, on a secure path to a
//! peer whose driver takes them; on a plain path every TCP and UDP packet in the partial
//! form towards an end that said it takes them; completed for every other peer; and valid
//! either way once the receiving kernel completes what it was handed partial.

use super::secure::{secure_pair, secure_through_gateway};
use super::*;
use crate::wire::checksum::PartialChecksum;
use crate::wire::ip::PROTO_TCP;
use crate::wire::testutil::{build_ip, recompute_all, tcp_segment, with_partial_checksum};

const PAYLOAD: &[u8] = b"a segment of some bulk flow";

/// alice (node 0) writes a TCP segment to `handle` whose checksum her kernel left partial.
fn input_partial(net: &mut Net, handle: IpAddr) {
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let seg = tcp_segment(40000, 80, 77, 0x18, PAYLOAD);
    let (packet, checksum) = with_partial_checksum(&build_ip(src, handle, PROTO_TCP, &seg));
    net.input(
        0,
        Input::TunPartial {
            packet: &packet,
            checksum,
        },
    );
}

/// What `node` last wrote to its TUN: valid once its kernel completes what is partial.
fn assert_valid(net: &Net, node: usize) {
    let got = net.tun[node].last().expect("delivered");
    let mut done = got.clone();
    if let Some(at) = net.partial[node].last().copied().flatten() {
        assert!(at.complete(&mut done));
        assert_ne!(&done, got, "it was partial");
    }
    assert_eq!(done, recompute_all(&done), "valid once completed");
    assert!(done.ends_with(PAYLOAD));
}

/// alice (which takes partial checksums when `alice_takes`) sends bob (likewise) one segment
/// on `net`'s path to `name`: where bob's packet is partial, and whether the data datagram's
/// nonce said so.
fn send(
    mut net: Net,
    name: &str,
    alice_takes: bool,
    bob_takes: bool,
) -> (Option<PartialChecksum>, bool) {
    net.nodes[0].cfg.security.partial_checksums = alice_takes;
    net.nodes[1].cfg.security.partial_checksums = bob_takes;
    let handle = answered_v4(&net.lookup(0, name).expect("path up"));
    let before = net.wire.len();
    input_partial(&mut net, handle);
    let data = net.wire[before..]
        .iter()
        .find(|(from, _, d)| *from == 0 && d.first() == Some(&0x11))
        .map(|(_, _, d)| d.clone())
        .expect("a data datagram");
    assert_valid(&net, 1);
    // The nonce follows the 5-byte data header.
    let flagged = data.get(5).is_some_and(|b| b & 0x80 != 0);
    (*net.partial[1].last().expect("delivered"), flagged)
}

#[test]
fn left_partial_only_to_a_secure_peer_that_takes_it() {
    for (alice_takes, bob_takes) in [(false, false), (true, false), (false, true), (true, true)] {
        let (partial, flagged) = send(secure_pair(), "bob.udp", alice_takes, bob_takes);
        // bob answers only an offer with parameters, and alice (ChaCha20-Poly1305 only here)
        // sends them only when she takes partial checksums herself: a node whose kernel
        // leaves them partial is one whose TUN takes them, so that is no loss.
        assert_eq!(
            flagged,
            alice_takes && bob_takes,
            "{alice_takes} {bob_takes}"
        );
        assert_eq!(
            partial,
            flagged.then_some(TCP_V4),
            "{alice_takes} {bob_takes}"
        );
    }
}

#[test]
fn a_flagged_packet_for_a_node_that_cannot_take_it_is_completed_there() {
    // bob's driver took partial checksums when the path came up and no longer does (a
    // peer that flags anyway is the same to bob): bob completes the checksum himself.
    let mut net = secure_pair();
    for node in &mut net.nodes {
        node.cfg.security.partial_checksums = true;
    }
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    net.nodes[1].cfg.security.partial_checksums = false;
    input_partial(&mut net, handle);
    let (_, _, data) = net.wire.iter().rfind(|(from, _, _)| *from == 0).unwrap();
    assert!(data[5] & 0x80 != 0, "alice flagged it");
    assert_eq!(*net.partial[1].last().unwrap(), None);
    assert_valid(&net, 1);
}

#[test]
fn a_partial_checksum_outside_the_packet_is_a_malformed_tun_packet() {
    let mut net = secure_pair();
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let packet = udp_to(src, handle, b"x");
    let checksum = PartialChecksum {
        start: 20,
        offset: 60,
    };
    let delivered = net.tun[1].len();
    net.input(
        0,
        Input::TunPartial {
            packet: &packet,
            checksum,
        },
    );
    assert_eq!(net.tun[1].len(), delivered, "nothing crossed");
    assert!(net.events[0].iter().any(|e| matches!(
        e,
        Event::Dropped {
            reason: DropReason::TunMalformed(crate::wire::WireError::Truncated)
        }
    )));
}

// Plain paths: the ends settle the checksum form once, at setup (`security::parameters`).

/// The standard place of a TCP checksum over IPv4, where the receiving kernel looks.
const TCP_V4: PartialChecksum = PartialChecksum {
    start: 20,
    offset: 16,
};

/// A plain path from alice to bob, each taking partial checksums as said.
fn plain_pair(alice_takes: bool, bob_takes: bool) -> (Net, IpAddr) {
    let mut net = pair();
    net.nodes[0].cfg.security.partial_checksums = alice_takes;
    net.nodes[1].cfg.security.partial_checksums = bob_takes;
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    (net, handle)
}

/// bob (node 1) writes a complete TCP segment, altered by `spoil`, back to alice, whose
/// handle at bob's end is where alice's last packet came from.
fn reply(net: &mut Net, spoil: impl FnOnce(&mut Vec<u8>)) {
    let from_alice = net.tun[1].last().expect("alice's packet");
    let alice: IpAddr = <[u8; 4]>::try_from(&from_alice[12..16]).unwrap().into();
    let bob: IpAddr = net.nodes[1].cfg.handles.tun_v4.into();
    let mut packet = build_ip(
        bob,
        alice,
        PROTO_TCP,
        &tcp_segment(80, 40000, 9, 0x18, PAYLOAD),
    );
    spoil(&mut packet);
    net.input(1, Input::TunPacket(&packet));
}

#[test]
fn a_plain_path_carries_the_partial_form_towards_an_end_that_takes_it() {
    for (alice_takes, bob_takes) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut net, handle) = plain_pair(alice_takes, bob_takes);
        let case = format!("alice takes {alice_takes}, bob takes {bob_takes}");
        // alice's kernel left the checksum partial; it stays so if bob answered he takes it.
        input_partial(&mut net, handle);
        let to_bob = alice_takes && bob_takes;
        assert_eq!(
            net.partial[1].last(),
            Some(&to_bob.then_some(TCP_V4)),
            "{case}"
        );
        assert_valid(&net, 1);
        // bob's kernel completed his; bob checks it and leaves it partial if alice asked.
        reply(&mut net, |_| {});
        assert_eq!(
            net.partial[0].last(),
            Some(&alice_takes.then_some(TCP_V4)),
            "{case}"
        );
        assert_valid(&net, 0);
        let says = |node: usize| net.nodes[node].status().paths[0].partial_checksums;
        assert_eq!((says(0), says(1)), (to_bob, alice_takes), "{case}");
    }
}

#[test]
fn a_corrupt_packet_stops_where_it_enters_and_other_protocols_pass_as_they_are() {
    let (mut net, handle) = plain_pair(true, true);
    input_partial(&mut net, handle);
    let delivered = net.tun[0].len();
    reply(&mut net, |p| *p.last_mut().unwrap() ^= 1);
    assert_eq!(net.tun[0].len(), delivered, "nothing crossed");
    let bad = DropReason::TunMalformed(crate::wire::WireError::BadChecksum);
    assert_eq!(net.drops(1, bad), 1);
    // An echo request has no checksum the kernel completes: it is sent and delivered whole.
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    let ping = build_ip(
        src,
        handle,
        1,
        &crate::wire::testutil::echo(false, 7, 1, b"ping"),
    );
    net.input(0, Input::TunPacket(&ping));
    assert_eq!(net.partial[1].last(), Some(&None));
    let got = net.tun[1].last().expect("delivered");
    assert_eq!(got, &recompute_all(got));
    assert!(got.ends_with(b"ping"));
}

#[test]
fn a_responder_that_does_not_answer_leaves_both_directions_complete() {
    // A responder that predates the partial form ignores the option bit: the same as one
    // that never saw it, which a man in the middle arranges here.
    let mut net = pair();
    for node in &mut net.nodes {
        node.cfg.security.partial_checksums = true;
    }
    net.tamper = Some(Box::new(|d: &mut Vec<u8>| {
        if Message::parse(d).is_ok_and(|m| matches!(m, Message::Setup(_))) {
            // The options byte follows the type, the sender label, the path id and the hops.
            d[14] &= !crate::security::parameters::PARTIAL_BIT;
        }
    }));
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    input_partial(&mut net, handle);
    assert_eq!(net.partial[1].last(), Some(&None));
    assert_valid(&net, 1);
    reply(&mut net, |_| {});
    assert_eq!(net.partial[0].last(), Some(&None));
    assert_valid(&net, 0);
}

#[test]
fn an_answer_a_plain_initiator_did_not_ask_for_is_refused() {
    let mut net = pair();
    net.tamper = Some(Box::new(|d: &mut Vec<u8>| {
        if let Ok(Message::Accept(a)) = Message::parse(d) {
            let answer = crate::security::parameters::plain_answer(true);
            *d = datagram(&Message::Accept(crate::wire::message::Accept {
                handshake: &answer,
                ..a
            }));
        }
    }));
    assert_eq!(net.lookup(0, "bob.udp"), None, "the path is not up");
    assert_eq!(net.drops(0, DropReason::UnexpectedHandshake), 1);
}

#[test]
fn partial_checksums_cross_a_gateway_that_cannot_open_the_packet() {
    // The secure path's flag and the plain path's form both pass a gateway untouched.
    for (kind, mut net) in [
        ("secure", secure_through_gateway()),
        ("plain", through_gateway()),
    ] {
        net.nodes[0].cfg.security.partial_checksums = true;
        net.nodes[2].cfg.security.partial_checksums = true;
        let handle = answered_v4(&net.lookup(0, "carol.udp_gw.udp").expect("path up"));
        input_partial(&mut net, handle);
        assert_eq!(net.partial[2].last(), Some(&Some(TCP_V4)), "{kind}");
        assert_valid(&net, 2);
        assert!(net.tun[1].is_empty(), "the gateway delivers nothing itself");
    }
}
