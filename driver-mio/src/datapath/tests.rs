//! The send half through real loopback sockets: what the writer thread sends leaves in the
//! order the engine made it, across batches it took and batches the engine thread wrote.

use super::Datapath;
use crate::offload::coalesce::Packets;
use crate::socket::OverlaySocket;
use ocala_engine::{Config, Ecn, Engine, InPlace, Instant, OverlayId, Packet};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Batches of these sizes, in turn: the small ones are written by the engine thread when
/// the writer is idle, the large ones are handed to it.
const SIZES: [usize; 6] = [1, 20, 3, 40, 2, 16];
const ROUNDS: usize = 30;
const LEN: usize = 1000;

fn datagram(seq: u32) -> Packet {
    let mut bytes = vec![0u8; LEN];
    bytes[..4].copy_from_slice(&seq.to_be_bytes());
    Packet::from_slice(&bytes)
}

/// Receives `count` datagrams on `sink` on a thread of its own (so that its buffer keeps
/// draining while batches are sent) and gives their sequence numbers.
fn receive(sink: UdpSocket, count: usize) -> std::thread::JoinHandle<Vec<u32>> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let mut seqs = Vec::with_capacity(count);
        while seqs.len() < count {
            let Ok((len, _)) = sink.recv_from(&mut buf) else {
                break;
            };
            assert_eq!(len, LEN);
            seqs.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
        seqs
    })
}

/// Asks for a receive buffer that holds every datagram of the test (as root; otherwise as
/// much as the system's limit allows).
fn big_buffer(socket: &UdpSocket) {
    let bytes: libc::c_int = 16 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: both options take an int, passed by pointer with its size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}

fn sends_in_order(threads: u8) {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    big_buffer(&sink);
    sink.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout");
    let to = sink.local_addr().expect("its address");
    let total = ROUNDS * SIZES.iter().sum::<usize>();
    let receiver = receive(sink, total);
    let from: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let socket = OverlaySocket::bind(from, true).expect("the overlay socket");
    let mut dp = Datapath::new(None, vec![socket], threads, &[]).expect("the data path");
    let mut engine = Engine::new(Config::default(), [7; 32], Instant::ZERO).expect("an engine");

    let mut seq = 0u32;
    for _ in 0..ROUNDS {
        for n in SIZES {
            for _ in 0..n {
                // Some datagrams ECN-capable: a GSO run ends where the field changes.
                let ecn = if seq.is_multiple_of(5) {
                    Ecn::Ect0
                } else {
                    Ecn::NotEct
                };
                dp.transmit(OverlayId(0), to, datagram(seq), ecn);
                seq += 1;
            }
            dp.flush(&mut engine);
        }
        // Now and then a pause, so the sink keeps up on a loaded machine.
        std::thread::sleep(Duration::from_millis(2));
    }
    let seqs = receiver.join().expect("the receiver");
    let wrong = (0..).zip(&seqs).find(|(i, s)| *i != **s);
    assert_eq!(wrong, None, "(position, datagram) out of order");
    assert_eq!(seqs.len(), seq as usize, "every datagram arrived");
    let stats = dp.stats();
    assert_eq!(stats.sent.udp_datagrams_out, u64::from(seq));
    assert_eq!(stats.sent.udp_send_errors, 0);
    assert_eq!(stats.threads, threads);
    if threads == 2 {
        assert!(stats.handed_off > 0, "{stats:?}");
        assert!(
            stats.handed_off < (ROUNDS * SIZES.len()) as u64,
            "{stats:?}"
        );
    } else {
        assert_eq!(stats.handed_off, 0);
    }
}

#[test]
fn the_engine_thread_sends_in_order() {
    sends_in_order(1);
}

#[test]
fn the_writer_thread_sends_in_order_with_the_engine_threads_own_writes() {
    sends_in_order(2);
}

#[test]
fn a_cpu_the_kernel_refuses_stops_the_start_and_names_the_key() {
    // On a thread of its own: a pin that succeeded would outlast the test.
    std::thread::spawn(|| {
        let allowed = crate::affinity::allowed().expect("this thread's CPUs");
        let (missing, first) = (crate::affinity::MAX_CPUS - 1, allowed[0]);
        assert!(!allowed.contains(&missing), "{allowed:?}");
        let from: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let socket = OverlaySocket::bind(from, true).expect("the overlay socket");
        let Err(e) = Datapath::new(None, vec![socket], 2, &[missing]) else {
            panic!("CPU {missing} was taken");
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "daemon.cpus: pinning the engine thread to CPU {missing}:"
            )) && text.contains(&format!("this process may run on CPUs {first}")),
            "{text}"
        );
        let socket = OverlaySocket::bind(from, true).expect("the overlay socket");
        let Err(e) = Datapath::new(None, vec![socket], 2, &[first, missing]) else {
            panic!("CPU {missing} was taken");
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "daemon.cpus: pinning the writer thread to CPU {missing}:"
            )),
            "{text}"
        );
    })
    .join()
    .expect("the checks");
}

/// Receives into `dp`'s buffers what `peer` sends to `at`, one datagram.
fn receive_one(dp: &mut Datapath, peer: &UdpSocket, at: SocketAddr, bytes: &[u8]) {
    peer.send_to(bytes, at).expect("sent");
    for _ in 0..500 {
        match dp.receive(0, 1) {
            Ok(1) => return,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    panic!("nothing arrived");
}

/// A packet the engine delivered in place stays where it arrived until its batch is
/// written, while the next receive reuses the receive buffers: its buffer goes with the
/// batch, and a spare takes its place.
#[test]
fn a_packet_delivered_in_place_goes_with_its_batch_past_the_next_receive() {
    let mut socket = OverlaySocket::bind("127.0.0.1:0".parse().expect("an address"), false)
        .expect("the overlay socket");
    let at = socket.source().local_addr().expect("its address");
    let peer = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    let mut dp = Datapath::new(None, vec![socket], 1, &[]).expect("the data path");
    let mut engine = Engine::new(Config::default(), [7; 32], Instant::ZERO).expect("an engine");

    receive_one(&mut dp, &peer, at, b"label|packet");
    // This engine has no path, so the datagram is dropped; the message is being fed all
    // the same, as if it had been delivered from.
    assert_eq!(dp.feed(0, 0, &mut engine, Instant::ZERO), 1);
    let d = InPlace {
        datagram: 0,
        range: 6..12,
        partial: None,
    };
    assert_eq!(dp.lent(&d), Some(&b"packet"[..]));
    let outside = InPlace {
        datagram: 1,
        ..d.clone()
    };
    assert_eq!(dp.lent(&outside), None, "no second datagram");
    dp.deliver_lent(d.clone());
    assert_eq!(dp.lent(&d), Some(&b"packet"[..]), "kept with the batch");

    receive_one(&mut dp, &peer, at, b"overwrites the buffers");
    assert_eq!(dp.out.packet(0), Some(&b"packet"[..]));
    dp.flush(&mut engine);
    assert_eq!(dp.lent(&d), None, "nothing lent once the batch is written");
}
