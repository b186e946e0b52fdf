//! ocala's encrypted send and receive against boringtun's `encapsulate` and `decapsulate`,
//! per byte, interleaved.
//!
//! `--bench secure` times the two one after the other, and on a shared VM their speed moves
//! by more than the few percent between them. This runs both in one process, taking turns
//! (40 rounds of 20 000 packets each of 128 and 1200 bytes to send; 20 rounds of 10 000
//! fresh datagrams, sealed untimed before each round, to receive), and keeps each one's
//! fastest round: the cost per byte is the difference between the sizes over the 1072 bytes
//! between them.
//!
//! ```sh
//! cargo run --release -p ocala-benches --example per_byte
//! # instructions instead of time (valgrind): N packets of SIZE bytes, one side only
//! valgrind --tool=callgrind target/release/examples/per_byte ocala 1200 3000
//! valgrind --tool=callgrind target/release/examples/per_byte boringtun 1200 3000
//! # receiving: each datagram is sealed just before, so count only the receiving function
//! valgrind --tool=callgrind '--toggle-collect=ocala_benches::receive*' \
//!     target/release/examples/per_byte ocala-receive 1200 2000
//! valgrind --tool=callgrind '--toggle-collect=boringtun::noise::Tunn::decapsulate*' \
//!     target/release/examples/per_byte boringtun-receive 1200 2000
//! ```

use boringtun::noise::{Tunn, TunnResult};
use ocala_benches::{receive, send, send_into, udp_packet, wireguard_pair, Pair};
use ocala_engine::config::Protection;
use ocala_engine::{Engine, Instant};
use std::hint::black_box;
use std::net::Ipv4Addr;

const SIZES: [usize; 2] = [128, 1200];
const ROUNDS: usize = 40;
const PACKETS: u32 = 20_000;
const RECEIVE_ROUNDS: usize = 20;
const DATAGRAMS: usize = 10_000;

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

/// Two boringtun peers with their handshake done (fixed keys), and packets of each size.
fn boringtun() -> (Tunn, Tunn, Vec<Vec<u8>>) {
    let (a, b) = wireguard_pair();
    let packets = SIZES
        .iter()
        .map(|&s| udp_packet(Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2), s))
        .collect();
    (a, b, packets)
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

/// The cost per byte of each side from the fastest rounds
/// `[ocala small, ocala large, boringtun small, boringtun large]`, printed.
fn report(what: &str, best: [f64; 4]) {
    let bytes = (SIZES[1] - SIZES[0]) as f64;
    let (o, w) = ((best[1] - best[0]) / bytes, (best[3] - best[2]) / bytes);
    println!(
        "{what}: ocala {:.1} / {:.1} ns, boringtun {:.1} / {:.1} ns ({} / {} B); \
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

fn main() {
    let (mut pair, packets) = ocala();
    let now = pair.net.now;
    let alice_addr = pair.net.nodes[Pair::ALICE].addr;
    let (left, right) = pair.net.nodes.split_at_mut(Pair::BOB);
    let (engine, bob) = (&mut left[Pair::ALICE].engine, &mut right[0].engine);
    let (mut tunn, mut peer, wg_packets) = boringtun();
    let mut dst = vec![0u8; 2048];

    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [side, size, n] = args.as_slice() {
        let i = SIZES.iter().position(|s| s.to_string() == *size);
        let (Some(i), Ok(n)) = (i, n.parse()) else {
            panic!("usage: per_byte [ocala|boringtun|ocala-receive|boringtun-receive 128|1200 N]");
        };
        match side.as_str() {
            "ocala" => ocala_send(engine, now, &packets[i], n),
            "ocala-receive" => {
                for _ in 0..n {
                    let mut d = Vec::new();
                    send_into(engine, now, &packets[i], &mut d);
                    assert_eq!(receive(bob, now, alice_addr, &mut d).tun_writes, 1);
                }
            }
            "boringtun-receive" => {
                for _ in 0..n {
                    let d = match tunn.encapsulate(&wg_packets[i], &mut dst) {
                        TunnResult::WriteToNetwork(p) => p.to_vec(),
                        other => panic!("encapsulate: {other:?}"),
                    };
                    let _ = peer.decapsulate(None, &d, &mut dst);
                }
            }
            _ => encapsulate(&mut tunn, &mut dst, &wg_packets[i], n),
        }
        return;
    }

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
    report("send", best);

    // Receivers refuse replays: every round opens datagrams sealed just before it.
    let mut sealed: Vec<Vec<u8>> = (0..DATAGRAMS).map(|_| Vec::with_capacity(2048)).collect();
    let mut best = [f64::MAX; 4];
    let n = DATAGRAMS as u32;
    for _ in 0..RECEIVE_ROUNDS {
        for i in 0..SIZES.len() {
            for d in &mut sealed {
                send_into(engine, now, &packets[i], d);
            }
            let t = per_packet(n, |_| {
                for d in &mut sealed {
                    assert_eq!(receive(bob, now, alice_addr, black_box(d)).tun_writes, 1);
                }
            });
            best[i] = best[i].min(t);
            for d in &mut sealed {
                d.clear();
                match tunn.encapsulate(&wg_packets[i], &mut dst) {
                    TunnResult::WriteToNetwork(p) => d.extend_from_slice(p),
                    other => panic!("encapsulate: {other:?}"),
                }
            }
            let t = per_packet(n, |_| {
                for d in &sealed {
                    match peer.decapsulate(None, black_box(d), &mut dst) {
                        TunnResult::WriteToTunnelV4(p, _) => {
                            black_box(p.len());
                        }
                        other => panic!("decapsulate: {other:?}"),
                    }
                }
            });
            best[2 + i] = best[2 + i].min(t);
        }
    }
    report("receive", best);
}
