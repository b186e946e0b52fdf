//! Once warm, the data path does not touch the heap: sending, receiving and relaying a
//! packet only reuse pooled buffers (engine/src/packet.rs, engine/src/oci/forward.rs).
//!
//! A counting global allocator counts allocations made by the current thread while a
//! thread-local switch is on, so tests running in parallel do not disturb each other.

use ocala_benches::{
    receive, send, send_into, udp_packet, Chain, Drained, I3Trio, LanChain, LegacyChain, Pair,
};
use ocala_engine::config::Protection;
use ocala_engine::Instant;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations this thread made meanwhile, with its result.
fn allocations<R>(f: impl FnOnce() -> R) -> (usize, R) {
    // Only this thread flips its own switch, but the counter is shared: take the difference
    // of a count that only counting threads move, with one counting thread at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::Relaxed) - before, r)
}

const PACKETS: usize = 1000;
/// Time between packets in the counted window: 10 s in all, so the udp module's 5 s
/// keepalive tick fires in it too.
const GAP: Duration = Duration::from_millis(10);

/// Allocations per step, summed over the window, and what the steps produced.
#[derive(Debug, Default)]
struct Tally {
    allocations: usize,
    out: Drained,
}

impl Tally {
    fn add(&mut self, (n, d): (usize, Drained)) {
        self.allocations += n;
        self.out.transmits += d.transmits;
        self.out.tun_writes += d.tun_writes;
        self.out.events += d.events;
        self.out.upstream += d.upstream;
        self.out.bytes += d.bytes;
    }
}

#[test]
fn the_counter_sees_allocations() {
    let (n, v) = allocations(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(n >= 1, "the counting allocator must notice a Vec");
    let (n, _) = allocations(|| 2 + 2);
    assert_eq!(n, 0);
}

#[test]
fn one_hop_send_and_receive_do_not_allocate() {
    let mut pair = Pair::new();
    let (alice_addr, bob_addr) = (
        pair.net.nodes[Pair::ALICE].addr,
        pair.net.nodes[Pair::BOB].addr,
    );
    let bob_tun = pair.net.nodes[Pair::BOB].cfg.handles.tun_v4;
    let alice_at_bob = pair.net.bound(Pair::BOB, "alice.udp");

    for size in [64, 1200] {
        let to_bob = pair.packet_to_bob(size);
        let to_alice = udp_packet(bob_tun, alice_at_bob, size);
        // Warm up through the network, both ways, and capture one datagram each way.
        for _ in 0..50 {
            pair.net.tun_input(Pair::ALICE, &to_bob);
            pair.net.tun_input(Pair::BOB, &to_alice);
        }
        let mut dgram_to_bob = pair.datagram_for_bob(&to_bob);
        let mut back = pair.net.capture_send(Pair::BOB, &to_alice);
        assert_eq!(back.len(), 1);
        let (to, mut dgram_to_alice) = back.pop().unwrap();
        assert_eq!(to, alice_addr);

        let mut now = pair.net.now;
        let [mut a_send, mut b_recv, mut b_send, mut a_recv]: [Tally; 4] = Default::default();
        for _ in 0..PACKETS {
            now = now.saturating_add(GAP);
            let t: Instant = now;
            a_send.add(allocations(|| send(pair.alice(), t, &to_bob)));
            b_recv.add(allocations(|| {
                receive(pair.bob(), t, alice_addr, &mut dgram_to_bob)
            }));
            b_send.add(allocations(|| send(pair.bob(), t, &to_alice)));
            a_recv.add(allocations(|| {
                receive(pair.alice(), t, bob_addr, &mut dgram_to_alice)
            }));
        }
        pair.net.now = now;

        check_steps(&format!("{size} B"), [&a_send, &b_recv, &b_send, &a_recv]);
    }
}

/// Each step of a one-hop exchange (alice send, bob receive, bob send, alice receive) did its
/// job — one datagram or one TUN write per packet, no events — and never touched the heap.
fn check_steps(label: &str, steps: [&Tally; 4]) {
    let names = ["alice send", "bob receive", "bob send", "alice receive"];
    let expected = [(PACKETS, 0), (0, PACKETS), (PACKETS, 0), (0, PACKETS)];
    for ((what, tally), (transmits, writes)) in names.iter().zip(steps).zip(expected) {
        assert_eq!(
            (tally.out.transmits, tally.out.tun_writes, tally.out.events),
            (transmits, writes, 0),
            "{label}: {what}: {tally:?}"
        );
        assert_eq!(
            tally.allocations, 0,
            "{label}: {what} of {PACKETS} packets allocated"
        );
    }
}

/// A warm one-hop path protected `mode`: 1000 packets of 1200 B each way, every one sealed by
/// the sender and opened by the receiver (each datagram fed once: the receiver refuses
/// replays). The datagram goes from one engine to the other through a buffer reserved up
/// front, so the only heap traffic that could show up is the engines' own.
fn secure_one_hop_does_not_allocate(mode: Protection) {
    let mut pair = Pair::secure(mode);
    let (alice_addr, bob_addr) = (
        pair.net.nodes[Pair::ALICE].addr,
        pair.net.nodes[Pair::BOB].addr,
    );
    let bob_tun = pair.net.nodes[Pair::BOB].cfg.handles.tun_v4;
    let alice_at_bob = pair.net.bound(Pair::BOB, "alice.udp");
    let size = 1200;
    let to_bob = pair.packet_to_bob(size);
    let to_alice = udp_packet(bob_tun, alice_at_bob, size);
    for _ in 0..50 {
        pair.net.tun_input(Pair::ALICE, &to_bob);
        pair.net.tun_input(Pair::BOB, &to_alice);
    }
    assert!(pair.net.nodes[Pair::BOB].tun.len() >= 50);
    assert!(pair.net.nodes[Pair::ALICE].tun.len() >= 50);

    let mut wire = Vec::with_capacity(4096);
    let mut now = pair.net.now;
    let [mut a_send, mut b_recv, mut b_send, mut a_recv]: [Tally; 4] = Default::default();
    let mut sealed = true;
    for _ in 0..PACKETS {
        now = now.saturating_add(GAP);
        let t: Instant = now;
        a_send.add(allocations(|| {
            send_into(pair.alice(), t, &to_bob, &mut wire)
        }));
        // Encrypted, the app's payload is nowhere in the datagram.
        sealed &= !wire.windows(64).any(|w| w == &to_bob[size - 64..]);
        b_recv.add(allocations(|| {
            receive(pair.bob(), t, alice_addr, &mut wire)
        }));
        b_send.add(allocations(|| {
            send_into(pair.bob(), t, &to_alice, &mut wire)
        }));
        sealed &= !wire.windows(64).any(|w| w == &to_alice[size - 64..]);
        a_recv.add(allocations(|| {
            receive(pair.alice(), t, bob_addr, &mut wire)
        }));
    }
    pair.net.now = now;
    assert_eq!(sealed, mode == Protection::Encrypt, "{mode:?}");

    check_steps(&format!("{mode:?}"), [&a_send, &b_recv, &b_send, &a_recv]);
    // Bob's apps got every packet whole.
    assert_eq!(b_recv.out.bytes, PACKETS * size);
    assert_eq!(a_recv.out.bytes, PACKETS * size);
}

#[test]
fn encrypted_one_hop_send_and_receive_do_not_allocate() {
    secure_one_hop_does_not_allocate(Protection::Encrypt);
}

#[test]
fn authenticated_one_hop_send_and_receive_do_not_allocate() {
    secure_one_hop_does_not_allocate(Protection::Auth);
}

#[test]
fn gateway_relay_does_not_allocate() {
    let mut chain = Chain::new();
    let (alice_addr, carol_addr) = (
        chain.net.nodes[Chain::ALICE].addr,
        chain.net.nodes[Chain::CAROL].addr,
    );
    let carol_tun = chain.net.nodes[Chain::CAROL].cfg.handles.tun_v4;
    let alice_at_carol = chain.net.bound(Chain::CAROL, "alice.udp_gw.udp");

    let to_carol = chain.packet_to_carol(1200);
    let to_alice = udp_packet(carol_tun, alice_at_carol, 1200);
    for _ in 0..50 {
        chain.net.tun_input(Chain::ALICE, &to_carol);
        chain.net.tun_input(Chain::CAROL, &to_alice);
    }
    assert!(chain.net.nodes[Chain::CAROL].tun.len() >= 50);
    assert!(chain.net.nodes[Chain::ALICE].tun.len() >= 50);
    let mut from_alice = chain.datagram_for_gw(&to_carol);
    let mut back = chain.net.capture_send(Chain::CAROL, &to_alice);
    assert_eq!(back.len(), 1);
    let mut from_carol = back.pop().unwrap().1;

    let mut now = chain.net.now;
    let [mut forth, mut back_again]: [Tally; 2] = Default::default();
    for _ in 0..PACKETS {
        now = now.saturating_add(GAP);
        let t: Instant = now;
        forth.add(allocations(|| {
            receive(chain.gw(), t, alice_addr, &mut from_alice)
        }));
        back_again.add(allocations(|| {
            receive(chain.gw(), t, carol_addr, &mut from_carol)
        }));
    }
    for (what, tally) in [("alice to carol", &forth), ("carol to alice", &back_again)] {
        assert_eq!(
            (tally.out.transmits, tally.out.tun_writes, tally.out.events),
            (PACKETS, 0, 0),
            "{what}: {tally:?}"
        );
        assert_eq!(tally.allocations, 0, "relaying {what} allocated");
    }
}

/// Over i3, alice's send, the server's forward (match the top id among the triggers, copy the
/// datagram into a pooled buffer, rewrite it there) and bob's delivery make no allocation
/// once warm, through the relay and on a shortcut.
#[test]
fn i3_send_forward_and_delivery_do_not_allocate() {
    for name in ["bob.i3", "bob.shortcut.i3"] {
        let mut trio = I3Trio::new(name);
        let size = 1200;
        let to_bob = trio.packet_to_bob(size);
        for _ in 0..50 {
            trio.net.tun_input(I3Trio::ALICE, &to_bob);
        }
        assert!(trio.net.nodes[I3Trio::BOB].tun.len() >= 50, "{name}");
        let alice = trio.net.nodes[I3Trio::ALICE].addr;
        let server = trio.net.nodes[I3Trio::SERVER].addr;
        let (to, mut sent) = trio.datagram_for(&to_bob);
        // Through the server, the datagram bob gets is the server's rewrite of alice's.
        let (from, mut at_bob) = if to == server {
            let mut fwd = trio.net.capture_receive(I3Trio::SERVER, alice, &mut sent);
            assert_eq!(fwd.len(), 1, "{name}: one forward");
            let (to, bytes) = fwd.pop().expect("one forward");
            assert_eq!(to, trio.net.nodes[I3Trio::BOB].addr, "{name}");
            (server, bytes)
        } else {
            (alice, sent.clone())
        };

        let mut now = trio.net.now;
        let [mut a_send, mut s_fwd, mut b_recv]: [Tally; 3] = Default::default();
        for _ in 0..PACKETS {
            now = now.saturating_add(GAP);
            let t: Instant = now;
            let nodes = &mut trio.net.nodes;
            a_send.add(allocations(|| {
                send(&mut nodes[I3Trio::ALICE].engine, t, &to_bob)
            }));
            if from == server {
                s_fwd.add(allocations(|| {
                    receive(&mut nodes[I3Trio::SERVER].engine, t, alice, &mut sent)
                }));
            }
            b_recv.add(allocations(|| {
                receive(&mut nodes[I3Trio::BOB].engine, t, from, &mut at_bob)
            }));
        }
        trio.net.now = now;
        let forwards = if from == server { PACKETS } else { 0 };
        for (what, tally, transmits, writes) in [
            ("alice send", &a_send, PACKETS, 0),
            ("server forward", &s_fwd, forwards, 0),
            ("bob delivery", &b_recv, 0, PACKETS),
        ] {
            assert_eq!(
                (tally.out.transmits, tally.out.tun_writes, tally.out.events),
                (transmits, writes, 0),
                "{name}: {what}: {tally:?}"
            );
            assert_eq!(tally.allocations, 0, "{name}: {what} allocated");
        }
    }
}

/// A RON member relaying for two others (DATA in, the same datagram out with the relayed flag,
/// from a pooled buffer) makes no allocation once warm.
#[test]
fn ron_relay_does_not_allocate() {
    use ocala_engine::config::{HexBytes, OverlayConfig};
    use ocala_engine::ocd::ron::wire::{DataHeader, RonPacket};
    use ocala_engine::ocd::ron::{member_id, RonConfig};
    use std::net::SocketAddr;
    let key = [0x5a; 32];
    let addr = |h: u8| SocketAddr::from(([10, 0, 0, h], 4791));
    let cfg = ocala_engine::Config {
        overlays: vec![OverlayConfig {
            name: "ron".into(),
            module: "ron".into(),
            local_name: "carol".into(),
            port: 4791,
            keepalive_secs: 25,
            address_book: [("alice".to_string(), addr(1)), ("bob".to_string(), addr(2))].into(),
            i3: Default::default(),
            ron: RonConfig {
                auth_key: Some(HexBytes(key.to_vec())),
                // Probes once a minute: the window holds relayed data only.
                probe_ms: 60_000,
                link_state_ms: 60_000,
                ..RonConfig::default()
            },
        }],
        ..ocala_engine::Config::default()
    };
    let mut e = ocala_engine::Engine::new(cfg, [3; 32], Instant::ZERO).expect("config");
    let h = DataHeader {
        flags: 0,
        src: member_id("alice.ron"),
        dst: member_id("bob.ron"),
        src_tunnel: 1,
        dst_tunnel: 1,
        metric: 0,
    };
    let mut data = Vec::new();
    RonPacket::Data(h, &[0x61; 1200]).encode(&key, &mut data);
    let mut now = Instant::from_nanos(1_000_000_000);
    for _ in 0..50 {
        receive(&mut e, now, addr(1), &mut data);
    }
    let mut relay = Tally::default();
    for _ in 0..PACKETS {
        now = now.saturating_add(GAP);
        let t = now;
        relay.add(allocations(|| receive(&mut e, t, addr(1), &mut data)));
    }
    assert_eq!(
        (relay.out.transmits, relay.out.tun_writes, relay.out.events),
        (PACKETS, 0, 0),
        "{relay:?}"
    );
    assert_eq!(relay.allocations, 0, "relaying {PACKETS} packets allocated");
}

#[test]
fn legacy_server_gateway_does_not_allocate() {
    let mut chain = LegacyChain::new();
    let alice_addr = chain.net.nodes[LegacyChain::ALICE].addr;
    let to_server = chain.packet_to_server(1200);
    let from_server = chain.packet_from_server(1200);
    for _ in 0..50 {
        chain.net.tun_input(LegacyChain::ALICE, &to_server);
        chain.net.tun_input(LegacyChain::GW, &from_server);
    }
    assert!(chain.net.nodes[LegacyChain::GW].tun.len() >= 50);
    assert!(chain.net.nodes[LegacyChain::ALICE].tun.len() >= 50);
    let mut datagram = chain.datagram_for_gw(&to_server);

    let mut now = chain.net.now;
    let [mut egress, mut ingress]: [Tally; 2] = Default::default();
    for _ in 0..PACKETS {
        now = now.saturating_add(GAP);
        let t: Instant = now;
        egress.add(allocations(|| {
            receive(chain.gw(), t, alice_addr, &mut datagram)
        }));
        ingress.add(allocations(|| send(chain.gw(), t, &from_server)));
    }
    assert_eq!(
        (
            egress.out.transmits,
            egress.out.tun_writes,
            egress.out.events
        ),
        (0, PACKETS, 0),
        "{egress:?}"
    );
    assert_eq!(
        (
            ingress.out.transmits,
            ingress.out.tun_writes,
            ingress.out.events
        ),
        (PACKETS, 0, 0),
        "{ingress:?}"
    );
    assert_eq!(egress.allocations, 0, "towards the legacy server allocated");
    assert_eq!(ingress.allocations, 0, "from the legacy server allocated");
}

#[test]
fn legacy_client_gateway_does_not_allocate() {
    let mut lan = LanChain::new(3);
    let packet = lan.packet_from(1, 1200);
    for _ in 0..50 {
        lan.net.tun_input(LanChain::GW, &packet);
    }
    assert!(lan.net.nodes[LanChain::BOB].tun.len() >= 50);
    let mut now = lan.net.now;
    let mut out = Tally::default();
    for _ in 0..PACKETS {
        now = now.saturating_add(GAP);
        let t: Instant = now;
        out.add(allocations(|| send(lan.gw(), t, &packet)));
    }
    assert_eq!(
        (out.out.transmits, out.out.tun_writes, out.out.events),
        (PACKETS, 0, 0),
        "{out:?}"
    );
    assert_eq!(out.allocations, 0, "a LAN client's packet allocated");
}
