//! End to end over RON, as root, with real programs: alice, bob and carol in a triangle of
//! veth links, each running ocalad as a RON member. While `ping bob.ron` and an `iperf3` TCP
//! stream run from alice, the direct alice–bob link is taken down: RON moves the path through
//! carol, and the pings carry on after a short gap, which the test reports.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;
use support::{text, Topology};

const KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

fn config(name: &str, book: &[(&str, &str)]) -> String {
    let book: Vec<String> = book
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}:4791\""))
        .collect();
    format!(
        "[[overlays]]\nname = \"ron\"\nmodule = \"ron\"\nlocal_name = \"{name}\"\nport = 4791\n\
         address_book = {{ {} }}\n[overlays.ron]\nauth_key = \"{KEY}\"\n",
        book.join(", ")
    )
}

/// The triangle: every pair has its own veth link, and nothing routes between links, so
/// without RON alice reaches bob only over the direct one.
fn topology() -> Topology {
    support::require_root();
    let mut t = Topology::new("ocron", &["alice", "bob", "carol"]);
    t.certify(&["ron"]);
    // carol logs for a collector: one JSON object per line.
    if let Some(h) = t.hosts.iter_mut().find(|h| h.name == "carol") {
        h.daemon_args = vec!["--log-format".into(), "json".into()];
    }
    t.link("alice", "10.95.1.1/24", "bob", "10.95.1.2/24");
    t.link("alice", "10.95.2.1/24", "carol", "10.95.2.2/24");
    t.link("carol", "10.95.3.1/24", "bob", "10.95.3.2/24");
    t.start(
        "alice",
        &config("alice", &[("bob", "10.95.1.2"), ("carol", "10.95.2.2")]),
        "",
    );
    // bob runs without the kernel's offloads: a packet per system call, beside peers that
    // send GSO trains.
    t.start(
        "bob",
        &config("bob", &[("alice", "10.95.1.1"), ("carol", "10.95.3.1")]),
        "offload = false\n",
    );
    t.start(
        "carol",
        &config("carol", &[("alice", "10.95.2.1"), ("bob", "10.95.3.2")]),
        "",
    );
    t.serve("bob", &["iperf3", "-s"]);
    // A few probe rounds, so every member knows every link.
    std::thread::sleep(Duration::from_millis(1500));
    t
}

/// The sequence numbers of the echo replies in ping's output.
fn replies(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn pings_and_iperf3_survive_the_direct_link_going_down() {
    let t = topology();
    let ns = |h: &str| t.host(h).ns.clone();
    // Both run from alice while the link goes down 3 s in.
    let ping = Command::new("ip")
        .args(["netns", "exec", &ns("alice")])
        .args(["ping", "-n", "-i", "0.1", "-c", "100", "-W", "1", "bob.ron"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping starts");
    let iperf = Command::new("ip")
        .args(["netns", "exec", &ns("alice")])
        .args(["iperf3", "-c", "bob.ron", "-t", "8", "-f", "m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iperf3 starts");
    std::thread::sleep(Duration::from_secs(3));
    t.must("alice", &["ip", "link", "set", "v-bob", "down"]);
    let direct = t.exec("alice", &["ping", "-n", "-c", "1", "-W", "1", "10.95.1.2"]);
    assert!(
        !direct.status.success(),
        "the direct link is down: {}",
        text(&direct)
    );
    let ping = ping.wait_with_output().expect("ping ends");
    let iperf = iperf.wait_with_output().expect("iperf3 ends");
    let out = text(&ping);
    let seqs = replies(&out);
    // The longest run of missing replies, as time at the 100 ms interval.
    let gap = seqs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let gap_ms = u64::from(gap.saturating_sub(1)) * 100;
    eprintln!(
        "ron failover: {} of 100 pings answered, longest gap {gap_ms} ms ({} lost in a row)",
        seqs.len(),
        gap.saturating_sub(1)
    );
    let logs = || {
        format!(
            "alice:\n{}\ncarol:\n{}\nbob:\n{}",
            t.log("alice"),
            t.log("carol"),
            t.log("bob")
        )
    };
    assert!(seqs.len() >= 70, "{out}\n{}", logs());
    assert!(
        seqs.iter().any(|&s| s > 60),
        "pings after the link went down were answered: {out}"
    );
    assert!(gap_ms <= 2000, "gap {gap_ms} ms\n{out}\n{}", logs());
    let alice = t.log("alice");
    assert!(alice.contains("bob (default): via carol"), "{}", logs());
    assert!(
        !alice.contains('\x1b'),
        "a log file gets no colour codes: {alice}"
    );
    let carol = t.log("carol");
    let lines: Vec<&str> = carol.lines().collect();
    assert!(
        lines.len() >= 2
            && lines
                .iter()
                .all(|l| serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["level"].is_string() && v["fields"]["message"].is_string())),
        "carol's log is JSON lines: {carol}"
    );
    let iperf_out = text(&iperf);
    assert!(iperf.status.success(), "{iperf_out}\n{}", logs());
    let bob: serde_json::Value =
        serde_json::from_str(&t.ocala("bob", &["status", "--json"]).expect("status"))
            .expect("JSON");
    let d = &bob["datapath"];
    assert_eq!(
        (&d["tun_offload"], &d["udp_gro"]),
        (&false.into(), &false.into()),
        "{d:#}"
    );
    assert_eq!(d["udp_gso_segments"], 1, "{d:#}");
    assert_eq!(d["tun_joined"], 0, "{d:#}");
    assert_eq!(d["tun_reads"], d["tun_packets_in"], "{d:#}");
    eprintln!(
        "iperf3 over ron across the failover: {}",
        iperf_out
            .lines()
            .find(|l| l.contains("receiver"))
            .unwrap_or("no summary")
    );
}
