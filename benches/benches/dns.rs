//! DNS interception costs on alice's side:
//!
//! * `dns/cached`: an A query for `bob.udp`, whose handle is bound and path up, answered
//!   straight away (query packet in, answer packet out to the app).
//! * `dns/new_name/*`: an A query for a name never seen before, up to the moment the engine
//!   emits the path setup datagram — parsing, binding a handle, creating the path (and, for
//!   `ip_literal`, a tunnel to a new peer) and encoding the setup. The network round trip
//!   is not included. Each name is used once; a fresh engine is made (untimed) every
//!   [`CHUNK`] names so the tables stay well within their limits.

use criterion::{criterion_group, criterion_main, Criterion};
use ocala_benches::{
    dns_query_packet, drain_recycle, node_config, overlay_addr, send, Pair, START,
};
use ocala_engine::{Config, Engine, Input};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

/// Names per engine.
const CHUNK: u64 = 2048;

fn cached(c: &mut Criterion) {
    let mut pair = Pair::new();
    let cfg = pair.net.nodes[Pair::ALICE].cfg.clone();
    let query = dns_query_packet(&cfg, 0x1234, "bob.udp", 5353);
    let now = pair.net.now;
    let first = send(pair.alice(), now, &query);
    assert_eq!(
        (first.tun_writes, first.transmits),
        (1, 0),
        "answered at once"
    );
    c.bench_function("dns/cached", |b| {
        let alice = pair.alice();
        b.iter(|| black_box(send(alice, now, black_box(&query))));
    });
}

/// Alice alone, able to hold a chunk's worth of waiting queries; `book` names extra peers.
fn lone_alice(book: &[(String, SocketAddr)]) -> (Config, Engine) {
    let book: Vec<(&str, SocketAddr)> = book.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    let mut cfg = node_config("alice", &book, false);
    cfg.limits.pending_queries = 1 << 20;
    let engine = Engine::new(cfg.clone(), [7; 32], START).expect("valid config");
    (cfg, engine)
}

/// Times `iters` first lookups of distinct names, `name(i)` for i in 0..iters, with a new
/// engine from `make` every CHUNK names.
fn new_names(
    iters: u64,
    make: &dyn Fn() -> (Config, Engine),
    name: &dyn Fn(u64) -> String,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK);
        let (cfg, mut engine) = make();
        let queries: Vec<Vec<u8>> = (0..n)
            .map(|i| dns_query_packet(&cfg, i as u16, &name(i), 5353))
            .collect();
        let mut transmits = 0;
        let start = std::time::Instant::now();
        for q in &queries {
            engine
                .handle_input(START, Input::TunPacket(black_box(q)))
                .expect("time is constant");
            transmits += drain_recycle(&mut engine).transmits;
        }
        total += start.elapsed();
        assert_eq!(transmits as u64, n, "one setup datagram per new name");
        drop(engine);
        done += n;
    }
    total
}

fn new_name(c: &mut Criterion) {
    // A new peer for every name: `10.1.x.y.udp` is an IP literal the udp module dials
    // directly, so each lookup also makes a tunnel.
    let literal = |i: u64| format!("10.1.{}.{}.udp", (i >> 8) & 0xff, i & 0xff);
    c.bench_function("dns/new_name/ip_literal", |b| {
        b.iter_custom(|iters| new_names(iters, &|| lone_alice(&[]), &literal));
    });

    // Names from the address book that all lead to one peer: the tunnel is shared, so this
    // is the cost of the name, handle and path alone.
    let book: Vec<(String, SocketAddr)> = (0..CHUNK)
        .map(|i| (format!("n{i}"), overlay_addr(2)))
        .collect();
    let known = |i: u64| format!("n{i}.udp");
    c.bench_function("dns/new_name/known_peer", |b| {
        b.iter_custom(|iters| new_names(iters, &|| lone_alice(&book), &known));
    });
}

criterion_group!(benches, cached, new_name);
criterion_main!(benches);
