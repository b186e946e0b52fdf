//! Floods with bounded memory, as root: alice and bob in namespaces, both running `ocalad`
//! with tight table limits. A million forged datagrams hit bob's overlay port and a hundred
//! thousand distinct names hit alice's resolver while alice pings bob. Each daemon's peak
//! resident memory stays under a bound derived from the limits, and both serve again at once
//! when the floods end. How many pings were answered during the floods is printed, not
//! asserted: these are debug builds sharing two cores with the flooders, and a TUN queue
//! full of DNS queries drops pings with them (the figures are in docs/ROBUSTNESS.md).

mod support;

use support::{text, Topology};

/// Table limits both daemons run with, and what the memory bound is derived from.
const MAX_HANDLES: u64 = 4096;
const MAX_PATHS: u64 = 4096;
const MAX_HALF_OPEN: u64 = 256;
const PENDING_QUERIES: u64 = 256;
const UPSTREAM_IN_FLIGHT: u64 = 128;

fn config(name: &str, peer: (&str, &str)) -> String {
    format!(
        "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"{name}\"\n\
         address_book = {{ {} = \"{}:4789\" }}\n\
         [limits]\nmax_handles = {MAX_HANDLES}\nmax_paths = {MAX_PATHS}\n\
         max_half_open = {MAX_HALF_OPEN}\npending_queries = {PENDING_QUERIES}\n\
         upstream_in_flight = {UPSTREAM_IN_FLIGHT}\n",
        peer.0, peer.1
    )
}

/// A field of `/proc/PID/status` in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// The bound on a daemon's peak resident memory: what it holds idle, plus every table
/// full at a generous 2 KiB an entry (a handle or path with its name strings and indexes
/// measures well under 1 KiB), plus every pending query and upstream query at 1 KiB, plus
/// 8 MiB for the daemon's own buffers and the allocator's slack.
fn bound_kb(idle_kb: u64) -> u64 {
    idle_kb
        + (MAX_HANDLES + MAX_PATHS + MAX_HALF_OPEN) * 2
        + PENDING_QUERIES
        + UPSTREAM_IN_FLIGHT
        + 8 * 1024
}

/// Forged overlay datagrams: random bytes, DATA with made-up labels, and encrypt setups
/// with random ephemeral keys (each costs a Diffie-Hellman unless cookies stop it).
const FORGE: &str = r#"
import os, socket, struct, sys
target, count = sys.argv[1], int(sys.argv[2])
msgs = []
for i in range(1024):
    kind = i % 3
    if kind == 0:
        msgs.append(os.urandom(1 + i % 120))
    elif kind == 1:
        msgs.append(b"\x11" + os.urandom(4) + os.urandom(i % 200))
    else:
        name = b"mallory.udp"
        msgs.append(b"\x12" + os.urandom(12) + b"\x00\x01" + bytes([len(name)]) + name
                    + b"\x00" + struct.pack(">H", 32) + os.urandom(32))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    try:
        s.sendto(msgs[i % 1024], (target, 4789))
    except OSError:
        pass
"#;

/// Distinct names at a resolver: overlay names of hosts nobody knows, and plain names that
/// go upstream (where nothing answers).
const NAMES: &str = r#"
import socket, struct, sys
count = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
for i in range(count):
    name = ("h%d.udp" % i) if i % 2 else ("h%d.example.com" % i)
    q = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00\x00\x01\x00\x01"
    try:
        s.sendto(q, ("198.18.0.2", 53))
    except OSError:
        pass
"#;

#[test]
fn floods_leave_memory_bounded_and_service_recovers() {
    support::require_root();
    let mut t = Topology::new("ocfl", &["alice", "bob"]);
    // A line per dropped datagram would measure the log file, not the daemon.
    t.log_filter = "info";
    t.certify(&["udp"]);
    t.link("alice", "10.93.0.1/24", "bob", "10.93.0.2/24");
    // Nothing answers alice's upstream queries: each waits out its timeout.
    t.start(
        "alice",
        &config("alice", ("bob", "10.93.0.2")),
        "upstream_dns = [\"10.93.0.2:5353\"]\n",
    );
    t.start("bob", &config("bob", ("alice", "10.93.0.1")), "");
    let ping = t.exec("alice", &["ping", "-c", "2", "-W", "3", "bob.udp"]);
    assert!(text(&ping).contains("2 received"), "{}", text(&ping));

    let pid = |t: &Topology, h: &str| t.host(h).daemon.as_ref().expect("running").id();
    let (alice, bob) = (pid(&t, "alice"), pid(&t, "bob"));
    let idle = (proc_kb(alice, "VmRSS:"), proc_kb(bob, "VmRSS:"));

    // The floods run while alice pings bob every 100 ms.
    let pinger = std::process::Command::new("ip")
        .args(["netns", "exec", &t.host("alice").ns])
        .args(["ping", "-n", "-i", "0.1", "-c", "80", "-W", "2", "bob.udp"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping starts");
    let started = std::time::Instant::now();
    t.must("alice", &["python3", "-c", FORGE, "10.93.0.2", "1000000"]);
    t.must("alice", &["python3", "-c", NAMES, "100000"]);
    let flooded = started.elapsed();
    let pings = pinger.wait_with_output().expect("ping ran");
    let pings = text(&pings);

    let peak = (proc_kb(alice, "VmHWM:"), proc_kb(bob, "VmHWM:"));
    let bound = (bound_kb(idle.0), bound_kb(idle.1));
    let status = |h: &str| t.ocala(h, &["status"]).unwrap_or_default();
    println!(
        "flood took {flooded:?}; resident kB idle/peak/bound: alice {}/{}/{}, bob {}/{}/{}",
        idle.0, peak.0, bound.0, idle.1, peak.1, bound.1
    );
    println!(
        "{}",
        pings.lines().rev().take(2).collect::<Vec<_>>().join("\n")
    );
    assert!(
        peak.0 <= bound.0,
        "alice: {peak:?} > {bound:?}\n{}",
        status("alice")
    );
    assert!(
        peak.1 <= bound.1,
        "bob: {peak:?} > {bound:?}\n{}",
        status("bob")
    );

    // Which pings were answered, by when they were sent (every 100 ms from the start).
    let answered: Vec<u64> = pings
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|r| r.split(' ').next()?.parse().ok())
        .collect();
    let flood_ms = flooded.as_millis() as u64;
    let during = answered.iter().filter(|s| **s * 100 < flood_ms).count();
    let after = answered.iter().find(|s| **s * 100 >= flood_ms);
    println!(
        "pings answered while flooding: {during} of {}; first answered after: {}",
        (flood_ms / 100).min(80),
        after.map_or("none within the pinger's 8 s".into(), |s| format!(
            "sent {} ms after the floods",
            s * 100 - flood_ms
        ))
    );

    // Both serve again once the floods are over: bob's handle at once, and a fresh lookup
    // of bob.udp (the names flood holds alice's lookup slots until their upstream times
    // out).
    let handle = t.must(
        "alice",
        &["dig", "+short", "+tries=1", "+time=30", "bob.udp", "A"],
    );
    println!(
        "a fresh lookup answered {:?} after the floods",
        started.elapsed() - flooded
    );
    let ping = t.exec("alice", &["ping", "-c", "2", "-W", "2", handle.trim()]);
    assert!(
        text(&ping).contains("2 received"),
        "{}\n{}",
        text(&ping),
        status("alice")
    );
    let drops = status("bob");
    assert!(
        drops.contains("malformed") || drops.contains("unknown label"),
        "{drops}"
    );
}
