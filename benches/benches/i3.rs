//! The i3 server role: forwarding one DATA packet through a server engine that holds 100 000
//! triggers (datagram in, datagram out), and the trigger match alone among 100 000 triggers.
//! The host side: an app's packet sent over i3, through the server and on a shortcut.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::{drain_recycle, receive, send, I3Trio};
use ocala_engine::config::OverlayConfig;
use ocala_engine::ocd::i3::id::Id;
use ocala_engine::ocd::i3::server::{Target, Triggers};
use ocala_engine::ocd::i3::wire::{I3Packet, Stack};
use ocala_engine::{Config, Engine, Input, Instant};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

const TRIGGERS: u32 = 100_000;

fn id(i: u32) -> Id {
    Id::of_name(&format!("host{i}.i3"))
}

fn encode(p: &I3Packet<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    p.encode(&mut b);
    b
}

/// A server engine with `TRIGGERS` triggers inserted from distinct hosts.
fn server() -> (Engine, Instant) {
    let me: SocketAddr = "10.0.0.9:4790".parse().expect("address");
    let mut overlay = OverlayConfig {
        name: "i3".into(),
        module: "i3".into(),
        local_name: "srv".into(),
        port: 4790,
        keepalive_secs: 25,
        address_book: Default::default(),
        i3: Default::default(),
        ron: Default::default(),
    };
    overlay.i3.servers = vec![me];
    overlay.i3.serve_as = Some(me);
    overlay.i3.refresh_secs = 3600;
    let cfg = Config {
        overlays: vec![overlay],
        ..Config::default()
    };
    let now = Instant::from_nanos(1_000_000_000);
    let mut e = Engine::new(cfg, [7; 32], Instant::ZERO).expect("config");
    // The server's own first tick (its host side inserts its public trigger) comes first.
    e.handle_input(now, Input::Timeout).expect("time");
    drain_recycle(&mut e);
    for i in 0..TRIGGERS {
        let insert = encode(&I3Packet::Insert {
            lifetime_secs: 10_000,
            key: [1; 16],
            id: id(i),
            target: Stack::new(),
        });
        let from = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 4790));
        assert_eq!(
            receive(&mut e, now, from, &mut insert.clone()).transmits,
            1,
            "acked"
        );
    }
    (e, now)
}

fn i3(c: &mut Criterion) {
    let (mut e, now) = server();
    let sender: SocketAddr = "10.2.0.1:4790".parse().expect("address");
    let mut group = c.benchmark_group("i3");
    for size in [64usize, 1200] {
        let payload = vec![0x5a; size];
        let data = encode(&I3Packet::Data {
            flags: 0,
            stack: [id(4242)].into_iter().collect(),
            return_id: Some(id(7)),
            payload: &payload,
        });
        assert_eq!(receive(&mut e, now, sender, &mut data.clone()).transmits, 1);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("server_forward", size), |b| {
            let mut d = data.clone();
            b.iter(|| black_box(receive(&mut e, now, sender, black_box(&mut d))));
        });
    }

    let mut table = Triggers::new(TRIGGERS as usize, Duration::from_secs(10_000), &[7; 32]);
    for i in 0..TRIGGERS {
        let to = Target::Addr(SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 4790)));
        table
            .insert(
                Instant::ZERO,
                id(i),
                [1; 16],
                to,
                Duration::from_secs(10_000),
            )
            .expect("room");
    }
    let wanted = id(31337);
    assert!(table.matching(Instant::ZERO, &wanted).is_some());
    group.bench_function("trigger_match_100k", |b| {
        b.iter(|| black_box(table.matching(Instant::ZERO, black_box(&wanted)).is_some()))
    });
    group.finish();
}

fn host_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("i3/host_send");
    group.throughput(Throughput::Bytes(1200));
    for (label, name, via) in [
        ("relay", "bob.i3", I3Trio::SERVER),
        ("shortcut", "bob.shortcut.i3", I3Trio::BOB),
    ] {
        let mut trio = I3Trio::new(name);
        let packet = trio.packet_to_bob(1200);
        assert_eq!(trio.datagram_for(&packet).0, trio.net.nodes[via].addr);
        let now = trio.net.now;
        let alice = &mut trio.net.nodes[I3Trio::ALICE].engine;
        assert_eq!(send(alice, now, &packet).transmits, 1);
        group.bench_function(label, |b| {
            b.iter(|| black_box(send(alice, now, black_box(&packet))))
        });
    }
    group.finish();
}

criterion_group!(benches, i3, host_send);
criterion_main!(benches);
