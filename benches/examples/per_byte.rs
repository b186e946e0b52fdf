//! ocala's encrypted send against boringtun's `encapsulate`, per byte, interleaved.
//!
//! `--bench secure` times the two one after the other, and on a shared VM their speed moves
//! by more than the few percent between them. This runs both in one process, 40 rounds of
//! 20 000 packets each of 128 and 1200 bytes, taking turns, and keeps each one's fastest
//! round: the cost per byte is the difference between the sizes over the 1072 bytes
//! between them.
//!
//! ```sh
//! cargo run --release -p ocala-benches --example per_byte
//! # instructions instead of time (valgrind): N packets of SIZE bytes, one side only
//! valgrind --tool=callgrind target/release/examples/per_byte ocala 1200 3000
//! ```

use boringtun::noise::{Tunn, TunnResult};
use ocala_benches::{send, udp_packet, wireguard_pair, Pair};
use ocala_engine::config::Protection;
use ocala_engine::{Engine, Instant};
use std::hint::black_box;
use std::net::Ipv4Addr;

const SIZES: [usize; 2] = [128, 1200];
const ROUNDS: usize = 40;
const PACKETS: u32 = 20_000;

/// alice's engine with a warm encrypted path to bob, and its packets of each size.
fn ocala() -> (Pair, Vec<Vec<u8>>) {
    let mut pair = Pair::secure(Protection::Encrypt);
    let warm = pair.packet_to_bob(1200);
    for _ in 0..50 {
        pair.net.tun_input(Pair::ALICE, &warm);
    }
    let packets = SIZES.iter().map(|&s| pair.packet_to_bob(s)).collect();
    (pair, packets)
}

/// A boringtun peer with its handshake done (fixed keys), and packets of each size.
fn boringtun() -> (Tunn, Vec<Vec<u8>>) {
    let (a, _b) = wireguard_pair();
    let packets = SIZES
        .iter()
        .map(|&s| udp_packet(Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2), s))
        .collect();
    (a, packets)
}

fn ocala_send(engine: &mut Engine, now: Instant, packet: &[u8], n: u32) {
    for _ in 0..n {
        let sent = send(engine, now, black_box(packet));
        assert_eq!(sent.transmits, 1);
    }
}

fn encapsulate(tunn: &mut Tunn, dst: &mut [u8], packet: &[u8], n: u32) {
    for _ in 0..n {
        match tunn.encapsulate(black_box(packet), dst) {
            TunnResult::WriteToNetwork(p) => {
                black_box(p.len());
            }
            other => panic!("encapsulate: {other:?}"),
        }
    }
}

/// Nanoseconds per packet of `f(n)`.
fn per_packet(n: u32, f: impl FnOnce(u32)) -> f64 {
    let t = std::time::Instant::now();
    f(n);
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let (mut pair, packets) = ocala();
    let now = pair.net.now;
    let engine = &mut pair.net.nodes[Pair::ALICE].engine;
    let (mut tunn, wg_packets) = boringtun();
    let mut dst = vec![0u8; 2048];

    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [side, size, n] = args.as_slice() {
        let i = SIZES.iter().position(|s| s.to_string() == *size);
        let (Some(i), Ok(n)) = (i, n.parse()) else {
            panic!("usage: per_byte [ocala|boringtun 128|1200 PACKETS]");
        };
        match side.as_str() {
            "ocala" => ocala_send(engine, now, &packets[i], n),
            _ => encapsulate(&mut tunn, &mut dst, &wg_packets[i], n),
        }
        return;
    }

    // Fastest round of each: [ocala 128, ocala 1200, boringtun 128, boringtun 1200].
    let mut best = [f64::MAX; 4];
    for _ in 0..ROUNDS {
        for i in 0..SIZES.len() {
            let t = per_packet(PACKETS, |n| ocala_send(engine, now, &packets[i], n));
            best[i] = best[i].min(t);
            let t = per_packet(PACKETS, |n| {
                encapsulate(&mut tunn, &mut dst, &wg_packets[i], n)
            });
            best[2 + i] = best[2 + i].min(t);
        }
    }
    let bytes = (SIZES[1] - SIZES[0]) as f64;
    let (o, w) = ((best[1] - best[0]) / bytes, (best[3] - best[2]) / bytes);
    println!(
        "ocala send {:.1} / {:.1} ns, boringtun encapsulate {:.1} / {:.1} ns ({} / {} B); \
         per byte {o:.4} / {w:.4} ns = {:.3}x",
        best[0],
        best[1],
        best[2],
        best[3],
        SIZES[0],
        SIZES[1],
        o / w
    );
}
