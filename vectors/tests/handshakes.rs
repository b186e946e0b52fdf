//! Snapshots of the control messages (setup, accept, confirm, reject, close) exchanged in simulator
//! scenarios. Each line is: time, node, sent/recv, message fields. A change to the handshake
//! — labels, path ids, hop counts, return names, reasons, timing — shows up as a snapshot
//! diff to review. Update with `INSTA_UPDATE=always cargo test -p ocala-vectors`.

use ocala_sim::{run_with, Outcome, RunOptions};

const ONE_HOP: &str = include_str!("../../driver-sim/scenarios/one-hop.toml");
const TWO_HOP: &str = include_str!("../../driver-sim/scenarios/two-hop.toml");
const REFUSE_RELAY: &str = include_str!("../../driver-sim/scenarios/refuse-relay.toml");

fn run(file: &str, text: &str) -> Outcome {
    let options = RunOptions {
        control_log: true,
        ..Default::default()
    };
    let outcome =
        run_with(file, text, &options, &mut |_, _| {}).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(
        outcome.failures.is_empty(),
        "{file}: expectations failed: {:?}\n{}",
        outcome.failures,
        outcome.summary
    );
    outcome
}

/// The lines of `control` whose node is `node`, direction `dir` and message `kind`.
fn lines<'a>(control: &'a [String], node: &str, dir: &str, kind: &str) -> Vec<&'a str> {
    control
        .iter()
        .map(String::as_str)
        .filter(|l| {
            let mut f = l.split_whitespace().skip(1);
            f.next() == Some(node) && f.next() == Some(dir) && f.next() == Some(kind)
        })
        .collect()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn one_hop_handshake() {
    let out = run("one-hop.toml", ONE_HOP);
    // alice sets up the path to bob, bob accepts it; nothing else.
    let setups = lines(&out.control, "alice", "sent", "setup");
    let accepts = lines(&out.control, "bob", "sent", "accept");
    assert_eq!(setups.len(), 1, "{:#?}", out.control);
    assert_eq!(accepts.len(), 1, "{:#?}", out.control);
    assert_eq!(field(setups[0], "hops"), "0");
    assert_eq!(field(setups[0], "return"), "alice.udp");
    assert_eq!(field(setups[0], "path_id"), field(accepts[0], "path_id"));
    assert_eq!(
        field(setups[0], "sender_label"),
        field(accepts[0], "receiver_label")
    );
    // Secure by default: Noise XX rides in setup (32 B: an ephemeral key), accept (the
    // responder's key and certificate, encrypted) and one confirm (the initiator's).
    assert_eq!(field(setups[0], "options"), "0x01", "encrypt");
    assert_eq!(field(setups[0], "handshake"), "32B");
    let cert_bytes: usize = field(accepts[0], "handshake")
        .trim_end_matches('B')
        .parse()
        .unwrap();
    assert!(cert_bytes > 200, "{}", accepts[0]);
    assert_eq!(
        lines(&out.control, "alice", "sent", "confirm").len(),
        1,
        "{:#?}",
        out.control
    );
    assert_eq!(lines(&out.control, "bob", "recv", "confirm").len(), 1);
    insta::assert_snapshot!("one_hop", out.control.join("\n"));
}

#[test]
fn one_hop_handshake_agreeing_on_aes() {
    // Both ends offer AES-256-GCM: the setup's Noise payload carries the offer (8 B of
    // parameters after the 32 B ephemeral key) and the accept's the choice (7 B before the
    // certificate); the confirm is what it always was.
    let aes = ONE_HOP.replace(
        "ip = \"10.0.0.",
        "config.security.cipher = \"aes-256-gcm\"\nip = \"10.0.0.",
    );
    let out = run("one-hop.toml (aes-256-gcm)", &aes);
    let plain = run("one-hop.toml", ONE_HOP);
    let size = |out: &Outcome, node, kind| -> usize {
        let l = lines(&out.control, node, "sent", kind);
        field(l[0], "handshake")
            .trim_end_matches('B')
            .parse()
            .unwrap()
    };
    assert_eq!(size(&out, "alice", "setup"), 40);
    assert_eq!(
        size(&out, "bob", "accept"),
        size(&plain, "bob", "accept") + 7
    );
    assert_eq!(
        size(&out, "alice", "confirm"),
        size(&plain, "alice", "confirm")
    );
    insta::assert_snapshot!("one_hop_aes", out.control.join("\n"));
}

#[test]
fn two_hop_handshake() {
    let out = run("two-hop.toml", TWO_HOP);
    let c = &out.control;
    let alice_setups = lines(c, "alice", "sent", "setup");
    let (via_gw, direct): (Vec<&str>, Vec<&str>) = alice_setups
        .iter()
        .partition(|l| field(l, "remaining") == "\"carol.udp\"");
    let gw_setup = lines(c, "gw", "sent", "setup");
    let carol_accept = lines(c, "carol", "sent", "accept");
    let gw_accept = lines(c, "gw", "sent", "accept");
    assert_eq!(via_gw.len(), 1, "{c:#?}");
    assert_eq!(gw_setup.len(), 1, "{c:#?}");
    assert_eq!(carol_accept.len(), 1, "{c:#?}");
    assert_eq!(gw_accept.len(), 1, "{c:#?}");
    let (a, g) = (via_gw[0], gw_setup[0]);
    assert_eq!(field(a, "hops"), "0");
    assert_eq!(field(a, "return"), "alice.udp");
    assert_eq!(field(g, "hops"), "1");
    assert_eq!(field(g, "return"), "alice.udp_gw.udp");
    assert_eq!(field(g, "remaining"), "\"\"");
    // One path id end to end; each hop's accept names the label its setup gave.
    let id = field(a, "path_id");
    for l in [g, carol_accept[0], gw_accept[0]] {
        assert_eq!(field(l, "path_id"), id, "{l}");
    }
    assert_eq!(
        field(g, "sender_label"),
        field(carol_accept[0], "receiver_label")
    );
    assert_eq!(
        field(a, "sender_label"),
        field(gw_accept[0], "receiver_label")
    );
    // The direct name has no route: its setup is retried under one path id, never answered.
    assert!(direct.len() > 1, "{c:#?}");
    let direct_id = field(direct[0], "path_id");
    assert_ne!(direct_id, id);
    for l in &direct {
        assert_eq!(field(l, "path_id"), direct_id, "{l}");
        assert_eq!(field(l, "remaining"), "\"\"", "{l}");
    }
    assert!(!c
        .iter()
        .any(|l| l.contains(direct_id) && l.contains(" recv ")));
    // carol answers alice over the path alice set up: no setup of its own.
    assert!(lines(c, "carol", "sent", "setup").is_empty(), "{c:#?}");
    // The gateway passes handshake messages on untouched, so the ends authenticate each other.
    assert_eq!(field(a, "handshake"), field(g, "handshake"));
    assert_eq!(
        field(carol_accept[0], "handshake"),
        field(gw_accept[0], "handshake")
    );
    let confirms = lines(c, "gw", "sent", "confirm");
    assert_eq!(confirms.len(), 1, "{c:#?}");
    assert_eq!(
        field(confirms[0], "handshake"),
        field(lines(c, "alice", "sent", "confirm")[0], "handshake")
    );
    insta::assert_snapshot!("two_hop", c.join("\n"));
}

#[test]
fn refuse_relay_handshake() {
    let out = run("refuse-relay.toml", REFUSE_RELAY);
    let c = &out.control;
    let rejects = lines(c, "plain", "sent", "reject");
    assert!(!rejects.is_empty(), "{c:#?}");
    for r in &rejects {
        assert!(r.contains("reason=not a gateway"), "{r}");
    }
    assert!(lines(c, "carol", "recv", "setup").is_empty(), "{c:#?}");
    assert!(lines(c, "plain", "sent", "setup").is_empty(), "{c:#?}");
    insta::assert_snapshot!("refuse_relay", c.join("\n"));
}

const I3_RENDEZVOUS: &str = include_str!("../../driver-sim/scenarios/i3-rendezvous.toml");

/// The seconds at the start of a control line.
fn at_secs(line: &str) -> f64 {
    line.split_whitespace()
        .next()
        .and_then(|t| t.trim_end_matches('s').parse().ok())
        .unwrap_or(f64::MAX)
}

/// The control lines from `from` to `to` seconds, without the periodic trigger refreshes
/// unless `refreshes`.
fn window(out: &Outcome, from: f64, to: f64, refreshes: bool) -> Vec<String> {
    out.control
        .iter()
        .filter(|l| (from..to).contains(&at_secs(l)))
        .filter(|l| refreshes || !(l.contains(" i3 insert ") || l.contains(" i3 ack ")))
        .cloned()
        .collect()
}

#[test]
fn i3_trigger_insertion_and_private_trigger_negotiation() {
    let out = run("i3-rendezvous.toml", I3_RENDEZVOUS);
    // Up to alice's first ping's path: the hosts' first insertions, then the setup.
    let c = window(&out, 0.0, 1.6, true);
    let inserts = lines(&c, "alice", "sent", "i3");
    assert!(
        inserts.iter().any(|l| l.contains("i3 insert")),
        "alice inserts her public trigger: {c:#?}"
    );
    // The setup rides to bob's public trigger with alice's private id as its return id; bob's
    // accept comes from his private trigger, carrying his own return id, to alice's private id.
    let setup = lines(&c, "alice", "sent", "i3")
        .into_iter()
        .find(|l| l.contains("| setup"))
        .unwrap_or_else(|| panic!("no setup over i3: {c:#?}"));
    let accept = lines(&c, "bob", "sent", "i3")
        .into_iter()
        .find(|l| l.contains("| accept"))
        .unwrap_or_else(|| panic!("no accept over i3: {c:#?}"));
    let bob_public = ocala_engine::ocd::i3::id::Id::of_name("bob.i3").to_string();
    assert_eq!(field(setup, "to"), format!("[{bob_public}]"));
    let alice_private = field(setup, "return");
    assert_eq!(field(accept, "to"), format!("[{alice_private}]"));
    let bob_private = field(accept, "return");
    assert_ne!(format!("[{bob_private}]"), field(setup, "to"));
    // From then on alice sends to bob's private trigger only.
    let confirm = lines(&c, "alice", "sent", "i3")
        .into_iter()
        .find(|l| l.contains("| confirm"))
        .unwrap_or_else(|| panic!("no confirm over i3: {c:#?}"));
    assert_eq!(field(confirm, "to"), format!("[{bob_private}]"));
    // Each host's trigger insertion is acknowledged by the server that holds it.
    for l in c
        .iter()
        .filter(|l| l.contains(" alice ") || l.contains(" bob "))
    {
        if l.contains(" sent i3 insert ") {
            let id = field(l, "id");
            assert!(
                c.iter()
                    .any(|m| m.contains(" recv i3 ack ") && field(m, "id") == id),
                "{l} not acknowledged"
            );
        }
    }
    insta::assert_snapshot!("i3_negotiation", c.join("\n"));
}

const I3_SHORTCUT: &str = include_str!("../../driver-sim/scenarios/i3-shortcut.toml");

#[test]
fn i3_shortcut_discovery_and_probing() {
    let out = run("i3-shortcut.toml", I3_SHORTCUT);
    // The shortcut pings start at 4 s; the direct path is verified within their first tenths.
    let c = window(&out, 4.0, 4.2, false);
    let asked = c
        .iter()
        .find(|l| l.contains("alice  sent i3 data flags=0x05"))
        .unwrap_or_else(|| panic!("alice never asks for a shortcut: {c:#?}"));
    let bob_private = field(asked, "to").trim_matches(|ch| ch == '[' || ch == ']');
    // The server answers with where bob's private trigger points, and alice probes there.
    let told = lines(&c, "alice", "recv", "i3")
        .into_iter()
        .find(|l| l.contains("i3 shortcut"))
        .unwrap_or_else(|| panic!("no shortcut answer: {c:#?}"));
    assert_eq!(field(told, "id"), bob_private);
    assert_eq!(field(told, "addr"), "10.0.0.2:4790");
    assert!(
        c.iter()
            .any(|l| l.contains("alice  sent i3 probe id=") && field(l, "id") == bob_private),
        "{c:#?}"
    );
    assert!(
        c.iter()
            .any(|l| l.contains("bob    sent i3 probe-ack id=") && field(l, "id") == bob_private),
        "{c:#?}"
    );
    insta::assert_snapshot!("i3_shortcut", c.join("\n"));
}

const RON_TRIANGLE: &str = include_str!("../../driver-sim/scenarios/ron-triangle.toml");

/// RON's first probe round and link-state reports among alice, bob and carol, then alice's
/// path setup to bob.ron riding in RON data.
#[test]
fn ron_probes_link_state_and_setup() {
    let out = run("ron-triangle.toml", RON_TRIANGLE);
    let mut c = window(&out, 0.0, 0.2, true);
    c.extend(
        window(&out, 1.0, 1.05, true)
            .into_iter()
            .filter(|l| l.contains(" ron data ")),
    );
    let id = |name: &str| format!("{:08x}", ocala_engine::ocd::ron::member_id(name) >> 32);
    let (alice, bob) = (id("alice.ron"), id("bob.ron"));
    // Every member probes the other two, and each probe is answered.
    for node in ["alice", "bob", "carol"] {
        assert_eq!(
            lines(&c, node, "sent", "ron")
                .iter()
                .filter(|l| l.contains(" ron probe "))
                .count(),
            2,
            "{node}: {c:#?}"
        );
        assert_eq!(
            lines(&c, node, "recv", "ron")
                .iter()
                .filter(|l| l.contains(" ron ack "))
                .count(),
            2,
            "{node}: {c:#?}"
        );
    }
    // Once alice has heard bob, her report says so: 10 ms round trip, no loss.
    assert!(
        lines(&c, "alice", "sent", "ron")
            .iter()
            .any(|l| l.contains(&format!("ron links src={alice}"))
                && l.contains(&format!("{bob} 10000us 0pm"))),
        "{c:#?}"
    );
    // The setup rides in RON data from alice to bob, on the mindelay-free default metric.
    assert!(
        c.iter().any(|l| l.contains("alice  sent ron data")
            && l.contains(&format!("dst={bob}"))
            && l.contains("| setup")),
        "{c:#?}"
    );
    insta::assert_snapshot!("ron_probes", c.join("\n"));
}

const LEGACY_INTRANETS: &str = include_str!("../../driver-sim/scenarios/legacy-intranets.toml");

#[test]
fn legacy_server_gateway_handshake() {
    let out = run("legacy-intranets.toml", LEGACY_INTRANETS);
    let c = &out.control;
    // The paths end at the gateways: they accept, and send no setup of their own.
    for gw in ["gw1", "gw2"] {
        assert!(lines(c, gw, "sent", "setup").is_empty(), "{c:#?}");
        assert!(!lines(c, gw, "sent", "accept").is_empty(), "{c:#?}");
    }
    let setups = lines(c, "alice", "sent", "setup");
    assert!(
        setups.iter().any(|l| l.contains("web.company1.com.ip")),
        "{setups:#?}"
    );
    let refused = lines(c, "gw1", "sent", "reject");
    assert!(
        refused
            .iter()
            .any(|r| r.contains("carol.udp may not use this gateway")),
        "{refused:#?}"
    );
    insta::assert_snapshot!("legacy_intranets", c.join("\n"));
}

const LEGACY_LAN: &str = include_str!("../../driver-sim/scenarios/legacy-lan.toml");

#[test]
fn legacy_client_gateway_handshake() {
    let out = run("legacy-lan.toml", LEGACY_LAN);
    let c = &out.control;
    // gw sets a path up for each LAN client, under the client's return name.
    let setups = lines(c, "gw", "sent", "setup");
    for client in ["192.168.1.10.ip_gw.udp", "192.168.1.11.ip_gw.udp"] {
        assert_eq!(
            setups.iter().filter(|l| l.contains(client)).count(),
            1,
            "{client}: {setups:#?}"
        );
    }
    assert_eq!(lines(c, "bob", "sent", "accept").len(), 2, "{c:#?}");
    insta::assert_snapshot!("legacy_lan", c.join("\n"));
}

const I3_CERTIFIED: &str = include_str!("../../driver-sim/scenarios/i3-middlebox-certified.toml");

#[test]
fn certified_middlebox_key_grants() {
    let out = run("i3-middlebox-certified.toml", I3_CERTIFIED);
    // alice's path to bob (receiver-imposed: bob certified fw). Beside her confirm, alice
    // sends the path's keys sealed to fw; fw keeps them, so bob never sees a grant.
    let c = window(&out, 0.9, 1.2, false);
    let grant = lines(&c, "alice", "sent", "i3")
        .into_iter()
        .find(|l| l.contains("| grant"))
        .unwrap_or_else(|| panic!("alice sends no grant: {c:#?}"));
    let confirm = lines(&c, "alice", "sent", "i3")
        .into_iter()
        .find(|l| l.contains("| confirm"))
        .unwrap_or_else(|| panic!("no confirm: {c:#?}"));
    assert_eq!(
        field(grant, "to"),
        field(confirm, "to"),
        "the confirm's way"
    );
    assert_eq!(field(grant, "sealed"), "120B");
    assert!(
        lines(&c, "bob", "recv", "i3")
            .iter()
            .all(|l| !l.contains("| grant")),
        "fw passed the grant on: {c:#?}"
    );
    // carol.i3_fw.i3 (sender-imposed: alice certified fw): the grant goes to fw's relay
    // half and ends there; dave certifies no one and sends none.
    let c = window(&out, 3.9, 4.2, false);
    assert_eq!(
        lines(&c, "alice", "sent", "i3")
            .iter()
            .filter(|l| l.contains("| grant"))
            .count(),
        1,
        "{c:#?}"
    );
    assert!(c
        .iter()
        .all(|l| !(l.contains(" carol ") && l.contains("| grant"))));
    let dave = window(&out, 6.9, 7.2, false);
    assert!(dave.iter().all(|l| !l.contains("| grant")), "{dave:#?}");
    insta::assert_snapshot!("certified_middlebox", c.join("\n"));
}
