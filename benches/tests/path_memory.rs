//! Heap held per idle path at each end, plain and encrypted, each path over its own tunnel
//! as one-hop peers are. Two rigs: alice opening paths to many peers (the initiator's cost
//! per path) and many clients opening paths to bob (the responder's). The heap the node
//! under test gains once the paths are up and idle is divided among them; the peers' own
//! growth is taken out by dropping them and subtracting what a fresh engine of each takes.
//! Printed for `benches/README.md`, and held to the throughput issue's bounds: 1 KiB per end
//! plain, 2 KiB encrypted.
//!
//! The global allocator counts live bytes; the test is alone in its binary so nothing else
//! allocates meanwhile. Growth from the first paths (tables reaching their working size) is
//! left out by measuring between 50 and 150 paths.

use ocala_benches::{node_config, overlay_addr, secure_node_config, Net, TestCa, START};
use ocala_engine::config::{Config, Protection};
use ocala_engine::Engine;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};

struct Live;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Live = Live;

const WARM: usize = 50;
const PEERS: usize = 150;

/// Live heap once `net`'s harness records (answers, events) are dropped.
fn live(net: &mut Net) -> isize {
    for n in &mut net.nodes {
        n.tun = Vec::new();
        n.events = Vec::new();
    }
    LIVE.load(Ordering::Relaxed)
}

/// What a fresh engine with `cfg` holds.
fn fresh(cfg: &Config) -> isize {
    let before = LIVE.load(Ordering::Relaxed);
    let engine = Engine::new(cfg.clone(), [7; 32], START).expect("config");
    let size = LIVE.load(Ordering::Relaxed) - before;
    drop(engine);
    size
}

/// Heap per path the node at index 0 gains while `open(net, i)` brings up paths
/// `WARM..PEERS` (peer `i` is node `i + 1`), net of the peers' own growth.
fn per_path(nodes: Vec<(String, SocketAddr, Config)>, open: &dyn Fn(&mut Net, usize)) -> isize {
    let configs: Vec<Config> = nodes.iter().map(|n| n.2.clone()).collect();
    let mut net = Net::new(
        nodes
            .iter()
            .map(|(n, a, c)| (n.as_str(), *a, c.clone()))
            .collect(),
    );
    (0..WARM).for_each(|i| open(&mut net, i));
    let before = live(&mut net);
    (WARM..PEERS).for_each(|i| open(&mut net, i));
    let after = live(&mut net);
    net.nodes.truncate(WARM + 1);
    let peers_now = after - live(&mut net);
    let peers_fresh: isize = configs[WARM + 1..].iter().map(fresh).sum();
    (after - before - (peers_now - peers_fresh)) / (PEERS - WARM) as isize
}

fn peer(i: usize) -> (String, SocketAddr) {
    (format!("p{i}"), overlay_addr(i as u8 + 2))
}

/// Per path at the initiator (alice, many peers) and at the responder (bob, many clients)
/// with configs from `config(name, address book, key seed)`.
/// Makes a node's config from its name, address book and key seed.
type MakeConfig<'a> = &'a dyn Fn(&str, &[(&str, SocketAddr)], u8) -> Config;

fn both_ends(config: MakeConfig<'_>) -> (isize, isize) {
    let me = overlay_addr(1);
    let peers: Vec<(String, SocketAddr)> = (0..PEERS).map(peer).collect();
    let book: Vec<(&str, SocketAddr)> = peers.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    let back = |name: &str| [(name.to_string(), me)];

    let mut nodes = vec![("alice".to_string(), me, config("alice", &book, 1))];
    for (i, (n, a)) in peers.iter().enumerate() {
        let b = back("alice");
        nodes.push((
            n.clone(),
            *a,
            config(n, &[(b[0].0.as_str(), me)], i as u8 + 2),
        ));
    }
    let initiator = per_path(nodes, &|net, i| {
        net.lookup(0, &format!("{}.udp", peer(i).0))
            .unwrap_or_else(|e| panic!("{e}"));
    });

    let mut nodes = vec![("bob".to_string(), me, config("bob", &[], 1))];
    for (i, (n, a)) in peers.iter().enumerate() {
        nodes.push((n.clone(), *a, config(n, &[("bob", me)], i as u8 + 2)));
    }
    let responder = per_path(nodes, &|net, i| {
        net.lookup(i + 1, "bob.udp")
            .unwrap_or_else(|e| panic!("{e}"));
    });
    (initiator, responder)
}

#[test]
fn an_idle_path_holds_little_heap_at_each_end() {
    let plain = both_ends(&|name, book, _| node_config(name, book, false));
    let ca = TestCa::new(0xca);
    let encrypted = both_ends(&|name, book, seed| {
        secure_node_config(name, book, Protection::Encrypt, &ca, seed)
    });
    println!(
        "heap per idle path (initiator, responder): plain {plain:?} B, encrypted {encrypted:?} B"
    );
    assert!(plain.0 <= 1024 && plain.1 <= 1024, "plain: {plain:?}");
    assert!(
        encrypted.0 <= 2048 && encrypted.1 <= 2048,
        "encrypted: {encrypted:?}"
    );
}
