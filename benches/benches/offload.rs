//! ocalad's software offloads on their own, without the engine or system calls: cutting one
//! 64 KiB TCP super-packet from the TUN into segments (in place, checksums left partial), and
//! joining the 48 segments of one flow that the engine delivers into one vectored TUN write.
//! Criterion reports the time per super-packet; throughput is its payload.
//!
//! `cargo bench -p ocala-benches --bench offload`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ocala_mio::offload::coalesce::{Coalescer, Delivered, Listed};
use ocala_mio::offload::segment;
use ocala_mio::offload::vnet::{self, VnetHdr};
use std::hint::black_box;

/// Segment payload: what a 1400-byte path MTU leaves TCP over IPv4 inside ocala.
const MSS: usize = 1348;
/// Segments in one super-packet: as many as fit 64 KiB.
const SEGMENTS: usize = 48;

/// An IPv4 TCP packet from 10.0.0.1:40000 to 10.0.0.2:5201 with `payload` after a 20-byte
/// header, sequence number `seq`, only ACK set. Checksums are not computed: the offloads
/// neither need them here (the super-packet's is partial, the joined segments are authentic).
fn tcp_packet(seq: u32, payload: usize) -> Vec<u8> {
    let total = 40 + payload;
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    p.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&5201u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn offload(c: &mut Criterion) {
    let mut group = c.benchmark_group("offload");
    group.throughput(Throughput::Bytes((SEGMENTS * MSS) as u64));

    let super_packet = tcp_packet(1000, SEGMENTS * MSS);
    let hdr = VnetHdr {
        flags: vnet::NEEDS_CSUM,
        gso_type: vnet::GSO_TCPV4,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    group.bench_function("split_64k", |b| {
        b.iter_batched_ref(
            || super_packet.clone(),
            |p| {
                let mut bytes = 0;
                let n = segment::split(&hdr, p, &mut |s, partial| {
                    bytes += s.len();
                    black_box(partial);
                })
                .expect("a valid super-packet");
                assert_eq!(n, SEGMENTS);
                bytes
            },
            BatchSize::SmallInput,
        );
    });

    let segments: Vec<Vec<u8>> = (0..SEGMENTS)
        .map(|i| tcp_packet(1000 + (i * MSS) as u32, MSS))
        .collect();
    let authentic = |_: &Vec<u8>| Delivered {
        authentic: true,
        partial: None,
    };
    let mut coalescer = Coalescer::new(true);
    group.bench_function("coalesce_48", |b| {
        b.iter(|| {
            let mut writes = 0;
            let batch = Listed {
                packets: &segments,
                about: authentic,
            };
            coalescer.write(&batch, &mut |parts| {
                writes += 1;
                black_box(parts);
            });
            assert_eq!(writes, 1, "one flow, one write");
        });
    });
    group.finish();
}

criterion_group!(benches, offload);
criterion_main!(benches);
