//! End to end through legacy server gateways, as root, with real programs. Two intranets
//! that run no ocala, both numbered 10.0.0.0/24, each with a web server and a resolver at
//! 10.0.0.80; their gateways gw1 and gw2 run ocalad as legacy server gateways (the
//! masquerade is nftables). alice's rules send `*.company1.com` through gw1 and
//! `*.company2.com` through gw2, so plain `curl http://web.company1.com/` and
//! `curl http://web.company2.com/` reach two servers at the same address. carol is not on
//! gw1's list and is refused, with the reason in the DNS answer. gw2 is also a legacy
//! client gateway for a LAN of two hosts that run no ocala: they name gw2 as their resolver
//! and reach alice by name. web1 also serves FTP: alice fetches a file in passive and in
//! active mode through gw1, whose kernel FTP helper rewrites the PORT command; alice's
//! address negotiation makes the egress address her own, so the command names it rightly.

mod support;

use support::{text, Topology};

fn overlay(name: &str, book: &[(&str, &str)]) -> String {
    let book: Vec<String> = book
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}:4789\""))
        .collect();
    format!(
        "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"{name}\"\n\
         address_book = {{ {} }}\n",
        book.join(", ")
    )
}

fn gateway(name: &str, book: &[(&str, &str)], allow: &str) -> String {
    format!(
        "gateway = true\n{}[[legacy_server.allow]]\n{allow}\n",
        overlay(name, book)
    )
}

fn topology() -> Topology {
    support::require_root();
    let mut t = Topology::new(
        "oclg",
        &[
            "alice", "carol", "gw1", "gw2", "web1", "web2", "lan1", "lan2",
        ],
    );
    t.certify(&["udp"]);
    t.link("alice", "10.96.1.1/24", "gw1", "10.96.1.2/24");
    t.link("alice", "10.96.2.1/24", "gw2", "10.96.2.2/24");
    t.link("carol", "10.96.3.1/24", "gw1", "10.96.3.2/24");
    // The two intranets: the same addresses on both sides.
    t.link("gw1", "10.0.0.1/24", "web1", "10.0.0.80/24");
    t.link("gw2", "10.0.0.1/24", "web2", "10.0.0.80/24");
    for (web, company) in [("web1", "company1"), ("web2", "company2")] {
        let root = t.dir.join(web);
        std::fs::create_dir_all(&root).expect("web root");
        std::fs::write(root.join("index.html"), format!("{company} intranet\n")).expect("page");
        let root = root.display().to_string();
        t.serve(
            web,
            &[
                "python3",
                "-m",
                "http.server",
                "80",
                "--bind",
                "10.0.0.80",
                "--directory",
                &root,
            ],
        );
        t.serve(
            web,
            &[
                "python3",
                "-c",
                &support::resolver("10.0.0.80", 53, [10, 0, 0, 80]),
            ],
        );
    }
    // gw2's LAN: legacy clients whose resolver and router is gw2.
    for (lan, net) in [("lan1", 50), ("lan2", 51)] {
        t.link(
            "gw2",
            &format!("192.168.{net}.1/24"),
            lan,
            &format!("192.168.{net}.10/24"),
        );
        let gw = format!("192.168.{net}.1");
        t.must(lan, &["ip", "route", "add", "default", "via", &gw]);
        t.set_resolver(lan, &gw);
    }
    let root = t.dir.join("alice-www");
    std::fs::create_dir_all(&root).expect("alice's web root");
    std::fs::write(root.join("index.html"), "alice over the overlay\n").expect("page");
    let root = root.display().to_string();
    t.serve(
        "alice",
        &["python3", "-m", "http.server", "8000", "--directory", &root],
    );
    t.wait_listening("alice", 8000, false);
    let ftp_root = t.dir.join("web1");
    std::fs::write(ftp_root.join("report.txt"), "company1 quarterly report\n").expect("file");
    let ftp_root = ftp_root.display().to_string();
    // Debian's pyftpdlib (installed by .ci/run) lives with Debian's python.
    t.serve(
        "web1",
        &[
            "/usr/bin/python3",
            "-m",
            "pyftpdlib",
            "-i",
            "10.0.0.80",
            "-p",
            "21",
            "-d",
            &ftp_root,
        ],
    );
    t.wait_listening("web1", 21, false);
    for web in ["web1", "web2"] {
        t.wait_listening(web, 80, false);
        t.wait_listening(web, 53, true);
    }
    let intranet_dns = "upstream_dns = [\"10.0.0.80:53\"]\n";
    t.start(
        "gw1",
        &gateway(
            "gw1",
            &[("alice", "10.96.1.1"), ("carol", "10.96.3.1")],
            "clients = [\"alice.udp\"]\ndestinations = [\"*.company1.com\"]",
        ),
        intranet_dns,
    );
    t.start(
        "gw2",
        &(gateway(
            "gw2",
            &[("alice", "10.96.2.1")],
            "clients = [\"*\"]\ndestinations = [\"10.0.0.0/24\"]",
        ) + "[legacy_client]\nlan = [\"192.168.48.0/20\"]\n"),
        intranet_dns,
    );
    let rules = "[[rules]]\npattern = '^(.*)\\.company1\\.com$'\nreplace = '$0.ip_gw1.udp'\n\
                 [[rules]]\npattern = '^(.*)\\.company2\\.com$'\nreplace = '$0.ip_gw2.udp'\n";
    // alice's apps send from an address of her own, which she proposes to far ends.
    let negotiate = "[handles]\ntun_v4 = \"198.18.7.1\"\nnegotiate = true\n";
    t.start(
        "alice",
        &format!(
            "{}{rules}{negotiate}",
            overlay("alice", &[("gw1", "10.96.1.2"), ("gw2", "10.96.2.2")])
        ),
        "",
    );
    t.start("carol", &overlay("carol", &[("gw1", "10.96.3.2")]), "");
    t
}

fn curl(t: &Topology, host: &str, url: &str) -> String {
    let out = t.exec(host, &["curl", "-sS", "-m", "10", url]);
    text(&out)
}

#[test]
fn overlapping_intranets_a_refused_client_and_a_lan_of_legacy_clients() {
    let t = topology();

    // Both servers are 10.0.0.80; each name reaches its own, encrypted up to its gateway.
    for (url, page) in [
        ("http://web.company1.com/", "company1 intranet"),
        ("http://web.company2.com/", "company2 intranet"),
    ] {
        let got = curl(&t, "alice", url);
        assert!(
            got.contains(page),
            "{url}: {got}\ngw1:\n{}\ngw2:\n{}",
            t.log("gw1"),
            t.log("gw2")
        );
    }
    // ICMP too: every path has an egress address of its own, so pings need no ports.
    let ping = t.exec(
        "alice",
        &["ping", "-n", "-c", "3", "-W", "2", "web.company1.com"],
    );
    assert!(ping.status.success(), "{}", text(&ping));

    // FTP through the legacy server gateway, passive (curl's default) and active (`-P -`:
    // the PORT command names alice's address, which the kernel's helper rewrites at gw1).
    // Without address negotiation the active transfer fails.
    for mode in [&[][..], &["-P", "-"][..]] {
        let mut cmd = vec!["curl", "-sS", "-m", "15"];
        cmd.extend_from_slice(mode);
        cmd.push("ftp://web.company1.com/report.txt");
        let out = t.exec("alice", &cmd);
        assert!(
            text(&out).contains("company1 quarterly report"),
            "ftp {mode:?}: {}\ngw1:\n{}",
            text(&out),
            t.log("gw1")
        );
    }
    // gw1 took alice's own address as her path's egress address.
    let status = t.ocala("gw1", &["status"]).expect("status");
    assert!(status.contains("198.18.7.1"), "{status}");

    // The servers saw their gateway, not the overlay: the masquerade did its work.
    let conntrack = t.must("gw1", &["nft", "list", "table", "inet", "ocala_ocala0"]);
    assert!(conntrack.contains("masquerade"), "{conntrack}");

    // carol is not on gw1's list: SERVFAIL, with the gateway's reason.
    let dig = t.exec(
        "carol",
        &["dig", "+tries=1", "+time=8", "web.company1.com.ip_gw1.udp"],
    );
    let out = text(&dig);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(out.contains("carol.udp may not use this gateway"), "{out}");
    let refused = curl(&t, "carol", "http://web.company1.com.ip_gw1.udp/");
    assert!(!refused.contains("intranet"), "{refused}");

    // The gateway's status shows the egress handle: destination and client.
    let status = t.ocala("gw1", &["status"]).expect("status");
    assert!(status.contains("web.company1.com.ip<alice.udp"), "{status}");

    // gw2's LAN clients run no ocala: gw2 answers their DNS with one shared handle address,
    // and each reaches alice over a path of its own.
    let mut answers = Vec::new();
    for lan in ["lan1", "lan2"] {
        let dig = t.must(
            lan,
            &["dig", "+short", "+tries=1", "+time=8", "alice.udp", "A"],
        );
        answers.push(dig.trim().to_string());
        let got = curl(&t, lan, "http://alice.udp:8000/");
        assert!(
            got.contains("alice over the overlay"),
            "{lan}: {got}\ngw2:\n{}\nalice:\n{}",
            t.log("gw2"),
            t.log("alice")
        );
    }
    assert!(answers[0].starts_with("198.18."), "{answers:?}");
    assert_eq!(answers[0], answers[1], "one address serves both clients");
    let status = t.ocala("alice", &["status"]).expect("status");
    for client in ["192.168.50.10.ip_gw2.udp", "192.168.51.10.ip_gw2.udp"] {
        assert!(status.contains(client), "{client}: {status}");
    }
    // Names outside the overlays still resolve for the LAN, through gw2's upstream.
    let dig = t.must(
        "lan1",
        &[
            "dig",
            "+short",
            "+tries=1",
            "+time=8",
            "intranet.example",
            "A",
        ],
    );
    assert_eq!(dig.trim(), "10.0.0.80");
}
