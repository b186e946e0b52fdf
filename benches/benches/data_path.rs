//! Per-packet cost of the data path through a warm one-hop path (alice → bob over `udp`):
//! sending (an app's packet in, the overlay datagram out) and receiving (a datagram in, the
//! rewritten packet out to local apps), one packet at a time and in batches of 64 fed with
//! `handle_batch` (as the daemon feeds a TUN read's segments or a receive's datagrams;
//! criterion reports the time per packet). Only the engine is timed: feeding, draining
//! `poll_output`, and giving the buffers back.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::{receive, receive_batch, send, send_batch, Pair};
use std::hint::black_box;

const SIZES: [usize; 2] = [64, 1200];
/// Packets per batch: about what one 64 KiB TUN read or one GRO train holds.
const BATCH: usize = 64;

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
            receive(pair.bob(), now, alice_addr, &mut datagram.clone()).tun_writes,
            1
        );

        group.bench_with_input(BenchmarkId::new("send", size), &packet, |b, packet| {
            let alice = pair.alice();
            b.iter(|| black_box(send(alice, now, black_box(packet))));
        });
        group.bench_function(BenchmarkId::new("receive", size), |b| {
            let mut dgram = datagram.clone();
            let bob = &mut pair.net.nodes[Pair::BOB].engine;
            b.iter(|| black_box(receive(bob, now, alice_addr, black_box(&mut dgram))));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("data_path_batch64");
    for size in SIZES {
        let packet = pair.packet_to_bob(size);
        let datagram = pair.datagram_for_bob(&packet);
        let packets = vec![packet.as_slice(); BATCH];
        // Distinct buffers, as in a receive: the engine rewrites in place what it delivers.
        let datagrams = vec![datagram.clone(); BATCH];
        group.throughput(Throughput::Elements(BATCH as u64));
        assert_eq!(send_batch(pair.alice(), now, &packets).transmits, BATCH);
        let bob = &mut pair.net.nodes[Pair::BOB].engine;
        assert_eq!(
            receive_batch(bob, now, alice_addr, &mut datagrams.clone()).tun_writes,
            BATCH
        );
        group.bench_with_input(BenchmarkId::new("send", size), &packets, |b, packets| {
            let alice = pair.alice();
            b.iter(|| black_box(send_batch(alice, now, black_box(packets))));
        });
        group.bench_function(BenchmarkId::new("receive", size), |b| {
            let mut d = datagrams.clone();
            let bob = &mut pair.net.nodes[Pair::BOB].engine;
            b.iter(|| black_box(receive_batch(bob, now, alice_addr, black_box(&mut d))));
        });
    }
    group.finish();
}

criterion_group!(benches, data_path);
criterion_main!(benches);
