//! A plain path's packets reach local apps where they arrived: rewritten in the datagram the
//! driver lent, and handed out as ranges of it ([`crate::InPlace`]), never copied.

use super::*;
use crate::wire::message::DATA_HEADER_LEN;
use crate::wire::testutil::recompute_all;
use crate::InPlace;

/// What alice sends for each of `count` app packets to bob: the datagrams, unsent.
fn datagrams_for_bob(net: &mut Net, handle: IpAddr, tun: IpAddr, count: u8) -> Vec<Vec<u8>> {
    let now = net.now;
    let alice = &mut net.nodes[0];
    let packets = (0..count).map(|i| udp_to(tun, handle, &[i; 100]));
    let mut datagrams = Vec::new();
    for p in packets {
        alice.handle_input(now, Input::TunPacket(&p)).unwrap();
        while let Output::Transmit { payload, .. } = alice.poll_output() {
            datagrams.push(payload.to_vec());
        }
    }
    datagrams
}

/// Feeds `datagrams` from alice to bob as one batch, as a driver feeds one receive.
fn feed_bob(net: &mut Net, datagrams: &mut [Vec<u8>]) {
    let (now, from) = (net.now, addr(1));
    let inputs = datagrams.iter_mut().map(|payload| Input::Datagram {
        overlay: UDP,
        from: &from,
        payload,
        queued: Duration::ZERO,
        ecn: crate::Ecn::NotEct,
    });
    net.nodes[1].handle_batch(now, inputs).unwrap();
}

#[test]
fn a_plain_paths_packets_are_delivered_where_they_arrived() {
    let (mut net, handle, tun) = pair_up();
    let mut datagrams = datagrams_for_bob(&mut net, handle, tun, 3);
    assert_eq!(datagrams.len(), 3);
    let sent = datagrams.clone();
    feed_bob(&mut net, &mut datagrams);
    let mut delivered = Vec::new();
    loop {
        match net.nodes[1].poll_output() {
            Output::Timeout(_) => break,
            Output::WriteTunInPlace(d) => delivered.push(d),
            Output::WriteTun(p) => panic!("copied: {p:?}"),
            _ => {}
        }
    }
    let bob_tun: IpAddr = net.nodes[1].cfg.handles.tun_v4.into();
    for (i, d) in delivered.iter().enumerate() {
        let len = sent[i].len();
        assert_eq!(
            *d,
            InPlace {
                datagram: i,
                range: DATA_HEADER_LEN..len,
                partial: None
            }
        );
        let packet = &datagrams[i][d.range.clone()];
        // From bob's handle for alice, to bob's own address, with valid checksums.
        assert_eq!(&packet[12..16], &[198, 18, 0, 3]);
        assert_eq!(
            IpAddr::from([packet[16], packet[17], packet[18], packet[19]]),
            bob_tun
        );
        assert_eq!(packet, recompute_all(packet).as_slice());
        assert!(packet.ends_with(&[i as u8; 100]));
        assert_eq!(datagrams[i][..DATA_HEADER_LEN], sent[i][..DATA_HEADER_LEN]);
    }
    assert_eq!(delivered.len(), 3);
    assert_eq!(net.nodes[1].counters.tun_out, 3);
}

#[test]
fn what_a_driver_leaves_undrained_when_its_next_batch_starts_is_dropped_and_counted() {
    let (mut net, handle, tun) = pair_up();
    let mut datagrams = datagrams_for_bob(&mut net, handle, tun, 2);
    let delivered = net.nodes[1].counters.tun_out;
    feed_bob(&mut net, &mut datagrams);
    let bob = &mut net.nodes[1];
    assert!(matches!(bob.poll_output(), Output::WriteTunInPlace(_)));
    // The second is still queued when the driver, its buffers reused, feeds on.
    bob.handle_input(net.now, Input::Timeout).unwrap();
    assert_eq!(net.drops(1, DropReason::NotDrained), 1);
    let bob = &mut net.nodes[1];
    loop {
        match bob.poll_output() {
            Output::Timeout(_) => break,
            Output::WriteTunInPlace(d) => panic!("handed out after its batch: {d:?}"),
            _ => {}
        }
    }
    assert_eq!(
        bob.counters.tun_out,
        delivered + 1,
        "only the one handed out"
    );
}
