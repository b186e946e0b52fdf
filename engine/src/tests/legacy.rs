//! The legacy server gateway between engines: paths that end at a gateway and go on to a
//! plain IP host, the gateway's policy, its lookups, and sessions that end.

use super::secure::secure;
use super::*;
use crate::legacy::{AllowRule, LegacyServerConfig};
use crate::wire::ip::IpView;
use crate::wire::rewrite::write_udp_packet;
use crate::wire::testutil::recompute_all;

pub(super) const SERVER: [u8; 4] = [10, 9, 0, 80];

pub(super) fn rule(clients: &[&str], destinations: &[&str], plain: bool) -> AllowRule {
    AllowRule {
        clients: clients.iter().map(|s| s.to_string()).collect(),
        destinations: destinations.iter().map(|s| s.to_string()).collect(),
        plain,
    }
}

fn gateway(mut cfg: Config, allow: Vec<AllowRule>) -> Config {
    cfg.gateway = true;
    cfg.legacy_server = Some(LegacyServerConfig {
        allow,
        resolve_ttl_secs: 60,
    });
    cfg
}

/// alice (1) and carol (3) reach legacy hosts through gw (2), which lets alice reach
/// `*.corp.com` on plain paths and nobody else anything.
fn intranet() -> Net {
    intranet_with(vec![rule(&["alice.udp"], &["*.corp.com"], true)])
}

/// The same three nodes, with gw under these rules.
pub(super) fn intranet_with(allow: Vec<AllowRule>) -> Net {
    let mut gw = gateway(config("gw", &[("alice", 1), ("carol", 3)], true), allow);
    // Unknown names go unanswered here; the gateway gives up on them before the client does.
    gw.limits.upstream_timeout_secs = 1;
    let mut net = Net::new(vec![
        config("alice", &[("gw", 2)], false),
        gw,
        config("carol", &[("gw", 2)], false),
    ]);
    net.hosts
        .insert("web.corp.com".into(), IpAddr::from(SERVER));
    net.hosts
        .insert("db.corp.com".into(), IpAddr::from([10, 9, 0, 81]));
    net.hosts
        .insert("cnn.com".into(), IpAddr::from([151, 101, 1, 67]));
    net
}

/// The Extended DNS Error text of an answer (the tail of its OPT record).
fn ede_text(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).into_owned()
}

/// An app on `node` sends a UDP packet to `handle`.
fn send(net: &mut Net, node: usize, handle: IpAddr, payload: &[u8]) {
    let src: IpAddr = net.nodes[node].cfg.handles.tun_v4.into();
    net.input(node, Input::TunPacket(&udp_to(src, handle, payload)));
}

#[test]
fn a_path_ends_at_the_gateway_and_goes_on_to_the_legacy_server() {
    let mut net = intranet();
    let answer = net.lookup(0, "web.corp.com.ip_gw.udp").expect("answered");
    assert_eq!(rcode(&answer), 0);
    let handle = answered_v4(&answer);
    send(&mut net, 0, handle, b"GET /");
    let out = net.tun[1]
        .last()
        .expect("the gateway wrote it towards the server");
    let ip = IpView::parse(out).unwrap();
    let egress = ip.src();
    assert_eq!(ip.dst(), IpAddr::from(SERVER));
    assert!(
        net.nodes[1].handles.in_pool(egress),
        "from an egress address"
    );
    assert_eq!(&recompute_all(out), out, "checksums hold");
    assert!(out.ends_with(b"GET /"));

    // The server's answer, back to the egress address, reaches alice from her handle.
    let reply = udp_to(IpAddr::from(SERVER), egress, b"200 OK");
    net.input(1, Input::TunPacket(&reply));
    let got = net.tun[0].last().unwrap();
    let ip = IpView::parse(got).unwrap();
    assert_eq!(ip.src(), handle);
    assert_eq!(ip.dst(), IpAddr::from(net.nodes[0].cfg.handles.tun_v4));
    assert!(got.ends_with(b"200 OK"));
    assert_eq!(&recompute_all(got), got, "checksums hold");
}

#[test]
fn a_server_with_ipv4_only_gets_no_aaaa_answer() {
    let mut net = intranet();
    let v4 = net.lookup(0, "web.corp.com.ip_gw.udp").expect("answered");
    assert_eq!(parse_address_answer(&v4, 7).unwrap().len(), 1);
    let v6 = net
        .ask(0, "web.corp.com.ip_gw.udp", true)
        .expect("answered");
    assert_eq!(rcode(&v6), 0, "NOERROR");
    assert_eq!(u16::from_be_bytes([v6[6], v6[7]]), 0, "no AAAA record");
    // An ordinary far end takes both.
    let mut plain = pair();
    let v6 = plain.ask(0, "bob.udp", true).expect("answered");
    assert_eq!(u16::from_be_bytes([v6[6], v6[7]]), 1);
}

#[test]
fn a_server_with_ipv6_only_is_reached_over_ipv6() {
    let mut net = intranet();
    let server: IpAddr = "fd00:9::80".parse().unwrap();
    net.hosts.insert("v6.corp.com".into(), server);
    let a = net.lookup(0, "v6.corp.com.ip_gw.udp").expect("answered");
    assert_eq!(rcode(&a), 0);
    assert_eq!(u16::from_be_bytes([a[6], a[7]]), 0, "no A record");
    let aaaa = net.ask(0, "v6.corp.com.ip_gw.udp", true).expect("answered");
    let handle = parse_address_answer(&aaaa, 7).unwrap()[0];
    assert!(handle.is_ipv6());
    let src: IpAddr = net.nodes[0].cfg.handles.tun_v6.into();
    net.input(0, Input::TunPacket(&udp_to(src, handle, b"over v6")));
    let out = net.tun[1].last().expect("towards the server");
    assert_eq!(IpView::parse(out).unwrap().dst(), server);
    assert!(out.ends_with(b"over v6"));
}

#[test]
fn each_client_and_destination_gets_its_own_egress_address() {
    let mut net = intranet_with(vec![rule(&["*"], &["*.corp.com"], true)]);
    let mut egress = Vec::new();
    for (node, name) in [
        (0, "web.corp.com.ip_gw.udp"),
        (0, "db.corp.com.ip_gw.udp"),
        (2, "web.corp.com.ip_gw.udp"),
    ] {
        let handle = answered_v4(&net.lookup(node, name).expect("answered"));
        send(&mut net, node, handle, b"x");
        egress.push(IpView::parse(net.tun[1].last().unwrap()).unwrap().src());
    }
    egress.sort();
    egress.dedup();
    assert_eq!(egress.len(), 3, "{egress:?}");
    // The gateway resolved web.corp.com once: the second client's setup used the answer.
    assert!(net.nodes[1]
        .handles
        .by_name("web.corp.com.ip<alice.udp")
        .is_some());
    assert!(net.nodes[1]
        .handles
        .by_name("web.corp.com.ip<carol.udp")
        .is_some());
}

#[test]
fn refusals_reach_the_app_as_servfail_with_the_reason() {
    let mut net = intranet();
    let cases = [
        (
            2,
            "web.corp.com.ip_gw.udp",
            "carol.udp may not use this gateway",
        ),
        (
            0,
            "cnn.com.ip_gw.udp",
            "alice.udp may not reach cnn.com through this gateway",
        ),
        (
            0,
            "nowhere.corp.com.ip_gw.udp",
            "nowhere.corp.com does not resolve at the gateway",
        ),
    ];
    for (node, name, why) in cases {
        let before = net.tun[node].len();
        net.lookup(node, name);
        for _ in 0..100 {
            if net.tun[node].len() > before {
                break;
            }
            net.advance(Duration::from_millis(50));
        }
        let answer = &net.tun[node].last().expect("answered in the end")[28..];
        assert_eq!(rcode(answer), 2, "{name}: SERVFAIL");
        assert!(
            ede_text(answer).contains(why),
            "{name}: {}",
            ede_text(answer)
        );
    }
    assert!(net.tun[1].is_empty(), "nothing reached a legacy host");
    assert_eq!(net.drops(1, DropReason::Refused), 3);
}

#[test]
fn address_ranges_limit_what_a_name_may_resolve_to() {
    let gw = gateway(
        config("gw", &[("alice", 1)], true),
        vec![rule(&["alice.udp"], &["10.9.0.0/24"], true)],
    );
    let mut net = Net::new(vec![config("alice", &[("gw", 2)], false), gw]);
    net.hosts
        .insert("web.corp.com".into(), IpAddr::from(SERVER));
    net.hosts
        .insert("rebound.corp.com".into(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(rcode(&net.lookup(0, "web.corp.com.ip_gw.udp").unwrap()), 0);
    // A literal address in range needs no lookup.
    assert_eq!(rcode(&net.lookup(0, "10.9.0.7.ip_gw.udp").unwrap()), 0);
    net.lookup(0, "rebound.corp.com.ip_gw.udp");
    net.advance(Duration::from_millis(50));
    let answer = &net.tun[0].last().unwrap()[28..];
    assert_eq!(rcode(answer), 2);
    assert!(ede_text(answer).contains("rebound.corp.com (127.0.0.1) is not an address"));
}

#[test]
fn a_secure_path_is_authenticated_by_the_gateway_and_the_overlay_sees_no_payload() {
    let mut gw = gateway(
        secure("gw", &[("alice", 1), ("mallory", 3)], &["gw.udp"]),
        vec![rule(&["alice.udp"], &["*.corp.com"], false)],
    );
    gw.security.accept_plain = true;
    let mut net = Net::new(vec![
        secure("alice", &[("gw", 2)], &["alice.udp"]),
        gw,
        // mallory claims to be alice; her certificate says otherwise.
        secure("mallory", &[("gw", 2)], &["mallory.udp"]),
    ]);
    net.nodes[2].overlays[0].local_name = "alice".into();
    net.hosts
        .insert("web.corp.com".into(), IpAddr::from(SERVER));

    let answer = net.lookup(0, "web.corp.com.ip_gw.udp").expect("answered");
    assert_eq!(rcode(&answer), 0);
    assert!(net.events[0].iter().any(|e| matches!(
        e,
        Event::PathUp {
            protection: Protection::Encrypt,
            ..
        }
    )));
    let handle = answered_v4(&answer);
    let before = net.wire.len();
    send(&mut net, 0, handle, b"the secret payload");
    assert!(net.wire[before..]
        .iter()
        .all(|(_, _, d)| !d.windows(6).any(|w| w == b"secret")));
    assert!(net.tun[1].last().unwrap().ends_with(b"the secret payload"));

    // A plain path is refused: the rule is for authenticated clients.
    net.lookup(0, "web.corp.com.ip_gw.udp_plain.oci");
    net.advance(Duration::from_millis(50));
    let answer = &net.tun[0].last().unwrap()[28..];
    assert!(ede_text(answer).contains("only on authenticated paths"));

    // mallory's claim passes the setup, but her confirm does not prove it: nothing of hers
    // reaches the server.
    let sent = net.tun[1].len();
    let h = net
        .lookup(2, "web.corp.com.ip_gw.udp")
        .map(|a| answered_v4(&a));
    if let Some(h) = h {
        send(&mut net, 2, h, b"forged");
    }
    net.advance(Duration::from_millis(50));
    assert_eq!(net.tun[1].len(), sent, "mallory reached no legacy host");
    assert!(net.drops(1, DropReason::AuthFailed) >= 1);
}

#[test]
fn a_session_that_ended_takes_nothing_in() {
    let mut net = intranet();
    let handle = answered_v4(&net.lookup(0, "web.corp.com.ip_gw.udp").unwrap());
    send(&mut net, 0, handle, b"x");
    let egress = IpView::parse(net.tun[1].last().unwrap()).unwrap().src();
    net.input(
        0,
        Input::Command(crate::api::Command::ClosePath(
            "web.corp.com.ip_gw.udp".into(),
        )),
    );
    let to_alice = net.tun[0].len();
    net.input(
        1,
        Input::TunPacket(&udp_to(IpAddr::from(SERVER), egress, b"late")),
    );
    assert_eq!(net.drops(1, DropReason::SessionExpired), 1);
    assert_eq!(net.tun[0].len(), to_alice);
    // The client comes back: the same egress address, so the server sees one peer.
    send(&mut net, 0, handle, b"again");
    assert_eq!(
        IpView::parse(net.tun[1].last().unwrap()).unwrap().src(),
        egress
    );
    // Egress handles are not checkpointed: a restart ends legacy sessions.
    assert!(net.nodes[1]
        .handle_bindings()
        .iter()
        .all(|b| !b.name.contains('<')));
}

#[test]
fn legacy_configuration_errors_name_the_key() {
    let mut cfg = config("gw", &[], false);
    cfg.legacy_server = Some(LegacyServerConfig {
        allow: Vec::new(),
        resolve_ttl_secs: 60,
    });
    let e = Engine::new(cfg, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "legacy_server");
    let mut cfg = config("gw", &[], true);
    cfg.overlays[0].name = "ip".into();
    let e = Engine::new(cfg, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "overlays[0].name");
    let cfg = gateway(
        config("gw", &[], true),
        vec![rule(&["alice.udp"], &["bad name!"], false)],
    );
    let e = Engine::new(cfg, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "legacy_server.allow[0].destinations[0]");
}

/// A legacy client gateway gw (1) for the LAN 192.168.1.0/24, and bob (2), both certified.
fn lan() -> Net {
    let mut gw = secure("gw", &[("bob", 2)], &["gw.udp"]);
    gw.legacy_client = Some(crate::legacy::LegacyClientConfig {
        lan: vec!["192.168.1.0/24".parse().unwrap()],
    });
    Net::new(vec![gw, secure("bob", &[("gw", 1)], &["bob.udp"])])
}

/// A LAN client at `client` asks gw (node 0) for `name`; returns the DNS answer.
fn lan_lookup(net: &mut Net, client: IpAddr, name: &str) -> Option<Vec<u8>> {
    let query = build_address_query(7, name, false).unwrap();
    let dns = IpAddr::from(net.nodes[0].cfg.handles.dns_v4);
    let mut packet = Vec::new();
    write_udp_packet(
        &mut packet,
        SocketAddr::new(client, 5353),
        SocketAddr::new(dns, 53),
        &query,
    )
    .unwrap();
    let before = net.tun[0].len();
    net.input(0, Input::TunPacket(&packet));
    let answer = net.tun[0].get(before)?;
    assert_eq!(
        IpView::parse(answer).unwrap().dst(),
        client,
        "back to the client"
    );
    Some(answer[28..].to_vec())
}

#[test]
fn lan_clients_share_a_handle_and_each_gets_its_own_path() {
    let mut net = lan();
    let (c10, c11) = (
        IpAddr::from([192, 168, 1, 10]),
        IpAddr::from([192, 168, 1, 11]),
    );
    let h10 = answered_v4(&lan_lookup(&mut net, c10, "bob.udp").expect("answered"));
    let h11 = answered_v4(&lan_lookup(&mut net, c11, "bob.udp").expect("answered"));
    assert_eq!(h10, h11, "one address serves every client");
    // bob sees two peers, each reached back through gw as a legacy host, proven by gw's
    // certificate.
    let accepted: Vec<String> = net.events[1]
        .iter()
        .filter_map(|e| match e {
            Event::PathAccepted { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepted,
        ["192.168.1.10.ip_gw.udp", "192.168.1.11.ip_gw.udp"],
        "{:?}",
        net.events[1]
    );

    // Each client's packets reach bob from a handle of its own, and bob's answers go back
    // to the client that asked.
    for (client, payload) in [(c10, &b"from .10"[..]), (c11, &b"from .11"[..])] {
        net.input(0, Input::TunPacket(&udp_to(client, h10, payload)));
        let at_bob = net.tun[1].last().unwrap().clone();
        assert!(at_bob.ends_with(payload));
        let bob_sees = IpView::parse(&at_bob).unwrap().src();
        let bob_tun = IpAddr::from(net.nodes[1].cfg.handles.tun_v4);
        net.input(1, Input::TunPacket(&udp_to(bob_tun, bob_sees, b"reply")));
        let back = net.tun[0].last().unwrap();
        let ip = IpView::parse(back).unwrap();
        assert_eq!((ip.src(), ip.dst()), (h10, client));
        assert_eq!(&recompute_all(back), back, "checksums hold");
    }
    assert_eq!(net.nodes[0].paths.len(), 2);
}

#[test]
fn a_lan_must_be_named_and_lie_outside_the_handle_pools() {
    let mut cfg = secure("gw", &[], &["gw.udp"]);
    cfg.legacy_client = Some(crate::legacy::LegacyClientConfig { lan: vec![] });
    let e = Engine::new(cfg.clone(), [0; 32], Instant::ZERO)
        .err()
        .unwrap();
    assert_eq!(e.key, "legacy_client.lan");
    let pool = cfg.handles.pool_v4;
    cfg.legacy_client = Some(crate::legacy::LegacyClientConfig {
        lan: vec!["192.168.1.0/24".parse().unwrap(), pool],
    });
    let e = Engine::new(cfg, [0; 32], Instant::ZERO).err().unwrap();
    assert_eq!(e.key, "legacy_client.lan[1]");
    assert!(
        e.message.contains("overlaps the handle pool"),
        "{}",
        e.message
    );
}
