//! The data cipher both ends agree on in the handshake: AES-256-GCM only when both offer it,
//! ChaCha20-Poly1305 otherwise, and no one on the way can talk them down.

use super::secure::secure_pair;
use super::*;
use crate::config::CipherPolicy;

/// alice's and bob's paths to each other, as status shows them: (protection, cipher).
fn ciphers(net: &Net) -> Vec<(String, Option<&'static str>)> {
    (0..2)
        .flat_map(|i| net.nodes[i].status().paths)
        .map(|p| (p.protection, p.cipher))
        .collect()
}

/// Sets up alice → bob with the given policies (and whether each CPU has AES), and sends a
/// packet each way.
fn pair_with(alice: (CipherPolicy, bool), bob: (CipherPolicy, bool)) -> Net {
    let mut net = secure_pair();
    for (i, (policy, hardware)) in [alice, bob].into_iter().enumerate() {
        net.nodes[i].cfg.security.cipher = policy;
        net.nodes[i].cfg.security.hardware_aes = hardware;
    }
    let handle = answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v4.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"to bob")));
    assert!(net.tun[1].last().unwrap().ends_with(b"to bob"));
    // bob answers from the address alice's packet reached him at, to the one it came from.
    let seen = crate::wire::ip::IpView::parse(net.tun[1].last().unwrap()).unwrap();
    let back = udp_to(seen.dst(), seen.src(), b"to alice");
    net.input(1, Input::TunPacket(&back));
    assert!(net.tun[0].last().unwrap().ends_with(b"to alice"));
    net
}

#[test]
fn aes_when_both_ends_offer_it_chacha_otherwise() {
    use CipherPolicy::*;
    let aes = Some("aes-256-gcm");
    let chacha = Some("chacha20-poly1305");
    let cases = [
        ((Auto, true), (Auto, true), aes),
        ((Aes256Gcm, false), (Aes256Gcm, false), aes),
        ((Auto, true), (Auto, false), chacha),
        ((Auto, false), (Auto, true), chacha),
        ((ChaCha20Poly1305, true), (Auto, true), chacha),
        ((Auto, true), (ChaCha20Poly1305, true), chacha),
    ];
    for (alice, bob, want) in cases {
        let net = pair_with(alice, bob);
        let got = ciphers(&net);
        assert_eq!(got.len(), 2, "{got:?}");
        for (protection, cipher) in got {
            assert_eq!(
                (protection.as_str(), cipher),
                ("encrypt", want),
                "{alice:?} {bob:?}"
            );
        }
    }
}

#[test]
fn an_offer_stripped_on_the_way_breaks_the_handshake_instead_of_downgrading_it() {
    // A man in the middle removes alice's offer from every setup, leaving the bare Noise
    // message of a node that offers only ChaCha20-Poly1305.
    let strip = |d: &mut Vec<u8>| {
        if let Ok(Message::Setup(s)) = Message::parse(d) {
            let bare = Setup {
                handshake: s.handshake.get(..32).unwrap_or(s.handshake),
                ..s
            };
            let mut out = Vec::new();
            Message::Setup(bare).encode(&mut out).unwrap();
            *d = out;
        }
    };
    let mut net = secure_pair();
    for node in &mut net.nodes {
        node.cfg.security.cipher = CipherPolicy::Aes256Gcm;
    }
    net.tamper = Some(Box::new(strip));
    assert!(net.lookup(0, "bob.udp").is_none(), "still trying");
    let before = net.tun[0].len();
    for _ in 0..100 {
        net.advance(Duration::from_millis(100));
    }
    let answer = net.tun[0].get(before).expect("answered in the end")[28..].to_vec();
    assert_eq!(rcode(&answer), 2, "SERVFAIL, not a ChaCha20-Poly1305 path");
    assert!(String::from_utf8_lossy(&answer).contains("did not decrypt"));
    assert!(net.drops(0, DropReason::Forged) >= 2);

    // Without the man in the middle the same two nodes agree on AES-256-GCM.
    let mut net = secure_pair();
    for node in &mut net.nodes {
        node.cfg.security.cipher = CipherPolicy::Aes256Gcm;
    }
    answered_v4(&net.lookup(0, "bob.udp").expect("path up"));
    assert!(ciphers(&net).iter().all(|(_, c)| *c == Some("aes-256-gcm")));
}
