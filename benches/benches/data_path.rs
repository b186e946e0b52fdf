//! Per-packet cost of the data path through a warm one-hop path (alice → bob over `udp`):
//! sending (an app's packet in, the overlay datagram out) and receiving (a datagram in, the
//! rewritten packet out to local apps). Only the engine is timed: `handle_input`, draining
//! `poll_output`, and giving the buffers back.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::{receive, send, Pair};
use std::hint::black_box;

const SIZES: [usize; 2] = [64, 1200];

fn data_path(c: &mut Criterion) {
    let mut pair = Pair::new();
    let alice_addr = pair.net.nodes[Pair::ALICE].addr;
    let now = pair.net.now;

    let mut group = c.benchmark_group("data_path");
    for size in SIZES {
        let packet = pair.packet_to_bob(size);
        let datagram = pair.datagram_for_bob(&packet);
        group.throughput(Throughput::Bytes(size as u64));

        // Sanity: each iteration does the whole job.
        assert_eq!(send(pair.alice(), now, &packet).transmits, 1);
        assert_eq!(
            receive(pair.bob(), now, alice_addr, &datagram).tun_writes,
            1
        );

        group.bench_with_input(BenchmarkId::new("send", size), &packet, |b, packet| {
            let alice = pair.alice();
            b.iter(|| black_box(send(alice, now, black_box(packet))));
        });
        group.bench_with_input(BenchmarkId::new("receive", size), &datagram, |b, dgram| {
            let bob = &mut pair.net.nodes[Pair::BOB].engine;
            b.iter(|| black_box(receive(bob, now, alice_addr, black_box(dgram))));
        });
    }
    group.finish();
}

criterion_group!(benches, data_path);
criterion_main!(benches);
