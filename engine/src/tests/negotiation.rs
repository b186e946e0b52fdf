//! Address negotiation (paper §6.1.2): the far end's handle for an initiator takes the
//! initiator's own addresses where they are free there, so apps see no rewritten address;
//! otherwise it falls back to rewriting.

use super::legacy::{intranet_with, rule, SERVER};
use super::secure::secure;
use super::*;
use crate::wire::ip::IpView;

const ALICE_V4: [u8; 4] = [198, 18, 7, 1];

fn alice_v6() -> std::net::Ipv6Addr {
    "fd6f:6361:6c61::7:1".parse().unwrap()
}

/// alice's apps send from addresses of her own (not the default every node has).
fn own_addresses(mut cfg: Config) -> Config {
    cfg.handles.tun_v4 = ALICE_V4.into();
    cfg.handles.tun_v6 = alice_v6();
    cfg.handles.negotiate = true;
    cfg
}

/// An app on `node` sends to `handle`; returns the packet the far end `at` delivered.
fn carried(net: &mut Net, node: usize, at: usize, handle: IpAddr) -> Vec<u8> {
    let src: IpAddr = match handle {
        IpAddr::V4(_) => net.nodes[node].cfg.handles.tun_v4.into(),
        IpAddr::V6(_) => net.nodes[node].cfg.handles.tun_v6.into(),
    };
    net.input(node, Input::TunPacket(&udp_to(src, handle, b"PORT")));
    net.tun[at].last().expect("delivered").clone()
}

#[test]
fn the_far_end_sees_the_initiators_own_address_in_both_families() {
    let mut net = Net::new(vec![
        own_addresses(secure("alice", &[("bob", 2)], &["alice.udp"])),
        secure("bob", &[("alice", 1)], &["bob.udp"]),
    ]);
    let v4 = answered_v4(&net.lookup(0, "bob.udp").expect("answered"));
    let got = carried(&mut net, 0, 1, v4);
    let ip = IpView::parse(&got).unwrap();
    assert_eq!(ip.src(), IpAddr::from(ALICE_V4), "not rewritten");
    assert_eq!(ip.dst(), IpAddr::from(net.nodes[1].cfg.handles.tun_v4));

    let v6 = net.ask(0, "bob.udp", true).expect("answered");
    let v6 = parse_address_answer(&v6, 7).unwrap()[0];
    let got = carried(&mut net, 0, 1, v6);
    assert_eq!(IpView::parse(&got).unwrap().src(), IpAddr::V6(alice_v6()));

    // bob's answers go back to alice's own address, and reach her from bob's handle.
    let bob_tun: IpAddr = net.nodes[1].cfg.handles.tun_v4.into();
    net.input(
        1,
        Input::TunPacket(&udp_to(bob_tun, ALICE_V4.into(), b"200")),
    );
    let back = net.tun[0].last().unwrap();
    let ip = IpView::parse(back).unwrap();
    assert_eq!((ip.src(), ip.dst()), (v4, IpAddr::from(ALICE_V4)));
}

#[test]
fn a_taken_address_falls_back_to_rewriting() {
    // carol's apps use the same addresses as alice's: bob can give them to one of the two.
    let mut net = Net::new(vec![
        own_addresses(config("alice", &[("bob", 2)], false)),
        config("bob", &[("alice", 1), ("carol", 3)], false),
        own_addresses(config("carol", &[("bob", 2)], false)),
    ]);
    let a = answered_v4(&net.lookup(0, "bob.udp").expect("answered"));
    let c = answered_v4(&net.lookup(2, "bob.udp").expect("answered"));
    let from_alice = IpView::parse(&carried(&mut net, 0, 1, a)).unwrap().src();
    let from_carol = IpView::parse(&carried(&mut net, 2, 1, c)).unwrap().src();
    assert_eq!(from_alice, IpAddr::from(ALICE_V4));
    assert_ne!(from_carol, from_alice, "carol gets a handle of her own");
    assert!(net.nodes[1].handles.in_pool(from_carol));
    // Nodes at the default addresses (every node's own TUN address) always rewrite.
    let mut plain = Net::new(vec![
        config("alice", &[("bob", 2)], false),
        config("bob", &[("alice", 1)], false),
    ]);
    let mut asking = plain.nodes[0].cfg.clone();
    asking.handles.negotiate = true;
    plain.nodes[0] = Engine::new(asking, [3; 32], plain.now).unwrap();
    let h = answered_v4(&plain.lookup(0, "bob.udp").expect("answered"));
    let src = IpView::parse(&carried(&mut plain, 0, 1, h)).unwrap().src();
    assert_ne!(src, IpAddr::from(plain.nodes[0].cfg.handles.tun_v4));
}

#[test]
fn a_legacy_server_sees_the_clients_address_before_the_masquerade() {
    let mut net = intranet_with(vec![rule(&["alice.udp"], &["*.corp.com"], true)]);
    let alice = own_addresses(net.nodes[0].cfg.clone());
    net.nodes[0] = Engine::new(alice, [1; 32], net.now).unwrap();
    let h = answered_v4(&net.lookup(0, "web.corp.com.ip_gw.udp").expect("answered"));
    let out = carried(&mut net, 0, 1, h);
    let ip = IpView::parse(&out).unwrap();
    // The egress address is alice's own, so an FTP PORT command naming it is right as it
    // stands; the kernel's helper rewrites it with the masquerade.
    assert_eq!((ip.src(), ip.dst()), (ALICE_V4.into(), SERVER.into()));
    // A second destination cannot have the same egress address: it is rewritten.
    let h2 = answered_v4(&net.lookup(0, "db.corp.com.ip_gw.udp").expect("answered"));
    let out = carried(&mut net, 0, 1, h2);
    assert_ne!(IpView::parse(&out).unwrap().src(), IpAddr::from(ALICE_V4));
}
