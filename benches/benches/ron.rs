//! The RON overlay: an intermediate member relaying one DATA packet (datagram in, datagram
//! out, through a whole engine), and path choice among 50 members (a link-state report
//! arrives and the tunnel's path is chosen again among the direct link and 48 one-hop paths).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ocala_benches::{drain_recycle, receive};
use ocala_engine::config::{HexBytes, Limits, OverlayConfig};
use ocala_engine::ocd::ron::wire::{DataHeader, LinkReport, RonPacket};
use ocala_engine::ocd::ron::{member_id, RonConfig, RonOverlay};
use ocala_engine::ocd::{HopSpec, Overlay, Received};
use ocala_engine::{Config, Engine, Input, Instant, PacketPool};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

const KEY: [u8; 32] = [0x5a; 32];
const MEMBERS: usize = 50;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 4791))
}

fn name(i: usize) -> String {
    format!("m{i:02}")
}

fn id(i: usize) -> u64 {
    member_id(&format!("{}.ron", name(i)))
}

/// Member `me` of a RON of `n` members `m00`..
fn overlay(me: usize, n: usize) -> OverlayConfig {
    OverlayConfig {
        name: "ron".into(),
        module: "ron".into(),
        local_name: name(me),
        port: 4791,
        keepalive_secs: 25,
        address_book: (0..n)
            .filter(|&i| i != me)
            .map(|i| (name(i), addr(i)))
            .collect(),
        i3: Default::default(),
        ron: RonConfig {
            auth_key: Some(HexBytes(KEY.to_vec())),
            ..RonConfig::default()
        },
    }
}

fn encode(p: &RonPacket<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    p.encode(&KEY, &mut b);
    b
}

fn relay(c: &mut Criterion) {
    // m02 relays for m00 → m01.
    let cfg = Config {
        overlays: vec![overlay(2, 3)],
        ..Config::default()
    };
    let now = Instant::from_nanos(1_000_000_000);
    let mut e = Engine::new(cfg, [7; 32], Instant::ZERO).expect("config");
    // Its first probes and link state go out first, outside the measurement.
    e.handle_input(now, Input::Timeout).expect("time");
    drain_recycle(&mut e);
    let mut group = c.benchmark_group("ron");
    for size in [64usize, 1200] {
        let payload = vec![0x5a; size];
        let h = DataHeader {
            flags: 0,
            src: id(0),
            dst: id(1),
            src_tunnel: 1,
            dst_tunnel: 1,
            metric: 0,
        };
        let data = encode(&RonPacket::Data(h, &payload));
        assert_eq!(
            receive(&mut e, now, addr(0), &mut data.clone()).transmits,
            1
        );
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("relay", size), |b| {
            let mut d = data.clone();
            b.iter(|| black_box(receive(&mut e, now, addr(0), black_box(&mut d))));
        });
    }
    group.finish();
}

/// m00 with every link up (10 ms each) and a link-state report from every member (each
/// link of theirs 10 ms), and a tunnel to m01.
fn member_of_fifty() -> (RonOverlay, PacketPool, Instant) {
    let mut m = RonOverlay::new(0, &overlay(0, MEMBERS), &Limits::default()).expect("config");
    let mut pool = PacketPool::default();
    let t0 = Instant::from_nanos(1_000_000_000);
    m.handle_timeout(t0);
    let answered = t0.saturating_add(Duration::from_millis(10));
    for i in 1..MEMBERS {
        let ack = encode(&RonPacket::Ack { src: id(i), seq: 1 });
        assert_eq!(
            m.receive(answered, &addr(i), &ack, &mut pool),
            Received::Consumed
        );
    }
    for i in 1..MEMBERS {
        let links = (0..MEMBERS)
            .filter(|&j| j != i)
            .map(|j| LinkReport {
                peer: id(j),
                rtt_us: 10_000,
                loss_pm: 0,
            })
            .collect();
        let p = encode(&RonPacket::Links {
            src: id(i),
            version: 1,
            links,
        });
        assert_eq!(
            m.receive(answered, &addr(i), &p, &mut pool),
            Received::Consumed
        );
    }
    let hop = HopSpec {
        host: name(1),
        options: Vec::new(),
    };
    let t = m.setup(answered, &hop);
    while m.poll_event().is_some() {}
    assert!(
        m.describe(t).starts_with("m01 (default), direct"),
        "{}",
        m.describe(t)
    );
    (m, pool, answered)
}

fn path_choice(c: &mut Criterion) {
    let (mut m, mut pool, now) = member_of_fifty();
    let mut version = 1u32;
    let report = |version: u32| {
        let links = (0..MEMBERS)
            .filter(|&j| j != 7)
            .map(|j| LinkReport {
                peer: id(j),
                rtt_us: 10_000 + version % 7,
                loss_pm: 0,
            })
            .collect();
        encode(&RonPacket::Links {
            src: id(7),
            version,
            links,
        })
    };
    let mut group = c.benchmark_group("ron");
    group.bench_function("link_state_and_path_choice_50", |b| {
        b.iter_batched(
            || {
                version += 1;
                report(version)
            },
            |p| {
                let consumed = m.receive(now, &addr(7), &p, &mut pool) == Received::Consumed;
                while m.poll_event().is_some() {}
                black_box(consumed)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, relay, path_choice);
criterion_main!(benches);
