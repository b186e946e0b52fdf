//! A soak, not run by default: `cargo test --release -p ocala-mio --test soak -- --ignored
//! --nocapture` (as root; `OCALA_SOAK_SECS` sets the length, 600 by default). alice and bob
//! run `ocalad` in namespaces. For the whole time alice's apps keep opening paths — a
//! rotating set of names, each a plain path of its own, pinged once and left to idle out
//! after 4 s — while a ping runs over the encrypted `bob.udp`, rekeyed every 3 s, and the
//! link between them goes down for 2 s every 20 s. Then traffic stops, and once the idle
//! timeout has passed both daemons must hold no path and no handle, and have as many file
//! descriptors open as after they started.

mod support;

use std::time::{Duration, Instant};
use support::Topology;

const NAMES: usize = 6;

fn config(name: &str, book: &[(String, String)]) -> String {
    let entries: Vec<String> = book
        .iter()
        .map(|(n, a)| format!("{n} = \"{a}:4789\""))
        .collect();
    format!(
        "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"{name}\"\n\
         keepalive_secs = 2\naddress_book = {{ {} }}\n\
         [handles]\nidle_timeout_secs = 4\n\
         [security]\naccept_plain = true\nrekey_after_secs = 3\n",
        entries.join(", ")
    )
}

/// Open file descriptors of `host`'s ocalad.
fn fds(t: &Topology, host: &str) -> usize {
    let pid = t.daemon_pid(host).expect("running");
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn count(t: &Topology, host: &str, key: &str) -> usize {
    let s = t.ocala(host, &["status", "--json"]).expect("status");
    let v: serde_json::Value = serde_json::from_str(&s).expect("JSON");
    v[key].as_array().map_or(0, Vec::len)
}

#[test]
#[ignore = "a 10-minute soak; run it on purpose"]
fn paths_open_close_rekey_and_flap_for_minutes_without_leaks() {
    support::require_root();
    let secs: u64 = std::env::var("OCALA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut t = Topology::new("ocs", &["alice", "bob"]);
    t.log_filter = "info";
    t.certify(&["udp"]);
    t.link("alice", "10.97.0.1/24", "bob", "10.97.0.2/24");
    let mut book = vec![("bob".to_string(), "10.97.0.2".to_string())];
    book.extend((0..NAMES).map(|i| (format!("n{i}"), "10.97.0.2".to_string())));
    t.start("alice", &config("alice", &book), "");
    t.start(
        "bob",
        &config("bob", &[("alice".into(), "10.97.0.1".into())]),
        "",
    );
    let base = (fds(&t, "alice"), fds(&t, "bob"));

    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.hosts[0].ns,
            "ping",
            "-q",
            "-i",
            "0.2",
            "bob.udp",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping starts");
    let start = Instant::now();
    let (mut opened, mut flaps, mut round) = (0u64, 0u64, 0usize);
    while start.elapsed() < Duration::from_secs(secs) {
        let name = format!("n{}.udp_plain.oci", round % NAMES);
        round += 1;
        let out = t.exec("alice", &["ping", "-c", "1", "-W", "2", &name]);
        opened += u64::from(out.status.success());
        if round % 40 == 0 {
            // About every 20 s (0.5 s a round): the link goes down for 2 s.
            t.must("alice", &["ip", "link", "set", "v-bob", "down"]);
            std::thread::sleep(Duration::from_secs(2));
            t.must("alice", &["ip", "link", "set", "v-bob", "up"]);
            flaps += 1;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &ping.id().to_string()])
        .status();
    let summary = ping.wait_with_output().expect("ping ends");
    let pings = String::from_utf8_lossy(&summary.stdout).to_string();
    let rekeys = t.log("alice").matches("path to bob.udp up").count();

    // Idle timeout (4 s) plus the close reaching both ends.
    std::thread::sleep(Duration::from_secs(12));
    let left = [
        ("alice paths", count(&t, "alice", "paths")),
        ("alice handles", count(&t, "alice", "handles")),
        ("bob paths", count(&t, "bob", "paths")),
        ("bob handles", count(&t, "bob", "handles")),
    ];
    let after = (fds(&t, "alice"), fds(&t, "bob"));
    eprintln!(
        "soak {secs} s: {opened} short paths answered, {rekeys} paths up to bob.udp (rekeys), \
         {flaps} link flaps; ping: {}; left over {left:?}; fds before {base:?} after {after:?}",
        pings
            .lines()
            .find(|l| l.contains("transmitted"))
            .unwrap_or("-")
    );
    assert!(left.iter().all(|(_, n)| *n == 0), "{left:?}");
    assert_eq!(after, base, "file descriptors leaked");
    assert!(opened > 0 && rekeys > 1, "the soak did something");
}
