//! End to end on real TUN devices, as root, with real programs: hosts alice, gw and bob in
//! network namespaces joined by veth links, each running `ocalad` with a certificate from a
//! CA made by `ocala ca`, so paths are authenticated and encrypted (the default). gw's split
//! DNS is checked against a real systemd-resolved of its own (`support/with-resolved.sh`).
//! Needs root, iproute2, dig, ping, curl, python3, iperf3, dbus-daemon and Debian's
//! systemd-resolved unpacked under /opt/ocala-resolved (`.ci/run` provides them).

mod support;

use std::time::Duration;
use support::{text, Topology};

const OVERLAY: &str = r#"
[[overlays]]
name = "udp"
module = "udp"
local_name = "NAME"
keepalive_secs = 5
"#;

fn config(name: &str, book: &[(&str, &str)], gateway: bool) -> String {
    let mut c = String::new();
    if gateway {
        c.push_str("gateway = true\n");
    }
    c.push_str(&OVERLAY.replace("NAME", name));
    let entries: Vec<String> = book
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}:4789\""))
        .collect();
    c.push_str(&format!("address_book = {{ {} }}\n", entries.join(", ")));
    c
}

/// curl's HTTP status code for `url`, fetched from alice (empty when curl failed).
fn curl(t: &Topology, url: &str, timeout_secs: u32) -> String {
    let timeout = timeout_secs.to_string();
    let out = t.exec(
        "alice",
        &[
            "curl",
            "-sS",
            "-m",
            &timeout,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    text(&out)
}

/// alice–bob direct; alice–gw and gw–bob for paths through the gateway.
/// `resolvectl` against gw's own systemd-resolved (`Topology::with_resolved`).
fn resolvectl(t: &Topology, args: &[&str]) -> String {
    let bus = format!(
        "DBUS_SYSTEM_BUS_ADDRESS=unix:path={}/gw-resolved/bus",
        t.dir.display()
    );
    let root = std::env::var("OCALA_RESOLVED_ROOT").unwrap_or("/opt/ocala-resolved".into());
    let bin = format!("{root}/usr/bin/resolvectl");
    let mut cmd = vec!["env", bus.as_str(), bin.as_str()];
    cmd.extend_from_slice(args);
    text(&t.exec("gw", &cmd))
}

/// The first and the last CPU the tests may run on (the same one on one core).
fn first_and_last_cpu() -> (usize, usize) {
    let cpus = ocala_mio::affinity::allowed().expect("the test's CPUs");
    (cpus[0], cpus[cpus.len() - 1])
}

fn topology() -> Topology {
    support::require_root();
    let mut t = Topology::new("ocx", &["alice", "gw", "bob"]);
    t.certify(&["udp"]);
    t.link("alice", "10.91.0.1/24", "bob", "10.91.0.2/24");
    t.link("alice", "10.91.1.1/24", "gw", "10.91.1.2/24");
    t.link("gw", "10.91.2.2/24", "bob", "10.91.2.3/24");
    // alice's real resolver, for names that are not overlay names: a small DNS server on bob.
    t.start(
        "alice",
        &config("alice", &[("bob", "10.91.0.2"), ("gw", "10.91.1.2")], false),
        "upstream_dns = [\"10.91.0.2:5353\"]\nmetrics_listen = \"127.0.0.1:9465\"\nthreads = 1\n",
    );
    // gw uses systemd-resolved split DNS: a real resolved of its own, on a private D-Bus.
    t.with_resolved("gw");
    t.start(
        "gw",
        &config("gw", &[("alice", "10.91.1.1"), ("bob", "10.91.2.3")], true),
        "resolved_split_dns = true\nsplit_dns_domains = [\"corp\"]\nthreads = 2\n",
    );
    let link = resolvectl(&t, &["status", "ocala0"]);
    assert!(
        link.contains("DNS Servers: 198.18.0.2"),
        "{link}\n{}",
        t.log("gw")
    );
    assert!(link.contains("DNS Domain: ~udp ~corp"), "{link}");
    let bob = config("bob", &[("alice", "10.91.0.1"), ("gw", "10.91.2.2")], false);
    // gw and bob write their large batches on a second thread; alice on the engine's. bob
    // pins his engine thread to the last CPU and his writer to the first.
    let (first, last) = first_and_last_cpu();
    t.start(
        "bob",
        &format!("{bob}\n[security]\naccept_plain = true\n"),
        &format!("threads = 2\ncpus = [{last}, {first}]\n"),
    );
    t.serve(
        "bob",
        &["python3", "-m", "http.server", "8000", "--bind", "::"],
    );
    t.serve("bob", &["iperf3", "-s"]);
    // Answers each ten datagrams with what it got (the USO check).
    t.serve("bob", &["python3", "-c", TRAIN_CHECK]);
    t.serve(
        "bob",
        &[
            "python3",
            "-c",
            &support::resolver("10.91.0.2", 5353, [192, 0, 2, 7]),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    t
}

/// A UDP server on port 7000 that takes datagrams ten at a time and tells the sender
/// whether they were ten of 1000 bytes, the `i`th all `i`s.
const TRAIN_CHECK: &str = "import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(('::', 7000))
while True:
    got = []
    while len(got) < 10:
        d, peer = s.recvfrom(65536)
        got.append(d)
    ok = all(d == bytes([i]) * 1000 for i, d in enumerate(got))
    s.sendto(b'10 datagrams of 1000 bytes, in order' if ok else repr([len(d) for d in got]).encode(), peer)
";

/// Runs tshark on `ifaces` of `host` while `during` runs: one line per packet that passes
/// `filter`, the interface and the ECN field.
fn capture(
    t: &Topology,
    host: &str,
    ifaces: &[&str],
    filter: &str,
    during: impl FnOnce(),
) -> String {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // The filter before the first -i applies to every interface.
    let ns = t.host(host).ns.as_str();
    let mut args = vec!["netns", "exec", ns, "tshark", "-l", "-n", "-f", filter];
    for i in ifaces {
        args.extend(["-i", i]);
    }
    args.extend(["-a", "duration:20", "-T", "fields"]);
    args.extend(["-e", "frame.interface_name", "-e", "ip.dsfield.ecn"]);
    let mut tshark = Command::new("ip")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tshark starts");
    // It says so on stderr once it captures; the pipe stays open until it ends.
    let mut stderr = BufReader::new(tshark.stderr.take().expect("piped"));
    let mut said = String::new();
    while !said.contains("Capturing on") {
        match stderr.read_line(&mut said) {
            Ok(0) | Err(_) => panic!("tshark did not start: {said}"),
            Ok(_) => {}
        }
    }
    during();
    // What it saw is written line by line (-l); stop it.
    std::thread::sleep(Duration::from_millis(300));
    support::run(&["kill", "-INT", &tshark.id().to_string()]);
    let out = tshark.wait_with_output().expect("tshark ends");
    drop(stderr);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `host`'s status says of its path called `name` (null when it has none).
fn path_status(t: &Topology, host: &str, name: &str) -> serde_json::Value {
    let paths = status_json(t, host)["paths"].clone();
    let path = paths
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .cloned();
    path.unwrap_or_default()
}

fn status_json(t: &Topology, host: &str) -> serde_json::Value {
    let s = t
        .ocala(host, &["status", "--json"])
        .expect("status answers");
    serde_json::from_str(&s).expect("status is JSON")
}

/// Prometheus text format: every sample line is `name{labels} value` with a number for a
/// value, and its family was declared by a `# TYPE` line before it.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split(' ');
            let (name, kind) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = key.split('{').next().unwrap_or(key);
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE line before it");
        samples.insert(key.to_string(), value);
    }
    samples
}

fn drops(t: &Topology, host: &str, reason: &str) -> u64 {
    status_json(t, host)["drops"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|d| d["reason"].as_str().is_some_and(|r| r.contains(reason)))
                .filter_map(|d| d["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn real_programs_over_ocala() {
    let mut t = topology();

    // On gw, systemd-resolved sends the overlay's names (and only those) to ocalad.
    let answer = resolvectl(&t, &["query", "bob.udp"]);
    assert!(
        answer.starts_with("bob.udp: ")
            && answer.contains(" 198.18.0.")
            && answer.contains("-- link: ocala0")
            && answer.contains("acquired via protocol DNS"),
        "{answer}"
    );

    // dig asks the sentinel directly and gets a handle from the pool, TTL 0.
    let dig = t.must(
        "alice",
        &["dig", "+tries=1", "+time=5", "@198.18.0.2", "bob.udp", "A"],
    );
    assert!(dig.contains("status: NOERROR"), "{dig}");
    assert!(dig.contains("bob.udp.\t\t0\tIN\tA\t198.18."), "{dig}");
    let handle = t
        .must("alice", &["dig", "+short", "@198.18.0.2", "bob.udp", "A"])
        .trim()
        .to_string();
    assert!(handle.starts_with("198.18."), "{handle}");
    let nx = t.must(
        "alice",
        &["dig", "+tries=1", "@198.18.0.2", "bob.udp_fast.oci"],
    );
    assert!(
        nx.contains("status: NXDOMAIN") && nx.contains("unknown option"),
        "{nx}"
    );

    // Other names go to the real resolver, and its answer comes back to the app.
    let upstream = t.must(
        "alice",
        &[
            "dig",
            "+short",
            "+tries=1",
            "@198.18.0.2",
            "www.example.test",
            "A",
        ],
    );
    assert_eq!(upstream.trim(), "192.0.2.7");

    // ping resolves the name through the system resolver (resolv.conf points at ocalad).
    let ping = t.exec(
        "alice",
        &["ping", "-4", "-c", "5", "-i", "0.2", "-W", "3", "bob.udp"],
    );
    assert!(text(&ping).contains("5 received"), "{}", text(&ping));

    // ECN crosses the tunnel (RFC 6040): pings sent ECT(0) leave alice in datagrams marked
    // ECT(0) and reach bob's TUN still ECT(0); plain ones stay Not-ECT on both. (The first
    // ping may pass before tshark captures on both interfaces.)
    for (tos, ecn) in [("0x02", "2"), ("0x00", "0")] {
        let seen = capture(
            &t,
            "bob",
            &["v-alice", "ocala0"],
            "(udp and dst host 10.91.0.2 and dst port 4789 and greater 1000) or icmp[icmptype] == icmp-echo",
            || {
                let ping = t.exec(
                    "alice",
                    &[
                        "ping", "-4", "-Q", tos, "-s", "1000", "-c", "4", "-i", "0.2", "bob.udp",
                    ],
                );
                assert!(text(&ping).contains("4 received"), "{}", text(&ping));
            },
        );
        let lines: Vec<&str> = seen.lines().collect();
        assert!(
            lines.iter().filter(|l| l.starts_with("v-alice\t")).count() >= 3
                && lines.iter().filter(|l| l.starts_with("ocala0\t")).count() >= 3
                && lines.iter().all(|l| l.ends_with(&format!("\t{ecn}"))),
            "TOS {tos}:\n{seen}"
        );
    }

    // curl against a real HTTP server on bob, over the encrypted path.
    let code = curl(&t, "http://bob.udp:8000/", 10);
    assert_eq!(code, "200");
    let state = t.ocala("alice", &["resolve", "bob.udp"]).expect("resolve");
    assert!(state.contains("path up"), "{state}");

    // A plain path when the name asks for one (bob accepts them; gw, by default, does not).
    let in_place = |n| status_json(&t, n)["datapath"]["tun_in_place"].as_u64();
    let before = in_place("alice").expect("counted");
    assert_eq!(curl(&t, "http://bob.udp_plain.oci:8000/", 10), "200");
    // bob's answer reached curl from where it arrived: alice's daemon wrote it to her TUN
    // from the buffers it received it in.
    assert!(in_place("alice") > Some(before), "{before}");
    // Its TCP went in the partial form, checksums left to bob's kernel, where both ends'
    // TUNs have offloads.
    let offload = |n| status_json(&t, n)["datapath"]["tun_offload"] == true;
    let plain_path = path_status(&t, "alice", "bob.udp_plain.oci");
    assert_eq!(plain_path["protection"], "plain", "{plain_path:#}");
    assert_eq!(
        plain_path["partial_checksums"],
        offload("alice") && offload("bob"),
        "{plain_path:#}"
    );
    let refused = t.must(
        "alice",
        &["dig", "+tries=1", "@198.18.0.2", "gw.udp_plain.oci"],
    );
    assert!(
        refused.contains("status: SERVFAIL")
            && refused.contains("accepts only authenticated paths"),
        "{refused}"
    );

    // `ocala trace`: hop by hop through the gateway, each hop timed, then a refusal.
    let trace = t
        .ocala("alice", &["trace", "bob.udp_gw.udp"])
        .expect("trace answers");
    let lines: Vec<&str> = trace.lines().collect();
    assert!(
        lines[0].starts_with("trace bob.udp_gw.udp: 2 hop(s)"),
        "{trace}"
    );
    assert!(
        lines[1].contains("gw.udp") && lines[1].contains(" up "),
        "{trace}"
    );
    assert!(
        lines[3].contains("bob.udp_gw.udp") && lines[3].contains("up"),
        "{trace}"
    );
    assert!(
        trace.contains("protection encrypt, tunnel udp: gw at 10.91.1.2:4789"),
        "{trace}"
    );
    let refused = t
        .ocala("alice", &["trace", "nobody.udp_gw.udp"])
        .expect("trace answers");
    assert!(
        refused.contains("gw.udp") && refused.contains("up already"),
        "{refused}"
    );
    assert!(refused.contains("refused: "), "{refused}");

    // iperf3 through the gateway: over udp to gw, which relays to bob.
    let iperf = t.exec(
        "alice",
        &["iperf3", "-c", "bob.udp_gw.udp", "-t", "2", "-f", "m"],
    );
    let out = text(&iperf);
    assert!(
        iperf.status.success() && out.contains("receiver"),
        "{out}\n{}",
        t.log("gw")
    );
    assert!(
        status_json(&t, "gw")["counters"]["relayed"]
            .as_u64()
            .unwrap_or(0)
            > 100,
        "gw relayed the stream"
    );
    // The stream went through the kernel's offloads: alice's TUN handed over TCP
    // super-packets that she cut and sent as GSO trains; bob received trains and wrote
    // joined segments to his TUN.
    let (a, b) = (
        status_json(&t, "alice")["datapath"].clone(),
        status_json(&t, "bob")["datapath"].clone(),
    );
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    assert_eq!(a["tun_offload"], true, "{a:#}");
    // Her kernel builds super-packets of at most what one GSO send carries: 45 segments at
    // the default MTU of 1400.
    assert_eq!(a["tun_segments"], 45, "{a:#}");
    let link = t.must("alice", &["ip", "-d", "link", "show", "dev", "ocala0"]);
    assert!(link.contains("gso_max_segs 45 "), "{link}");
    assert!(n(&a, "tun_packets_in") > n(&a, "tun_reads"), "{a:#}");
    assert!(n(&a, "udp_datagrams_out") > n(&a, "udp_sends"), "{a:#}");
    assert!(n(&b, "udp_datagrams_in") > n(&b, "udp_receives"), "{b:#}");
    assert!(n(&b, "tun_joined") > 100, "{b:#}");
    assert_eq!(n(&b, "bad_tun_reads") + n(&a, "bad_tun_reads"), 0);
    // bob's joined segments and gw's relayed trains left from their writer threads.
    let g = status_json(&t, "gw")["datapath"].clone();
    assert_eq!(
        (a["threads"].as_u64(), b["threads"].as_u64()),
        (Some(1), Some(2))
    );
    assert!(n(&b, "batches_handed_off") > 10, "{b:#}");
    assert!(n(&g, "batches_handed_off") > 10, "{g:#}");
    assert_eq!(n(&a, "batches_handed_off"), 0, "{a:#}");
    // bob's threads ran where `daemon.cpus` put them, and alice's where the scheduler chose.
    let (first, last) = first_and_last_cpu();
    assert_eq!(b["cpus"], serde_json::json!([last, first]), "{b:#}");
    assert_eq!(a["cpus"], serde_json::json!([]), "{a:#}");
    let pid = t.daemon_pid("bob").expect("bob's daemon");
    let allowed = |tid: &str| {
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"));
        line.map(|l| l["Cpus_allowed_list:".len()..].trim().to_string())
    };
    let writer = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("bob's threads")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim() == "ocalad-writer")
        })
        .expect("bob's writer thread");
    assert_eq!(allowed(&pid.to_string()), Some(last.to_string()));
    assert_eq!(allowed(&writer), Some(first.to_string()));

    // The same over IPv6 (TSO6, and IPv6 segments joined at bob), on the direct path.
    let iperf6 = t.exec(
        "alice",
        &["iperf3", "-6", "-c", "bob.udp", "-t", "1", "-f", "m"],
    );
    let out6 = text(&iperf6);
    assert!(
        iperf6.status.success() && out6.contains("receiver"),
        "{out6}"
    );
    let (a6, b6) = (
        status_json(&t, "alice")["datapath"].clone(),
        status_json(&t, "bob")["datapath"].clone(),
    );
    let grew =
        |after: &serde_json::Value, before: &serde_json::Value, k: &str| n(after, k) - n(before, k);
    assert!(
        grew(&a6, &a, "tun_packets_in") > grew(&a6, &a, "tun_reads"),
        "alice cut IPv6 super-packets: {a6:#}"
    );
    assert!(
        grew(&b6, &b, "tun_joined") > 100,
        "bob joined IPv6 segments: {b6:#}"
    );
    assert_eq!(n(&b6, "bad_tun_reads") + n(&a6, "bad_tun_reads"), 0);

    // Single packets that wait in the TUN leave together: twenty UDP datagrams that an app
    // sends while alice's daemon is stopped wait in her TUN, are read one by one once it
    // runs again, and go out in one GSO train (sent one by one, they took twenty sends).
    let before = status_json(&t, "alice")["datapath"].clone();
    let pid = t.daemon_pid("alice").expect("alice's daemon").to_string();
    support::must(&["kill", "-STOP", &pid]);
    let burst = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(20): s.sendto(b'x' * 200, ('{handle}', 9))\n"
    );
    let sent = t.exec("alice", &["python3", "-c", &burst]);
    support::must(&["kill", "-CONT", &pid]);
    assert!(sent.status.success(), "{}", text(&sent));
    let after = (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(20));
            status_json(&t, "alice")["datapath"].clone()
        })
        .find(|a| grew(a, &before, "udp_datagrams_out") >= 20)
        .expect("the twenty datagrams left");
    let (reads, sends, out) = (
        grew(&after, &before, "tun_reads"),
        grew(&after, &before, "udp_sends"),
        grew(&after, &before, "udp_datagrams_out"),
    );
    assert!(reads >= 20, "{before:#}\n{after:#}");
    assert!(
        sends <= 4,
        "{sends} sends for {out} datagrams: {before:#}\n{after:#}"
    );

    // UDP trains both ways (USO): an app's ten datagrams sent in one `UDP_SEGMENT` send come
    // out of alice's TUN in one read, and reach bob's app through one TUN write, each
    // datagram whole and in order.
    assert_eq!(after["tun_uso"], true, "this kernel takes USO: {after:#}");
    // IPv4 to bob's handle, then IPv6 to his name (its AAAA handle).
    for (family, to) in [("AF_INET", handle.as_str()), ("AF_INET6", "bob.udp")] {
        let (a0, b0) = (
            status_json(&t, "alice")["datapath"].clone(),
            status_json(&t, "bob")["datapath"].clone(),
        );
        let train = format!(
            "import socket\ns = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.IPPROTO_UDP, 103, 1000)\ns.settimeout(5)\n\
             s.sendto(b''.join(bytes([i]) * 1000 for i in range(10)), ('{to}', 7000))\n\
             print(s.recv(100).decode())\n"
        );
        let echo = text(&t.exec("alice", &["python3", "-c", &train]));
        assert_eq!(
            echo.trim(),
            "10 datagrams of 1000 bytes, in order",
            "{family}"
        );
        let (a1, b1) = (
            status_json(&t, "alice")["datapath"].clone(),
            status_json(&t, "bob")["datapath"].clone(),
        );
        assert!(
            grew(&a1, &a0, "tun_packets_in") - grew(&a1, &a0, "tun_reads") >= 9,
            "{family}: the train came in one read: {a0:#}\n{a1:#}"
        );
        assert!(
            grew(&b1, &b0, "tun_joined") >= 10,
            "{family}: bob wrote the train joined: {b0:#}\n{b1:#}"
        );
    }

    // Prometheus scrapes alice: the text format parses, and it carries the same facts.
    let scrape = text(&t.exec("alice", &["curl", "-sf", "http://127.0.0.1:9465/metrics"]));
    let m = parse_metrics(&scrape);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k}\n{scrape}"))
    };
    assert!(get("ocala_paths{state=\"up\",protection=\"encrypt\"}") >= 1.0);
    assert!(get("ocala_overlay_bytes_total{overlay=\"udp\",direction=\"out\"}") > 1e6);
    assert!(get("ocala_setup_latency_seconds_count") >= 1.0);
    assert_eq!(
        get("ocala_setup_latency_seconds_bucket{le=\"+Inf\"}"),
        get("ocala_setup_latency_seconds_count")
    );
    assert_eq!(get("ocala_offload{kind=\"tun\"}"), 1.0);
    assert_eq!(get("ocala_tun_segments"), 45.0);
    assert_eq!(get("ocala_data_threads"), 1.0);
    assert!(get("ocala_handles") >= 2.0);
    let missing = t.exec(
        "alice",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9465/",
        ],
    );
    assert_eq!(text(&missing), "404");

    let gw_status = t.ocala("gw", &["status"]).expect("table");
    assert!(gw_status.contains("RELAYED PATHS  1"), "{gw_status}");
    assert!(
        gw_status.contains("relay (upstream)") && gw_status.contains("relay (downstream)"),
        "{gw_status}"
    );
    let relayed_path = path_status(&t, "alice", "bob.udp_gw.udp");
    assert_eq!(relayed_path["protection"], "encrypt", "{relayed_path:#}");
    assert_eq!(relayed_path["role"], "initiator");
    // Both ends run on this CPU: AES-256-GCM where it has AES, carry-less multiplication
    // and AVX (as the kernel lists them), ChaCha20-Poly1305 otherwise.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let aes = ["aes", "pclmulqdq", "avx"]
        .iter()
        .all(|f| flags.contains(f));
    let cipher = if aes {
        "aes-256-gcm"
    } else {
        "chacha20-poly1305"
    };
    assert_eq!(relayed_path["cipher"], cipher, "{relayed_path:#}");
    // bob's TUN takes partial checksums where it has offloads, and alice hears so when she
    // offers handshake parameters (AES-256-GCM, or partial checksums of her own).
    assert_eq!(
        relayed_path["partial_checksums"],
        offload("bob") && (offload("alice") || aes),
        "{relayed_path:#}"
    );

    // Garbage at ocalad's UDP port and malformed DNS queries: counted, and service goes on.
    let spray = r#"
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    s.sendto(os.urandom(i % 90), ("10.91.0.2", 4789))
    s.sendto(bytes([0x11]) + os.urandom(4 + i % 40), ("10.91.0.2", 4789))
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(50):
    d.sendto(os.urandom(i), ("198.18.0.2", 53))
# Crafted ones: a name that points at itself (a compression loop), no question, fifty
# questions, a header cut short, an OPT record of junk, and a 64 KiB query.
hdr = lambda qd, ar=0: bytes([0x12, 0x34, 1, 0, 0, qd, 0, 0, 0, 0, 0, ar])
q = b"\x03bob\x03udp\x00\x00\x01\x00\x01"
for m in [hdr(1) + b"\xc0\x0c\x00\x01\x00\x01", hdr(0), hdr(50) + q * 50, hdr(1)[:7],
          hdr(1, 1) + q + b"\x00\x00\x29" + os.urandom(30), hdr(1) + q + os.urandom(65000)]:
    d.sendto(m, ("198.18.0.2", 53))
"#;
    t.must("alice", &["python3", "-c", spray]);
    t.must(
        "bob",
        &["python3", "-c", &spray.replace("10.91.0.2", "10.91.0.1")],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        drops(&t, "bob", "malformed datagram") > 0,
        "{}",
        t.ocala("bob", &["status"]).unwrap_or_default()
    );
    assert!(drops(&t, "bob", "unknown label") > 0);
    assert!(
        drops(&t, "alice", "unreadable DNS message") >= 12,
        "{}",
        t.ocala("alice", &["status"]).unwrap_or_default()
    );
    let code = curl(&t, "http://bob.udp:8000/", 10);
    assert_eq!(
        code,
        "200",
        "still serving after the spray\n{}\n{}",
        t.log("alice"),
        t.log("bob")
    );
    let dig = t.must(
        "alice",
        &["dig", "+short", "+tries=1", "+time=5", "bob.udp", "A"],
    );
    assert!(
        dig.trim().starts_with("198.18."),
        "dig after the spray: {dig}"
    );

    // Local control clients that connect and say nothing (or half a line) stall nothing:
    // pings go on, `ocala status` is answered beside them, and the daemon closes them once
    // their time is up.
    let silent: Vec<std::os::unix::net::UnixStream> = (0..4)
        .map(|i| {
            let mut c = std::os::unix::net::UnixStream::connect(&t.host("alice").socket)
                .expect("control socket");
            if i % 2 == 1 {
                std::io::Write::write_all(&mut c, b"stat").expect("half a request");
            }
            c
        })
        .collect();
    let started = std::time::Instant::now();
    // A daemon that waited on each silent client in turn would answer after seconds.
    let status = t.ocala("alice", &["status"]).expect("status answered");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "status took {:?} beside silent clients",
        started.elapsed()
    );
    assert!(
        status.contains("PATHS") && status.contains("bob.udp"),
        "{status}"
    );
    let ping = t.exec(
        "alice",
        &["ping", "-4", "-c", "5", "-i", "0.2", "-W", "1", "bob.udp"],
    );
    assert!(text(&ping).contains("5 received"), "{}", text(&ping));
    for mut c in silent {
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut rest = Vec::new();
        let read = std::io::Read::read_to_end(&mut c, &mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "closed without an answer: {read:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed by the daemon's timeout, not ours: {:?}",
        started.elapsed()
    );

    // ocala resolve explains a name.
    let explained = t
        .ocala("alice", &["resolve", "bob.udp_gw.udp"])
        .expect("resolve");
    assert!(
        explained.contains("the gateway then sets up: bob.udp"),
        "{explained}"
    );

    // bob's ocalad restarts mid-session, over a checkpoint torn by a crash: it says so and
    // starts anyway; the next curl works, and alice's handle is the same.
    t.stop("bob");
    let checkpoint = t.dir.join("bob.state.json");
    let whole = std::fs::read(&checkpoint).expect("bob checkpointed");
    std::fs::write(&checkpoint, &whole[..whole.len() / 2]).expect("torn checkpoint");
    t.launch("bob");
    let code = curl(&t, "http://bob.udp:8000/", 15);
    assert_eq!(code, "200", "{}", t.log("alice"));
    let log = t.log("bob");
    assert!(log.contains("ignoring the handle checkpoint"), "{log}");
    let again = t
        .must("alice", &["dig", "+short", "@198.18.0.2", "bob.udp", "A"])
        .trim()
        .to_string();
    assert_eq!(again, handle);

    // alice's ocalad restarts too: its checkpoint keeps bob's handle, so apps holding the
    // address are not stranded.
    t.stop("alice");
    t.launch("alice");
    let code = curl(&t, &format!("http://{handle}:8000/"), 15);
    assert_eq!(code, "200", "{}", t.log("alice"));

    // kill -9 alice's ocalad in the middle of a download and start it again at once: the
    // app keeps its address, and the same TCP connection completes.
    let www = t.dir.join("bob-www");
    std::fs::create_dir_all(&www).expect("bob's download folder");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(www.join("big.bin"), &big).expect("big file");
    let www = www.display().to_string();
    t.serve(
        "bob",
        &[
            "python3",
            "-m",
            "http.server",
            "8001",
            "--bind",
            "::",
            "--directory",
            &www,
        ],
    );
    t.wait_listening("bob", 8001, false);
    let got = t.dir.join("big.got");
    let download = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.host("alice").ns,
            "curl",
            "-sS",
            "-m",
            "40",
        ])
        .args(["--limit-rate", "750k", "-w", "%{http_code}", "-o"])
        .arg(&got)
        .arg(format!("http://{handle}:8001/big.bin"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl starts");
    std::thread::sleep(Duration::from_millis(1500));
    t.kill("alice");
    t.launch("alice");
    let out = download.wait_with_output().expect("curl ran");
    assert_eq!(text(&out), "200", "{}", t.log("alice"));
    assert!(
        std::fs::read(&got).is_ok_and(|g| g == big),
        "the download is whole and the same"
    );

    // A clean stop removes the TUN device.
    t.stop("gw");
    let link = t.exec("gw", &["ip", "link", "show", "ocala0"]);
    assert!(!link.status.success(), "TUN still there after SIGTERM");
}
