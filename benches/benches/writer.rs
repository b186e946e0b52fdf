//! The daemon's send half on the engine's thread and on a writer thread of its own
//! (`daemon.threads`), with real system calls.
//!
//! One iteration is what ocalad does with a TUN read of 64 segments on an encrypted path:
//! the engine seals 64 packets of 1200 bytes (alice's side of [`Pair::secure`]), and the data
//! path sends them as GSO trains through a real UDP socket to a loopback socket that never
//! reads (the kernel drops what overflows it, after doing the work of a send). With one
//! thread every iteration pays the engine and the system calls; with the writer the engine
//! thread hands the batch over and goes on with the next, so on a machine where the two
//! threads each have a core the time per batch is the slower of the two halves.
//!
//! `cargo bench -p ocala-benches --bench writer`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ocala_benches::Pair;
use ocala_engine::config::Protection;
use ocala_engine::{Engine, Input, Instant, Output};
use ocala_mio::datapath::Datapath;
use ocala_mio::socket::OverlaySocket;
use std::net::{SocketAddr, UdpSocket};

const BATCH: usize = 64;
const SIZE: usize = 1200;

/// One batch through the engine, its datagrams queued to `to`, then flushed.
fn send_batch(
    engine: &mut Engine,
    now: Instant,
    packets: &[Vec<u8>],
    dp: &mut Datapath,
    to: SocketAddr,
) {
    engine
        .handle_batch(now, packets.iter().map(|p| Input::TunPacket(p)))
        .expect("time does not go backwards");
    loop {
        match engine.poll_output() {
            Output::Timeout(_) => break,
            Output::Transmit {
                overlay,
                payload,
                ecn,
                ..
            } => dp.transmit(overlay, to, payload, ecn),
            Output::WriteTun(p) | Output::UpstreamDns { query: p, .. } => engine.recycle(p),
            // Only received datagrams deliver in place, and this feeds none.
            Output::WriteTunInPlace(_) | Output::Event(_) => {}
        }
    }
    dp.flush(engine);
}

fn writer(c: &mut Criterion) {
    let mut pair = Pair::secure(Protection::Encrypt);
    let warm = pair.packet_to_bob(SIZE);
    for _ in 0..50 {
        pair.net.tun_input(Pair::ALICE, &warm);
    }
    let packets: Vec<Vec<u8>> = (0..BATCH).map(|_| pair.packet_to_bob(SIZE)).collect();
    let now = pair.net.now;
    let engine = &mut pair.net.nodes[Pair::ALICE].engine;
    let sink = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    let to = sink.local_addr().expect("its address");

    let mut group = c.benchmark_group("writer");
    group.throughput(Throughput::Bytes((BATCH * SIZE) as u64));
    for threads in [1u8, 2] {
        let from: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let socket = OverlaySocket::bind(from, true).expect("the overlay socket");
        let mut dp = Datapath::new(None, vec![socket], threads, &[]).expect("the data path");
        group.bench_function(BenchmarkId::new("send_64x1200_encrypted", threads), |b| {
            b.iter(|| send_batch(engine, now, &packets, &mut dp, to));
        });
        let sent = dp.stats().sent;
        drop(dp);
        assert!(sent.udp_datagrams_out > 0, "{sent:?}");
        assert_eq!(sent.udp_send_errors, 0, "{sent:?}");
    }
    group.finish();
}

criterion_group!(benches, writer);
criterion_main!(benches);
