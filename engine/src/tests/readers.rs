//! Middleboxes that read encrypted paths: only when an end point certified them, with both
//! ends told, and never from a forged chain or grant.

use super::secure::{secure, NOW};
use super::*;
use crate::config::HexBytes;
use crate::middlebox::FilterConfig;
use crate::security::noise::public_key;
use crate::security::{Certificate, Chain, DelegationSpec, IdentityKey};

/// The static public key `secure()` gives a node.
fn static_of(name: &str) -> [u8; 32] {
    public_key(&[name.len() as u8 + name.as_bytes()[0]; 32])
}

/// Makes `cfg` present a chain that certifies `middlebox` (by its static key).
fn certify(cfg: &mut Config, middlebox: &str, key: [u8; 32]) {
    let cert = Certificate::decode(&cfg.security.certificate.as_ref().unwrap().0).unwrap();
    let spec = DelegationSpec {
        middlebox_name: middlebox.into(),
        middlebox_static_key: key,
        not_before: NOW - 10,
        not_after: NOW + 86_400,
    };
    // `secure()` gives every node the identity key from seed [1; 32].
    let chain = Chain::build(cert, &IdentityKey::from_seed([1; 32]), &[spec]).unwrap();
    cfg.security.chain = Some(HexBytes(chain.encode()));
}

/// alice → fw (a gateway running a filter that drops UDP port 2000) → bob, on ChaCha20-Poly1305
/// (what nodes without AES hardware agree on).
fn through_fw(alice_certifies: bool) -> Net {
    let mut alice = secure("alice", &[("fw", 2)], &["alice.udp"]);
    if alice_certifies {
        certify(&mut alice, "fw.udp", static_of("fw"));
    }
    let mut fw = secure("fw", &[("alice", 1), ("bob", 3)], &["fw.udp"]);
    fw.gateway = true;
    fw.middlebox = Some(FilterConfig {
        drop_udp_ports: vec![2000],
        ..Default::default()
    });
    Net::new(vec![alice, fw, secure("bob", &[("fw", 2)], &["bob.udp"])])
}

/// The data cipher of each of fw's relay halves, as its status shows them.
fn fw_ciphers(net: &Net) -> Vec<Option<&'static str>> {
    net.nodes[1]
        .status()
        .paths
        .iter()
        .map(|p| p.cipher)
        .collect()
}

fn send(net: &mut Net, handle: IpAddr) {
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"for fw's eyes")));
}

fn filter(net: &Net) -> crate::middlebox::FilterStats {
    net.nodes[1].middlebox.as_ref().unwrap().stats().clone()
}

#[test]
fn a_certified_middlebox_opens_and_judges_an_uncertified_one_sees_ciphertext() {
    for aes in [false, true] {
        let mut net = through_fw(true);
        // With AES-256-GCM the grant carries the cipher, and fw opens with it.
        for node in &mut net.nodes {
            node.cfg.security.hardware_aes = aes;
        }
        let handle = answered_v4(&net.lookup(0, "bob.udp_fw.udp").expect("path up"));
        let delivered = net.tun[2].len();
        send(&mut net, handle);
        let s = filter(&net);
        assert_eq!((s.opened, s.sealed, s.dropped), (1, 0, 1), "aes {aes}: {s}");
        assert_eq!(s.by_port.get(&(17, 2000)), Some(&1));
        assert_eq!(net.tun[2].len(), delivered, "fw stopped it");
        let cipher = if aes {
            "aes-256-gcm"
        } else {
            "chacha20-poly1305"
        };
        assert_eq!(fw_ciphers(&net), [Some(cipher); 2]);
        // The grant never reached bob, and nothing on the wire shows the payload.
        assert_eq!(net.nodes[2].drops.get(&DropReason::UnusedGrant), None);
        assert!(!net
            .wire
            .iter()
            .any(|(_, _, d)| d.windows(6).any(|w| w == b"fw's e")));
    }

    let mut net = through_fw(false);
    let handle = answered_v4(&net.lookup(0, "bob.udp_fw.udp").expect("path up"));
    send(&mut net, handle);
    let s = filter(&net);
    // The packet and the confirm's acknowledgement, both unreadable.
    assert_eq!((s.opened, s.sealed, s.dropped), (0, 2, 0), "{s}");
    assert!(net.tun[2].last().unwrap().ends_with(b"for fw's eyes"));
}

#[test]
fn a_chain_with_a_forged_delegation_fails_the_path() {
    let mut bob = secure("bob", &[("alice", 1)], &["bob.udp"]);
    certify(&mut bob, "fw.udp", static_of("fw"));
    // Flip a bit in the delegation's signature (the chain's last byte).
    let chain = &mut bob.security.chain.as_mut().unwrap().0;
    *chain.last_mut().unwrap() ^= 1;
    let mut net = Net::new(vec![secure("alice", &[("bob", 2)], &["alice.udp"]), bob]);
    let answer = net.lookup(0, "bob.udp").expect("answered");
    assert_eq!(rcode(&answer), 2, "SERVFAIL");
    assert_eq!(net.nodes[0].drops.get(&DropReason::AuthFailed), Some(&1));
    assert_eq!(net.nodes[0].paths.len(), 0);
}

#[test]
fn a_grant_for_a_middlebox_off_the_path_ends_as_unused_and_a_refusing_end_says_why() {
    let mut alice = secure("alice", &[("bob", 2)], &["alice.udp"]);
    certify(&mut alice, "mars.udp", static_of("mars"));
    let mut net = Net::new(vec![alice, secure("bob", &[("alice", 1)], &["bob.udp"])]);
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    assert_eq!(net.nodes[1].drops.get(&DropReason::UnusedGrant), Some(&1));
    send(&mut net, handle);
    assert!(net.tun[1].last().unwrap().ends_with(b"for fw's eyes"));

    let mut alice = secure("alice", &[("bob", 2)], &["alice.udp"]);
    certify(&mut alice, "mars.udp", static_of("mars"));
    let mut bob = secure("bob", &[("alice", 1)], &["bob.udp"]);
    bob.security.accept_readers = false;
    let mut net = Net::new(vec![alice, bob]);
    net.lookup(0, "bob.udp");
    // bob reads alice's chain in her confirm, refuses, and tells her why.
    let refused = net.events[0].iter().any(|e| {
        matches!(e, Event::PathDown { reason, .. }
            if reason.contains("lets mars.udp read its paths, and security.accept_readers is off"))
    });
    assert!(refused, "{:?}", net.events[0]);
    assert_eq!(net.nodes[1].drops.get(&DropReason::AuthFailed), Some(&1));
    assert_eq!(net.nodes[1].paths.len(), 0);
}

#[test]
fn a_chain_must_carry_the_configured_certificate() {
    let mut alice = secure("alice", &[], &["alice.udp"]);
    let mut other = secure("alice", &[], &["other.udp"]);
    certify(&mut other, "fw.udp", static_of("fw"));
    alice.security.chain = other.security.chain.clone();
    let Err(e) = Engine::new(alice, [0; 32], Instant::ZERO) else {
        panic!("a chain for other names was taken");
    };
    assert_eq!(e.key, "security.chain");
    assert!(e.to_string().contains("another certificate"), "{e}");
}
