//! The harness really moves packets end to end, so the benchmarks measure real work.

use ocala_benches::{
    dns_answer, dns_query_packet, drain_recycle, node_config, overlay_addr, receive, send,
    udp_packet, Chain, LegacyChain, Net, Pair, APP_PORT,
};
use ocala_engine::wire::ip::IpView;
use ocala_engine::wire::message::Message;
use ocala_engine::wire::transport::UdpView;
use ocala_engine::Event;
use ocala_engine::{Input, Output};
use std::net::IpAddr;

#[test]
fn pair_carries_packets_both_ways_with_addresses_rewritten() {
    let mut pair = Pair::new();
    assert!(pair.net.nodes[Pair::ALICE]
        .events
        .iter()
        .any(|e| matches!(e, Event::PathUp { name, .. } if name == "bob.udp")));
    let packet = pair.packet_to_bob(1200);
    pair.net.tun_input(Pair::ALICE, &packet);
    let got = pair.net.nodes[Pair::BOB]
        .tun
        .last()
        .expect("bob got it")
        .clone();
    let ip = IpView::parse(&got).unwrap();
    let alice_at_bob = pair.net.bound(Pair::BOB, "alice.udp");
    assert_eq!(ip.src(), IpAddr::V4(alice_at_bob));
    let bob_tun = pair.net.nodes[Pair::BOB].cfg.handles.tun_v4;
    assert_eq!(ip.dst(), IpAddr::V4(bob_tun));
    assert_eq!(got.len(), 1200);
    let udp = UdpView::parse(ip.payload()).unwrap();
    assert_eq!(udp.dst_port(), APP_PORT);
    assert_eq!(udp.payload(), &packet[28..]);

    // Bob answers through his handle for alice; alice sees it come from bob's handle.
    let reply = udp_packet(bob_tun, alice_at_bob, 64);
    let before = pair.net.nodes[Pair::ALICE].tun.len();
    pair.net.tun_input(Pair::BOB, &reply);
    assert_eq!(pair.net.nodes[Pair::ALICE].tun.len(), before + 1);
    let back = IpView::parse(pair.net.nodes[Pair::ALICE].tun.last().unwrap()).unwrap();
    assert_eq!(back.src(), IpAddr::V4(pair.bob_handle));
    assert_eq!(back.dst(), IpAddr::V4(pair.alice_tun()));
}

#[test]
fn step_functions_report_one_datagram_and_one_tun_write() {
    let mut pair = Pair::new();
    let packet = pair.packet_to_bob(64);
    let datagram = pair.datagram_for_bob(&packet);
    // OCALA data header, then the app's packet untouched.
    assert!(datagram.len() > packet.len());
    assert_eq!(&datagram[datagram.len() - packet.len()..], &packet[..]);
    let now = pair.net.now;
    let sent = send(pair.alice(), now, &packet);
    assert_eq!((sent.transmits, sent.tun_writes, sent.events), (1, 0, 0));
    assert_eq!(sent.bytes, datagram.len());
    let alice = pair.net.nodes[Pair::ALICE].addr;
    let got = receive(pair.bob(), now, alice, &mut datagram.clone());
    assert_eq!((got.transmits, got.tun_writes, got.events), (0, 1, 0));
    assert_eq!(got.bytes, 64);
}

#[test]
fn cached_lookup_answers_the_same_handle_at_once() {
    let mut pair = Pair::new();
    let cfg = pair.net.nodes[Pair::ALICE].cfg.clone();
    let query = dns_query_packet(&cfg, 7, "bob.udp", 5353);
    let now = pair.net.now;
    let engine = pair.alice();
    engine.handle_input(now, Input::TunPacket(&query)).unwrap();
    let mut answers = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Timeout(_) => break,
            Output::WriteTun(p) => {
                answers.push(dns_answer(&cfg, &p, 7));
                engine.recycle(p);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(answers.len(), 1);
    let addrs = answers.pop().unwrap().expect("a DNS answer").unwrap();
    assert_eq!(addrs, vec![IpAddr::V4(pair.bob_handle)]);
    assert_eq!(drain_recycle(pair.alice()), Default::default());
}

/// The label of a data datagram.
fn data_label(datagram: &[u8]) -> u32 {
    match Message::parse(datagram).expect("an OCALA message") {
        Message::Data { label, .. } => label,
        other => panic!("not data: {other:?}"),
    }
}

#[test]
fn gateway_swaps_the_label_and_carol_gets_the_packet() {
    // Alice first opens a path to the gateway itself, so the gateway's relay halves do not
    // sit in the same table slot as carol's path end and the two labels differ.
    let (a, g, c) = (overlay_addr(1), overlay_addr(3), overlay_addr(4));
    let mut net = Net::new(vec![
        ("alice", a, node_config("alice", &[("gw", g)], false)),
        ("gw", g, node_config("gw", &[("carol", c)], true)),
        ("carol", c, node_config("carol", &[("gw", g)], false)),
    ]);
    net.lookup(0, "gw.udp").unwrap();
    let carol_handle = net.lookup(0, Chain::NAME).unwrap();
    let mut chain = Chain { net, carol_handle };
    let carol_label = chain.net.nodes[Chain::CAROL]
        .events
        .iter()
        .find_map(|e| match e {
            Event::PathAccepted { name, label } if name == "alice.udp_gw.udp" => Some(*label),
            _ => None,
        })
        .expect("carol accepted the path");

    let packet = chain.packet_to_carol(1200);
    let to_gw = chain.datagram_for_gw(&packet);
    assert_ne!(data_label(&to_gw), carol_label);

    // The gateway forwards it to carol with only the label changed, to carol's.
    let now = chain.net.now;
    let gw = chain.gw();
    gw.handle_input(
        now,
        Input::Datagram {
            overlay: ocala_benches::OVERLAY,
            from: &a,
            payload: &mut to_gw.clone(),
            queued: std::time::Duration::ZERO,
            ecn: ocala_engine::Ecn::NotEct,
        },
    )
    .unwrap();
    let mut out = Vec::new();
    loop {
        match gw.poll_output() {
            Output::Timeout(_) => break,
            Output::Transmit { to, payload, .. } => {
                out.push((to, payload.to_vec()));
                gw.recycle(payload);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(out.len(), 1);
    let (to, relayed) = &out[0];
    assert_eq!(*to, c);
    assert_eq!(data_label(relayed), carol_label);
    assert_eq!(relayed.len(), to_gw.len());
    assert_eq!(relayed[relayed.len() - 1200..], packet[..]);

    // And end to end, carol's apps get it.
    chain.net.tun_input(Chain::ALICE, &packet);
    let got = chain.net.nodes[Chain::CAROL]
        .tun
        .last()
        .expect("carol got it");
    let ip = IpView::parse(got).unwrap();
    let carol_tun = chain.net.nodes[Chain::CAROL].cfg.handles.tun_v4;
    assert_eq!(ip.dst(), IpAddr::V4(carol_tun));
    assert_eq!(
        UdpView::parse(ip.payload()).unwrap().payload(),
        &packet[28..]
    );
}

#[test]
fn chain_fixture_is_up_end_to_end() {
    let mut chain = Chain::new();
    assert!(chain.net.nodes[Chain::GW]
        .events
        .iter()
        .any(|e| matches!(e, Event::PathRelayed { .. })));
    let packet = chain.packet_to_carol(64);
    chain.net.tun_input(Chain::ALICE, &packet);
    assert_eq!(chain.net.nodes[Chain::CAROL].tun.len(), 1);
    assert_eq!(
        chain.net.nodes[Chain::GW].tun.len(),
        0,
        "the gateway only relays"
    );
}

#[test]
fn legacy_chain_rewrites_towards_the_server_and_back() {
    let mut chain = LegacyChain::new();
    chain
        .net
        .tun_input(LegacyChain::ALICE, &chain.packet_to_server(100));
    let out = chain.net.nodes[LegacyChain::GW]
        .tun
        .last()
        .expect("written towards the server");
    let ip = IpView::parse(out).unwrap();
    assert_eq!(ip.src(), IpAddr::V4(chain.egress));
    assert_eq!(ip.dst(), IpAddr::V4(LegacyChain::SERVER));
    chain
        .net
        .tun_input(LegacyChain::GW, &chain.packet_from_server(100));
    let back = chain.net.nodes[LegacyChain::ALICE]
        .tun
        .last()
        .expect("back at alice");
    let ip = IpView::parse(back).unwrap();
    assert_eq!(ip.src(), IpAddr::V4(chain.server_handle));
    assert_eq!(
        ip.dst(),
        IpAddr::V4(chain.net.nodes[LegacyChain::ALICE].cfg.handles.tun_v4)
    );
}
