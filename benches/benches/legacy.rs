//! A legacy server gateway's two rewrites: alice's data datagram arrives at gw and leaves as
//! a `WriteTun` to the legacy server from the path's egress address (`legacy/egress`), and
//! the server's answer, handed over by the TUN, leaves for alice (`legacy/ingress`). Only
//! gw's engine is timed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::{receive, send, LanChain, LegacyChain};
use std::hint::black_box;

fn legacy(c: &mut Criterion) {
    let mut chain = LegacyChain::new();
    let alice_addr = chain.net.nodes[LegacyChain::ALICE].addr;
    let now = chain.net.now;

    let mut group = c.benchmark_group("legacy");
    for size in [64usize, 1200] {
        let datagram = chain.datagram_for_gw(&chain.packet_to_server(size));
        assert_eq!(
            receive(chain.gw(), now, alice_addr, &mut datagram.clone()).tun_writes,
            1
        );
        let answer = chain.packet_from_server(size);
        assert_eq!(send(chain.gw(), now, &answer).transmits, 1);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("egress", size), |b| {
            let mut dgram = datagram.clone();
            let gw = chain.gw();
            b.iter(|| black_box(receive(gw, now, alice_addr, black_box(&mut dgram))));
        });
        group.bench_with_input(BenchmarkId::new("ingress", size), &answer, |b, packet| {
            let gw = chain.gw();
            b.iter(|| black_box(send(gw, now, black_box(packet))));
        });
    }
    let clients = 1000;
    let mut lan = LanChain::new(clients);
    let now = lan.net.now;
    let query = lan.query_from(clients / 2);
    let answered = send(lan.gw(), now, &query);
    assert_eq!(
        (answered.tun_writes, answered.transmits),
        (1, 0),
        "answered at once"
    );
    group.bench_function("lan_lookup", |b| {
        let gw = lan.gw();
        b.iter(|| black_box(send(gw, now, black_box(&query))));
    });
    let packet = lan.packet_from(clients / 2, 1200);
    assert_eq!(send(lan.gw(), now, &packet).transmits, 1);
    group.throughput(Throughput::Bytes(1200));
    group.bench_function("lan_send/1200", |b| {
        let gw = lan.gw();
        b.iter(|| black_box(send(gw, now, black_box(&packet))));
    });
    group.finish();
}

criterion_group!(benches, legacy);
criterion_main!(benches);
