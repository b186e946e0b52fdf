//! A gateway's label swap: a data datagram for a relayed path (alice → gw → carol) arrives
//! at gw and leaves for carol with the next hop's label. Only gw's engine is timed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::{receive, Chain};
use std::hint::black_box;

fn gateway(c: &mut Criterion) {
    let mut chain = Chain::new();
    let alice_addr = chain.net.nodes[Chain::ALICE].addr;
    let now = chain.net.now;

    let mut group = c.benchmark_group("gateway");
    for size in [64usize, 1200] {
        let packet = chain.packet_to_carol(size);
        let datagram = chain.datagram_for_gw(&packet);
        assert_eq!(
            receive(chain.gw(), now, alice_addr, &mut datagram.clone()).transmits,
            1
        );
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("relay", size), |b| {
            let mut dgram = datagram.clone();
            let gw = chain.gw();
            b.iter(|| black_box(receive(gw, now, alice_addr, black_box(&mut dgram))));
        });
    }
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
