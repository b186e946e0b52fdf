//! The cost of end-to-end security, with userspace WireGuard (boringtun) beside it as the
//! baseline, in the same run on the same machine:
//!
//! * `secure/send/N`, `secure/receive/N`: one N-byte IPv4/UDP packet (128 and 1200) through a warm
//!   one-hop path protected `encrypt` (ChaCha20-Poly1305): an app's packet in, the sealed
//!   datagram out; a sealed datagram in, the opened and rewritten packet out to apps. The
//!   whole engine step is timed, as in `data_path` (header, labels, address rewriting,
//!   buffers recycled), not the cipher alone.
//! * `secure/aes/send/N`, `secure/aes/receive/N`: the same on a path whose ends agreed on
//!   AES-256-GCM (what machines with AES in hardware use).
//! * `secure/auth/send/N`, `secure/auth/receive/N`: the same with `auth` (packet in the
//!   clear, keyed BLAKE2s MAC).
//! * `boringtun/encapsulate/N`, `boringtun/decapsulate/N`: `Tunn::encapsulate` and
//!   `Tunn::decapsulate` of an N-byte IPv4 packet between two boringtun peers whose
//!   handshake was done in memory.
//!
//! The difference between the two sizes, divided by the 1072 bytes between them, is the cost
//! per byte: the cipher's, the same code (ring's ChaCha20-Poly1305) in both.
//! * `secure/handshake`: from an app's DNS query for `bob.udp` on a fresh pair of engines to
//!   the path being up at both ends (setup, accept, confirm, the certificates checked both
//!   ways, the DNS answer written). Datagrams go straight from one engine to the other;
//!   making the engines is not timed.
//!
//! Receivers refuse replays, so the receive benches never feed the same datagram twice: each
//! datagram is sealed by the sender just before its batch (untimed) and opened once.

use boringtun::noise::TunnResult;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ocala_benches::{
    dns_answer, dns_query_packet, overlay_addr, receive, secure_node_config, send, send_into,
    udp_packet, wireguard_pair, Net, Pair, TestCa,
};
use ocala_engine::config::{CipherPolicy, Protection};
use ocala_engine::{Config, Event};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Packet sizes: the difference between the two gives the cost per byte (the cipher's),
/// apart from the fixed cost per packet (headers, lookups, buffers).
const SIZES: [usize; 2] = [128, 1200];
/// The size the warm-up and the handshake use.
const SIZE: usize = 1200;

/// Send and receive through a warm `mode` path from alice to bob.
fn ocala_packets(c: &mut Criterion, mode: Protection, cipher: CipherPolicy, prefix: &str) {
    let mut pair = Pair::secure_with(mode, cipher);
    if mode == Protection::Encrypt {
        let want = match cipher {
            CipherPolicy::Aes256Gcm => "aes-256-gcm",
            _ => "chacha20-poly1305",
        };
        let path = pair.net.nodes[Pair::ALICE].engine.status().paths;
        assert_eq!(path[0].cipher, Some(want), "the ends agreed on {want}");
    }
    let packet = pair.packet_to_bob(SIZE);
    let alice_addr = pair.net.nodes[Pair::ALICE].addr;
    // Warm both ways through the network, so pools and tables are at their working size.
    let bob_tun = pair.net.nodes[Pair::BOB].cfg.handles.tun_v4;
    let alice_at_bob = pair.net.bound(Pair::BOB, "alice.udp");
    let reply = udp_packet(bob_tun, alice_at_bob, SIZE);
    for _ in 0..50 {
        pair.net.tun_input(Pair::ALICE, &packet);
        pair.net.tun_input(Pair::BOB, &reply);
    }
    assert!(
        pair.net.nodes[Pair::BOB].tun.len() >= 50,
        "bob got the packets"
    );
    let now = pair.net.now;
    let packets: Vec<Vec<u8>> = SIZES.iter().map(|&s| pair.packet_to_bob(s)).collect();
    let (left, right) = pair.net.nodes.split_at_mut(Pair::BOB);
    let alice = &mut left[Pair::ALICE].engine;
    let bob = &mut right[0].engine;

    let mut group = c.benchmark_group("secure");
    for packet in &packets {
        let size = packet.len();
        // Sanity: one sealed datagram per packet, longer than the packet by header, nonce
        // and tag (or MAC); bob opens it into one packet for his apps.
        let mut datagram = Vec::with_capacity(2048);
        let sent = send_into(alice, now, packet, &mut datagram);
        assert_eq!((sent.transmits, sent.events), (1, 0));
        assert!(datagram.len() >= size + 8 + 16, "{} B", datagram.len());
        let in_clear = datagram.windows(64).any(|w| w == &packet[size - 64..]);
        assert_eq!(in_clear, mode == Protection::Auth, "{mode:?}");
        let got = receive(bob, now, alice_addr, &mut datagram.clone());
        assert_eq!((got.tun_writes, got.events, got.bytes), (1, 0, size));
        // The same datagram again is a replay: dropped, nothing delivered.
        let again = receive(bob, now, alice_addr, &mut datagram.clone());
        assert_eq!((again.tun_writes, again.events), (0, 1), "replay refused");

        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new(format!("{prefix}send"), size), |b| {
            b.iter(|| black_box(send(alice, now, black_box(packet))));
        });
        let (mut sealed, mut opened) = (0usize, 0usize);
        group.bench_function(BenchmarkId::new(format!("{prefix}receive"), size), |b| {
            b.iter_batched_ref(
                || {
                    let mut d = Vec::with_capacity(2048);
                    sealed += send_into(alice, now, packet, &mut d).transmits;
                    d
                },
                |d| {
                    let got = receive(bob, now, alice_addr, black_box(d));
                    opened += got.tun_writes;
                    black_box(got)
                },
                BatchSize::SmallInput,
            );
        });
        // (Both zero when a filter skipped the bench.)
        assert_eq!(opened, sealed, "bob opened every datagram exactly once");
    }
    group.finish();
}

fn ocala_encrypt(c: &mut Criterion) {
    ocala_packets(c, Protection::Encrypt, CipherPolicy::Auto, "");
}

fn ocala_aes(c: &mut Criterion) {
    ocala_packets(c, Protection::Encrypt, CipherPolicy::Aes256Gcm, "aes/");
}

fn ocala_auth(c: &mut Criterion) {
    ocala_packets(c, Protection::Auth, CipherPolicy::Auto, "auth/");
}

fn wireguard(c: &mut Criterion) {
    let (mut a, mut b) = wireguard_pair();
    let mut dst = vec![0u8; 2048];
    let mut group = c.benchmark_group("boringtun");
    for size in SIZES {
        let packet = udp_packet(Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2), size);
        // Sanity: a datagram of packet + 32 B that b opens back into the packet, once.
        let datagram = match a.encapsulate(&packet, &mut dst) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("encapsulate: {other:?}"),
        };
        assert_eq!(datagram.len(), size + 32);
        match b.decapsulate(None, &datagram, &mut dst) {
            TunnResult::WriteToTunnelV4(p, src) => {
                assert_eq!((&p[..], src), (&packet[..], Ipv4Addr::new(10, 9, 0, 1)));
            }
            other => panic!("decapsulate: {other:?}"),
        }
        assert!(
            matches!(b.decapsulate(None, &datagram, &mut dst), TunnResult::Err(_)),
            "replay refused"
        );

        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("encapsulate", size), |bench| {
            bench.iter(|| match a.encapsulate(black_box(&packet), &mut dst) {
                TunnResult::WriteToNetwork(p) => black_box(p.len()),
                other => panic!("encapsulate: {other:?}"),
            });
        });
        let (mut sealed, mut opened) = (0usize, 0usize);
        group.bench_function(BenchmarkId::new("decapsulate", size), |bench| {
            let mut scratch = vec![0u8; 2048];
            bench.iter_batched_ref(
                || match a.encapsulate(&packet, &mut scratch) {
                    TunnResult::WriteToNetwork(p) => {
                        sealed += 1;
                        p.to_vec()
                    }
                    other => panic!("encapsulate: {other:?}"),
                },
                |d| match b.decapsulate(None, black_box(d), &mut dst) {
                    TunnResult::WriteToTunnelV4(p, _) => {
                        opened += 1;
                        black_box(p.len())
                    }
                    other => panic!("decapsulate: {other:?}"),
                },
                BatchSize::SmallInput,
            );
        });
        // (Both zero when a filter skipped the bench.)
        assert_eq!(opened, sealed, "b opened every datagram exactly once");
    }
    group.finish();
}

/// Fresh engines per handshake, made in chunks of this many outside the timing.
const CHUNK: u64 = 32;

/// Checks that the handshake on `net` went all the way: alice's app has its answer, the path
/// is up at alice and accepted at bob, and nothing was refused.
fn check_handshake(net: &Net, alice_cfg: &Config, id: u16) {
    let alice = &net.nodes[Pair::ALICE];
    let answer = alice.tun.iter().find_map(|p| dns_answer(alice_cfg, p, id));
    assert!(
        matches!(answer, Some(Ok(ref a)) if !a.is_empty()),
        "{answer:?}"
    );
    let up = |node: usize, want: &dyn Fn(&Event) -> bool| net.nodes[node].events.iter().any(want);
    assert!(up(
        Pair::ALICE,
        &|e| matches!(e, Event::PathUp { name, .. } if name == "bob.udp")
    ));
    assert!(up(Pair::BOB, &|e| matches!(
        e,
        Event::PathAccepted { name, .. } if name == "alice.udp"
    )));
    for node in [Pair::ALICE, Pair::BOB] {
        assert!(
            !up(node, &|e| matches!(
                e,
                Event::Dropped { .. } | Event::SetupFailed { .. }
            )),
            "{:?}",
            net.nodes[node].events
        );
    }
}

fn handshake(c: &mut Criterion) {
    let (a, b) = (overlay_addr(1), overlay_addr(2));
    let ca = TestCa::new(0xca);
    let alice_cfg = secure_node_config("alice", &[("bob", b)], Protection::Encrypt, &ca, 1);
    let bob_cfg = secure_node_config("bob", &[("alice", a)], Protection::Encrypt, &ca, 2);
    const ID: u16 = 0x5151;
    let query = dns_query_packet(&alice_cfg, ID, "bob.udp", 50_000);

    let mut one = Pair::start(alice_cfg.clone(), bob_cfg.clone());
    one.tun_input(Pair::ALICE, &query);
    check_handshake(&one, &alice_cfg, ID);

    c.bench_function("secure/handshake", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(CHUNK);
                let mut nets: Vec<Net> = (0..n)
                    .map(|_| Pair::start(alice_cfg.clone(), bob_cfg.clone()))
                    .collect();
                let start = std::time::Instant::now();
                for net in &mut nets {
                    net.tun_input(Pair::ALICE, black_box(&query));
                }
                total += start.elapsed();
                for net in &nets {
                    check_handshake(net, &alice_cfg, ID);
                }
                done += n;
            }
            total
        });
    });
}

criterion_group!(
    benches,
    ocala_encrypt,
    ocala_aes,
    wireguard,
    ocala_auth,
    handshake
);
criterion_main!(benches);
