//! End to end over i3, as root, with real programs: bob sits behind a NAT namespace that
//! masquerades him (nftables), alice and the i3 server `srv` are outside. alice has no route to
//! bob's address at all; she reaches him by name through the server, which forwards
//! ciphertext to the binding bob's trigger refreshes keep open in the NAT. With
//! `bob.shortcut.i3` the two then punch through the NAT and talk directly, which a counter on
//! the router sees. Then bob changes address: the daemon learns it from netlink, and the
//! path carries on.

mod support;

use std::time::Duration;
use support::{text, Topology};

/// The NAT: bob's packets leave masqueraded as 10.94.1.1; nothing from outside gets in
/// except answers on bindings bob opened.
const NAT_RULES: &str = r#"
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "v-net" masquerade
  }
}
table ip filter {
  chain admit {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "v-bob" accept
  }
}
"#;

/// Counts datagrams that go straight between alice and the NAT's outside, never via `srv`.
const DIRECT_COUNTER: &str = r#"
table ip watch {
  counter direct {}
  chain through {
    type filter hook forward priority 0;
    ip saddr 10.94.3.1 ip daddr 10.94.1.1 udp dport 1-65535 counter name direct
  }
}
"#;

fn config(name: &str, serve: bool) -> String {
    let mut c = format!(
        "[[overlays]]\nname = \"i3\"\nmodule = \"i3\"\nlocal_name = \"{name}\"\nport = 4790\n\
         [overlays.i3]\nservers = [\"10.94.0.2:4790\"]\nrefresh_secs = 2\n"
    );
    if serve {
        c.push_str("serve_as = \"10.94.0.2:4790\"\n");
    }
    c
}

/// alice, srv and the NAT's outside hang off a router `net`; the NAT masquerades bob
/// behind 10.94.1.1.
fn topology() -> Topology {
    support::require_root();
    let mut t = Topology::new("oci3", &["alice", "net", "srv", "nat", "bob", "fw"]);
    t.certify(&["i3"]);
    let keys = |h: &str| t.dir.join(format!("{h}-keys")).display().to_string();
    support::must(&[
        env!("CARGO_BIN_EXE_ocala"),
        "ca",
        "delegate",
        "--node",
        &keys("alice"),
        "--middlebox",
        &format!("{}/cert", keys("fw")),
    ]);
    let alice_chain = format!("chain_file = \"{}/chain\"\n", keys("alice"));
    // `net` routes between alice, the server and the NAT's outside; bob is inside the NAT.
    t.link("alice", "10.94.3.1/24", "net", "10.94.3.2/24");
    t.link("srv", "10.94.0.2/24", "net", "10.94.0.1/24");
    t.link("nat", "10.94.1.1/24", "net", "10.94.1.2/24");
    t.link("nat", "10.94.2.1/24", "bob", "10.94.2.2/24");
    t.link("fw", "10.94.5.2/24", "net", "10.94.5.1/24");
    t.must("net", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    t.must("nat", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    for (host, via) in [
        ("alice", "10.94.3.2"),
        ("srv", "10.94.0.1"),
        ("nat", "10.94.1.2"),
        ("bob", "10.94.2.1"),
        ("fw", "10.94.5.1"),
    ] {
        t.must(host, &["ip", "route", "add", "default", "via", via]);
    }
    let file = t.dir.join("nat.nft");
    std::fs::write(&file, NAT_RULES).expect("nft rules");
    t.must("nat", &["nft", "-f", &file.display().to_string()]);
    let file = t.dir.join("watch.nft");
    std::fs::write(&file, DIRECT_COUNTER).expect("nft rules");
    t.must("net", &["nft", "-f", &file.display().to_string()]);
    t.start("srv", &config("srv", true), "");
    t.start("bob", &config("bob", false), "");
    t.start("alice", &config("alice", false), &alice_chain);
    let fw = format!(
        "gateway = true\n{}[middlebox]\ndrop_tcp_ports = [8001]\n",
        config("fw", false)
    );
    t.start("fw", &fw, "");
    for port in ["8000", "8001"] {
        t.serve(
            "bob",
            &["python3", "-m", "http.server", port, "--bind", "::"],
        );
    }
    // Let bob's first trigger insertion open the NAT binding.
    std::thread::sleep(Duration::from_millis(1500));
    t
}

#[test]
fn a_host_behind_a_nat_is_reached_by_name_through_an_i3_server() {
    let t = topology();

    // alice cannot reach bob's address: there is no route, and the NAT admits nothing unasked.
    let direct = t.exec("alice", &["ping", "-c", "1", "-W", "1", "10.94.2.2"]);
    assert!(!direct.status.success(), "{}", text(&direct));

    let curl = t.exec(
        "alice",
        &[
            "curl",
            "-sS",
            "-m",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://bob.i3:8000/",
        ],
    );
    assert_eq!(
        text(&curl),
        "200",
        "alice:\n{}\nsrv:\n{}\nbob:\n{}",
        t.log("alice"),
        t.log("srv"),
        t.log("bob")
    );

    let ping = t.exec("alice", &["ping", "-c", "3", "-i", "0.3", "bob.i3"]);
    let out = text(&ping);
    assert!(ping.status.success(), "{out}\n{}", t.log("alice"));
    assert!(out.contains("3 received"), "{out}");
    assert_eq!(direct_datagrams(&t), 0, "the relayed paths never go direct");

    certified_middlebox_reads_and_filters(&t);

    // The shortcut: the first pings ride the relay while the ends probe each other; bob's
    // probe opens his NAT for alice's, and from then on the pings go straight through it.
    let ping = t.exec(
        "alice",
        &["ping", "-c", "10", "-i", "0.2", "bob.shortcut.i3"],
    );
    let out = text(&ping);
    assert!(ping.status.success(), "{out}\n{}", t.log("alice"));
    assert!(out.contains("10 received"), "{out}");
    let alice = t.log("alice");
    assert!(
        alice.contains("shortcut to bob: direct at 10.94.1.1:"),
        "alice:\n{alice}\nbob:\n{}",
        t.log("bob")
    );
    assert!(
        direct_datagrams(&t) >= 5,
        "{}",
        text(&t.exec("net", &["nft", "list", "ruleset"]))
    );

    // bob moves to another network behind the NAT (a new subnet on the same link): a new
    // address, the old one gone. ocalad hears it from netlink and re-inserts bob's triggers
    // from the new address (through a new NAT binding) at once; alice's pings over the same
    // path keep working.
    let moves: [(&str, &[&str]); 4] = [
        (
            "nat",
            &["ip", "addr", "add", "10.94.4.1/24", "dev", "v-bob"],
        ),
        (
            "bob",
            &["ip", "addr", "add", "10.94.4.2/24", "dev", "v-nat"],
        ),
        (
            "bob",
            &["ip", "addr", "del", "10.94.2.2/24", "dev", "v-nat"],
        ),
        (
            "bob",
            &["ip", "route", "replace", "default", "via", "10.94.4.1"],
        ),
    ];
    for (host, cmd) in moves {
        t.must(host, cmd);
    }
    let ping = t.exec("alice", &["ping", "-c", "5", "-i", "0.3", "bob.i3"]);
    let out = text(&ping);
    let bob = t.log("bob");
    assert!(bob.contains("underlay changed"), "bob:\n{bob}");
    assert!(
        ping.status.success(),
        "{out}\nalice:\n{}\nbob:\n{bob}",
        t.log("alice")
    );
    assert!(
        out.contains(" 0% packet loss") || out.contains("4 received"),
        "{out}\nbob:\n{bob}"
    );
}

/// Through `fw`, which alice certified: the path is encrypted end to end, yet fw opens it and
/// stops port 8001 while port 8000 passes.
fn certified_middlebox_reads_and_filters(t: &Topology) {
    let get = |port: &str| {
        let url = format!("http://bob.i3_fw.i3:{port}/");
        let args = [
            "curl",
            "-sS",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ];
        t.exec("alice", &args)
    };
    let passed = get("8000");
    assert_eq!(
        text(&passed),
        "200",
        "alice:\n{}\nfw:\n{}",
        t.log("alice"),
        t.log("fw")
    );
    let stopped = get("8001");
    assert!(!stopped.status.success(), "port 8001 got through fw");
    let status = t.ocala("fw", &["status"]).expect("fw's status");
    let line = status
        .lines()
        .find(|l| l.contains(" opened,"))
        .unwrap_or_else(|| panic!("no middlebox line:\n{status}"));
    let count = |word: &str| -> u64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .iter()
            .position(|w| w.trim_end_matches(',') == word)
            .and_then(|i| words.get(i - 1)?.parse().ok())
            .unwrap_or_else(|| panic!("no '{word}' count in {line}"))
    };
    assert!(count("opened") >= 4, "{line}");
    assert!(count("dropped") >= 1, "{line}");
    assert!(line.contains("tcp/8001"), "{line}");
    assert!(
        status.contains("opened here"),
        "fw's relay halves:\n{status}"
    );
    let alice = t.ocala("alice", &["status"]).expect("alice's status");
    assert!(
        alice
            .lines()
            .any(|l| l.contains("bob.i3_fw.i3") && l.contains("encrypt, read by fw.i3")),
        "{alice}"
    );
}

/// Datagrams the router forwarded from alice straight to the NAT.
fn direct_datagrams(t: &Topology) -> u64 {
    let out = text(&t.exec("net", &["nft", "list", "counter", "ip", "watch", "direct"]));
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {out}"))
}
