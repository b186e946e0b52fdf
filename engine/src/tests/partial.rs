//! Partial checksums from a TUN with offloads: left partial, flagged, on a secure path to a
//! peer whose driver takes them; completed for every other peer and on plain paths; and
//! valid either way once the receiving kernel completes what it was handed partial.

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
        let at = PartialChecksum {
            start: 20,
            offset: 16,
        };
        assert_eq!(partial, flagged.then_some(at), "{alice_takes} {bob_takes}");
    }
}

#[test]
fn a_plain_path_carries_complete_checksums() {
    assert_eq!(send(pair(), "bob.udp", true, true), (None, false));
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

#[test]
fn the_flag_crosses_a_gateway_that_cannot_open_the_packet() {
    let mut net = secure_through_gateway();
    net.nodes[0].cfg.security.partial_checksums = true;
    net.nodes[2].cfg.security.partial_checksums = true;
    let handle = answered_v4(&net.lookup(0, "carol.udp_gw.udp").expect("path up"));
    input_partial(&mut net, handle);
    assert!(
        net.partial[2].last().unwrap().is_some(),
        "left partial end to end"
    );
    assert_valid(&net, 2);
    assert!(net.tun[1].is_empty(), "the gateway delivers nothing itself");
}
