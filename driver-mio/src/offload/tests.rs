//! Splitting and joining against each other: what the kernel's TSO would hand over, cut and
//! joined again, must come back as the same stream with valid checksums.

use super::coalesce::{Coalescer, Delivered, Listed};
use super::layout::{self, Layout};
use super::segment::{split, SplitError};
use super::vnet::{self, VnetHdr};

use ocala_engine::wire::checksum;
use ocala_engine::PartialChecksum;

const MSS: usize = 1360;

/// Computes and stores the full transport checksum of `packet` (headers and payload).
fn set_checksum(layout: &Layout, packet: &mut [u8]) {
    let at = layout.l4 + layout.checksum_offset();
    layout::put16(packet, at, 0);
    let seg = &packet[layout.l4..];
    let c = checksum::add(layout.pseudo(packet, seg.len()), checksum::sum(seg));
    layout::put16(packet, at, checksum::finish(c));
}

/// A TCP packet with valid checksums from 10.0.0.1:40000 (or fd00::1) to port 5201.
fn tcp_packet(v6: bool, sport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = if v6 {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, layout::PROTO_TCP, 64];
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    } else {
        vec![
            0x45,
            0,
            0,
            0,
            0x12,
            0x34,
            0x40,
            0,
            64,
            layout::PROTO_TCP,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ]
    };
    let l4 = p.len();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&5201u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&777u32.to_be_bytes());
    p.extend_from_slice(&[0x50, flags, 2, 0, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    let layout = Layout::of(&p, layout::PROTO_TCP, None).unwrap();
    assert_eq!(layout.l4, l4);
    let total = p.len();
    layout.set_lengths(&mut p, total);
    set_checksum(&layout, &mut p);
    p
}

/// A UDP datagram with valid checksums from 10.0.0.1 (or fd00::1) port `sport` to port 443.
fn udp_packet(v6: bool, sport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = tcp_packet(v6, sport, 0, 0, &[]);
    let l4 = if v6 { 40 } else { 20 };
    p.truncate(l4);
    p[if v6 { 6 } else { 9 }] = layout::PROTO_UDP;
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&443u16.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    p.extend_from_slice(payload);
    let l = Layout::of(&p, layout::PROTO_UDP, None).unwrap();
    let total = p.len();
    l.set_lengths(&mut p, total);
    set_checksum(&l, &mut p);
    p
}

/// What a TUN with USO hands over for `payload` sent with `UDP_SEGMENT` = `size`: one
/// datagram of it all, its checksum partial, a GSO header.
fn udp_super_packet(v6: bool, payload: &[u8], size: usize) -> (VnetHdr, Vec<u8>) {
    let mut p = udp_packet(v6, 40000, payload);
    let l = Layout::of(&p, layout::PROTO_UDP, None).unwrap();
    let partial = checksum::fold(l.pseudo(&p, p.len() - l.l4));
    layout::put16(&mut p, l.l4 + 6, partial);
    let hdr = VnetHdr {
        flags: vnet::NEEDS_CSUM,
        gso_type: vnet::GSO_UDP_L4,
        hdr_len: l.payload as u16,
        gso_size: size as u16,
        csum_start: l.l4 as u16,
        csum_offset: 6,
    };
    (hdr, p)
}

/// What a TUN with TSO hands over for `payload` sent at once: one packet, a GSO header.
fn super_packet(v6: bool, payload: &[u8], flags: u8) -> (VnetHdr, Vec<u8>) {
    super_packet_cut_at(v6, payload, flags, MSS)
}

/// A super-packet whose segments are to carry `mss` bytes each.
fn super_packet_cut_at(v6: bool, payload: &[u8], flags: u8, mss: usize) -> (VnetHdr, Vec<u8>) {
    let p = tcp_packet(v6, 40000, 1000, flags, payload);
    let l4 = if v6 { 40 } else { 20 };
    let hdr = VnetHdr {
        flags: vnet::NEEDS_CSUM,
        gso_type: if v6 { vnet::GSO_TCPV6 } else { vnet::GSO_TCPV4 },
        hdr_len: (l4 + 20) as u16,
        gso_size: mss as u16,
        csum_start: l4 as u16,
        csum_offset: 16,
    };
    (hdr, p)
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Packets as `split` hands them on, each with where its checksum is partial.
type Cut = Vec<(Vec<u8>, Option<PartialChecksum>)>;

/// The packets `split` hands on.
fn split_raw(hdr: &VnetHdr, packet: &mut [u8]) -> Result<Cut, SplitError> {
    let mut out = Vec::new();
    let count = split(hdr, packet, &mut |p, partial| {
        out.push((p.to_vec(), partial))
    })?;
    assert_eq!(count, out.len());
    Ok(out)
}

/// The packets `split` hands on, their checksums completed as the engine completes them for
/// a peer that takes no partial ones.
fn split_all(hdr: &VnetHdr, packet: &mut [u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let raw = split_raw(hdr, packet)?;
    Ok(raw
        .into_iter()
        .map(|(mut p, partial)| {
            if let Some(c) = partial {
                assert!(c.complete(&mut p));
            }
            p
        })
        .collect())
}

fn coalesce_all(packets: &[Vec<u8>]) -> (Vec<(VnetHdr, Vec<u8>)>, Coalescer) {
    coalesce_all_as(packets, false)
}

/// Like `coalesce_all`, every packet opened on a secure path when `authentic`.
fn coalesce_all_as(packets: &[Vec<u8>], authentic: bool) -> (Vec<(VnetHdr, Vec<u8>)>, Coalescer) {
    coalesce_about(packets, |_| Delivered {
        authentic,
        partial: None,
    })
}

/// Joins `packets` as the engine delivers them, with what it said of each.
fn coalesce_about(
    packets: &[Vec<u8>],
    about: impl Fn(&Vec<u8>) -> Delivered,
) -> (Vec<(VnetHdr, Vec<u8>)>, Coalescer) {
    let mut c = Coalescer::new(true);
    let mut writes = Vec::new();
    c.write(&Listed { packets, about }, &mut |parts| {
        let mut whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let (hdr, packet) = VnetHdr::parse(&mut whole).unwrap();
        writes.push((hdr, packet.to_vec()));
    });
    (writes, c)
}

#[test]
fn a_super_packet_splits_into_valid_consecutive_segments() {
    // Segments are cut in place, each one's headers over the tail of the one before: also
    // when a segment's payload is shorter than its headers.
    for (v6, mss) in [(false, MSS), (true, MSS), (false, 7), (true, 30)] {
        let data = payload(10_000);
        let (hdr, mut p) =
            super_packet_cut_at(v6, &data, layout::ACK | layout::PSH | layout::CWR, mss);
        let raw = split_raw(&hdr, &mut p.clone()).unwrap();
        let at = PartialChecksum {
            start: if v6 { 40 } else { 20 },
            offset: 16,
        };
        assert!(
            raw.iter().all(|(_, partial)| *partial == Some(at)),
            "checksums are left partial, for the engine"
        );
        let segs = split_all(&hdr, &mut p).unwrap();
        assert_eq!(segs.len(), 10_000usize.div_ceil(mss));
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let l = Layout::of(s, layout::PROTO_TCP, None).unwrap();
            assert!(l.checksums_hold(s), "segment {i} checksum");
            assert_eq!(layout::get32(s, l.l4 + 4), 1000 + (i * mss) as u32);
            let flags = s[l.l4 + 13];
            let last = i + 1 == segs.len();
            assert_eq!(flags & layout::PSH != 0, last, "PSH only on the last");
            assert_eq!(flags & layout::CWR != 0, i == 0, "CWR only on the first");
            if !v6 {
                assert_eq!(layout::get16(s, 4), 0x1234 + i as u16, "IPv4 IDs count up");
            }
            assert!(s.len() <= l.payload + mss);
            joined.extend_from_slice(&s[l.payload..]);
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn split_segments_join_back_into_one_write_that_splits_the_same_way() {
    for v6 in [false, true] {
        let (hdr, mut p) = super_packet(v6, &payload(20_000), layout::ACK | layout::PSH);
        let segs = split_all(&hdr, &mut p).unwrap();
        let (writes, c) = coalesce_all(&segs);
        assert_eq!(writes.len(), 1, "one flow, one write");
        assert_eq!(c.stats.joined, segs.len() as u64);
        let (whdr, mut wpacket) = writes.into_iter().next().unwrap();
        assert_eq!(whdr.gso_size as usize, MSS);
        assert_eq!(whdr.gso_type, hdr.gso_type);
        assert_eq!(whdr.flags, vnet::NEEDS_CSUM);
        assert_read_as_the_kernel_reads_it(&whdr, &wpacket);
        // The kernel would cut the write exactly as the sender's TSO did.
        assert_eq!(split_all(&whdr, &mut wpacket).unwrap(), segs);
    }
}

/// What the kernel takes from a joined write's headers rather than computing again: the IP
/// length fields (and UDP's), the IPv4 header checksum, and the partial checksum, which it
/// adjusts for each piece's length. `split` recomputes them all, so checking that a joined
/// write cuts back right does not check these.
fn assert_read_as_the_kernel_reads_it(hdr: &VnetHdr, packet: &[u8]) {
    let proto = layout::protocol(packet).unwrap();
    let l = Layout::of(packet, proto, None).unwrap();
    assert_eq!(usize::from(hdr.csum_start), l.l4);
    assert_eq!(usize::from(hdr.csum_offset), l.checksum_offset());
    if l.v6 {
        assert_eq!(usize::from(layout::get16(packet, 4)) + 40, packet.len());
    } else {
        assert_eq!(usize::from(layout::get16(packet, 2)), packet.len());
        assert!(
            checksum::verify(&packet[..l.l4]),
            "the IPv4 header checksum"
        );
    }
    if proto == layout::PROTO_UDP {
        assert_eq!(
            usize::from(layout::get16(packet, l.l4 + 4)),
            packet.len() - l.l4
        );
    }
    let partial = layout::get16(packet, l.l4 + l.checksum_offset());
    assert_eq!(
        partial,
        checksum::fold(l.pseudo(packet, packet.len() - l.l4)),
        "the pseudo-header's sum, with the joined length"
    );
}

#[test]
fn flows_stay_apart_and_other_packets_pass_through() {
    let a: Vec<_> = (0..3)
        .map(|i| tcp_packet(false, 1, 5000 + i * 100, layout::ACK, &[i as u8; 100]))
        .collect();
    let b: Vec<_> = (0..3)
        .map(|i| tcp_packet(false, 2, 9000 + i * 100, layout::ACK, &[9; 100]))
        .collect();
    let udp = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0,
    ];
    let mixed = vec![
        a[0].clone(),
        b[0].clone(),
        udp.clone(),
        a[1].clone(),
        b[1].clone(),
        a[2].clone(),
        b[2].clone(),
    ];
    let (writes, c) = coalesce_all(&mixed);
    assert_eq!(writes.len(), 3);
    assert_eq!(
        writes[0],
        (VnetHdr::default(), udp),
        "written at once, as it came"
    );
    for (w, sport) in writes[1..].iter().zip([1u16, 2]) {
        assert_eq!(w.0.gso_type, vnet::GSO_TCPV4);
        assert_eq!(layout::get16(&w.1, 20), sport);
        assert_eq!(w.1.len(), 40 + 300);
    }
    assert_eq!(c.stats.joined, 6);
}

#[test]
fn gaps_corruption_and_control_flags_end_a_run() {
    let seg = |seq: u32, flags: u8| tcp_packet(false, 1, seq, flags, &[7; 100]);
    let mut corrupt = seg(1200, layout::ACK);
    *corrupt.last_mut().unwrap() ^= 1;
    let packets = vec![
        seg(1000, layout::ACK),
        seg(1100, layout::ACK),
        seg(1300, layout::ACK), // gap: 1200 missing
        corrupt.clone(),        // bad checksum: never joined, and it ends the run before it
        seg(1400, layout::ACK),
        seg(1500, layout::ACK | layout::FIN), // FIN never joins
    ];
    let (writes, _) = coalesce_all(&packets);
    let shapes: Vec<(u8, usize)> = writes.iter().map(|(h, p)| (h.gso_type, p.len())).collect();
    assert_eq!(
        shapes,
        [
            (vnet::GSO_TCPV4, 240),
            (0, 140),
            (0, 140),
            (0, 140),
            (0, 140)
        ],
        "the first two join; each of the rest is written alone"
    );
    assert_eq!(
        writes[2].1, corrupt,
        "the corrupt segment is passed on untouched"
    );
}

/// A segment joins its flow's run only if every header byte is as in the run's first,
/// but those a sender changes between the segments of one send: the IPv4 ID and header
/// checksum, PSH and the TCP checksum (lengths and sequence numbers are checked on their
/// own). Each other byte, changed, keeps the segment apart.
#[test]
fn a_run_takes_only_segments_whose_other_header_bytes_are_equal() {
    for v6 in [false, true] {
        let l4 = if v6 { 40 } else { 20 };
        let first = tcp_packet(v6, 1, 1000, layout::ACK, &[7; 100]);
        let second = tcp_packet(v6, 1, 1100, layout::ACK, &[7; 100]);
        let may_differ =
            |i: usize| (!v6 && [4, 5, 10, 11].contains(&i)) || i == l4 + 16 || i == l4 + 17;
        let lengths_and_seq =
            |i: usize| (if v6 { 4..6 } else { 2..4 }).contains(&i) || (l4 + 4..l4 + 8).contains(&i);
        for i in (0..l4 + 20).filter(|&i| !lengths_and_seq(i)) {
            let mut changed = second.clone();
            let psh = i == l4 + 13;
            changed[i] ^= if psh { layout::PSH } else { 0xFF };
            // Opened on a secure path: the checksums are not summed, only compared.
            let (writes, _) = coalesce_all_as(&[first.clone(), changed], true);
            assert_eq!(writes.len() == 1, psh || may_differ(i), "v6 {v6}, byte {i}");
        }
    }
}

#[test]
fn authentic_segments_join_without_their_checksums_summed_again() {
    let seg = |seq: u32| tcp_packet(false, 1, seq, layout::ACK, &[7; 100]);
    // A wrong checksum in the middle segment: the sum is what tells it apart.
    let mut odd = seg(1100);
    *odd.last_mut().unwrap() ^= 1;
    let packets = vec![seg(1000), odd, seg(1200)];
    let shapes = |authentic| -> Vec<(u8, usize)> {
        let (writes, _) = coalesce_all_as(&packets, authentic);
        writes.iter().map(|(h, p)| (h.gso_type, p.len())).collect()
    };
    assert_eq!(
        shapes(false),
        [(0, 140), (0, 140), (0, 140)],
        "summed: none joins"
    );
    assert_eq!(
        shapes(true),
        [(vnet::GSO_TCPV4, 340)],
        "opened on a secure path: one write"
    );
}

#[test]
fn partial_segments_join_and_a_lone_one_is_written_partial() {
    let at = PartialChecksum {
        start: 20,
        offset: 16,
    };
    // What the engine delivers when the peer left checksums partial: the field holds the
    // pseudo-header sum, which no check would pass.
    let partial = |seq: u32, payload: &[u8]| {
        let mut p = tcp_packet(false, 1, seq, layout::ACK, payload);
        let l = Layout::of(&p, layout::PROTO_TCP, None).unwrap();
        let sum = checksum::fold(l.pseudo(&p, p.len() - 20));
        layout::put16(&mut p, 36, sum);
        p
    };
    let packets = vec![
        partial(1000, &[1; 100]),
        partial(1100, &[2; 100]),
        partial(1200, &[3; 40]),
    ];
    let about = |_: &Vec<u8>| Delivered {
        authentic: true,
        partial: Some(at),
    };
    let (writes, _) = coalesce_about(&packets, about);
    assert_eq!(writes.len(), 1, "joined without a sum");
    let (hdr, mut joined) = writes.into_iter().next().unwrap();
    assert_eq!(
        (hdr.gso_type, hdr.flags),
        (vnet::GSO_TCPV4, vnet::NEEDS_CSUM)
    );
    assert_eq!(split_all(&hdr, &mut joined).unwrap().len(), 3);

    let (writes, _) = coalesce_about(&packets[..1], about);
    let (hdr, packet) = &writes[0];
    assert_eq!(
        *hdr,
        VnetHdr {
            flags: vnet::NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 16,
            ..VnetHdr::default()
        },
        "alone, it is written partial for the kernel to trust"
    );
    assert_eq!(packet, &packets[0]);
}

#[test]
fn a_run_holds_at_most_64_segments() {
    let packets: Vec<_> = (0..100)
        .map(|i| tcp_packet(false, 1, i * 100, layout::ACK, &[i as u8; 100]))
        .collect();
    let (writes, c) = coalesce_all(&packets);
    let shapes: Vec<(u8, usize)> = writes.iter().map(|(h, p)| (h.gso_type, p.len())).collect();
    assert_eq!(
        shapes,
        [(vnet::GSO_TCPV4, 40 + 6400), (vnet::GSO_TCPV4, 40 + 3600)]
    );
    assert_eq!(c.stats.joined, 100);
    let (_, second) = &writes[1];
    assert_eq!(
        layout::get32(second, 24),
        6400,
        "the second write goes on where the first ended"
    );
    assert_eq!(&second[40..140], &[64; 100], "with segment 64's payload");
}

#[test]
fn a_short_segment_closes_the_run() {
    let packets = vec![
        tcp_packet(false, 1, 0, layout::ACK, &[1; 100]),
        tcp_packet(false, 1, 100, layout::ACK, &[1; 50]),
        tcp_packet(false, 1, 150, layout::ACK, &[1; 100]),
    ];
    let (writes, _) = coalesce_all(&packets);
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].1.len(), 40 + 150);
    assert_eq!(writes[0].0.gso_size, 100);
}

#[test]
fn partial_checksums_are_completed_and_bad_headers_refused() {
    let mut p = tcp_packet(false, 1, 0, layout::ACK, &[3; 33]);
    let good = p.clone();
    // What the kernel hands over with checksum offload: the pseudo-header sum only.
    let partial = ocala_engine::wire::checksum::fold(
        Layout::of(&p, layout::PROTO_TCP, None)
            .unwrap()
            .pseudo(&p, p.len() - 20),
    );
    layout::put16(&mut p, 36, partial);
    let hdr = VnetHdr {
        flags: vnet::NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 16,
        ..VnetHdr::default()
    };
    let at = PartialChecksum {
        start: 20,
        offset: 16,
    };
    assert_eq!(
        split_raw(&hdr, &mut p.clone()).unwrap(),
        vec![(p.clone(), Some(at))],
        "handed on as the kernel left it"
    );
    assert_eq!(split_all(&hdr, &mut p).unwrap(), vec![good.clone()]);

    let outside = VnetHdr {
        csum_start: 70,
        ..hdr
    };
    assert_eq!(
        split_all(&outside, &mut good.clone()),
        Err(SplitError::ChecksumOutside)
    );
    let udp_gso = VnetHdr {
        gso_type: vnet::GSO_UDP_L4,
        gso_size: 100,
        ..hdr
    };
    assert_eq!(
        split_all(&udp_gso, &mut good.clone()),
        Err(SplitError::NotAsTyped)
    );
    // UDP fragmentation offload (UFO, type 3) is never asked for.
    let ufo = VnetHdr {
        gso_type: 3,
        ..udp_gso
    };
    assert_eq!(
        split_all(&ufo, &mut good.clone()),
        Err(SplitError::UnknownGso(3))
    );
    let zero = VnetHdr {
        gso_type: vnet::GSO_TCPV4,
        gso_size: 0,
        ..hdr
    };
    assert_eq!(
        split_all(&zero, &mut good.clone()),
        Err(SplitError::BadSegmentSize)
    );
    let wrong_family = VnetHdr {
        gso_type: vnet::GSO_TCPV6,
        gso_size: 100,
        ..hdr
    };
    assert_eq!(
        split_all(&wrong_family, &mut good.clone()),
        Err(SplitError::NotAsTyped)
    );
    // IPv6 whose TCP header the kernel says starts 300 bytes in: more headers than any
    // segment may carry.
    let mut long = vec![0u8; 400];
    long[0] = 0x60;
    long[300 + 12] = 0x50;
    let deep = VnetHdr {
        gso_type: vnet::GSO_TCPV6,
        gso_size: 100,
        csum_start: 300,
        ..hdr
    };
    assert_eq!(split_all(&deep, &mut long), Err(SplitError::HeadersTooLong));
    let mut cut = good[..30].to_vec();
    let tso = VnetHdr {
        gso_type: vnet::GSO_TCPV4,
        gso_size: 100,
        ..hdr
    };
    assert_eq!(split_all(&tso, &mut cut), Err(SplitError::NotAsTyped));
}

#[test]
fn arbitrary_bytes_never_panic_either_way() {
    // Both halves see bytes from outside: the kernel's reads, and the engine's deliveries of
    // what peers sent. Every prefix of a few real packets, and their bytes flipped, must be
    // handled as data.
    let (tso, p) = super_packet(false, &payload(3000), layout::ACK);
    let (uso, u) = udp_super_packet(true, &payload(3000), 1000);
    let seeds = [
        (tso, p),
        (tso, tcp_packet(true, 1, 0, layout::ACK, &[1; 40])),
        (uso, u),
        (uso, udp_packet(false, 1, &[1; 40])),
    ];
    let mut c = Coalescer::new(true);
    for (hdr, s) in &seeds {
        for cut in 0..s.len().min(120) {
            let mut batch = Vec::new();
            for flip in [None, Some(0usize), Some(9), Some(20 + 12), Some(cut / 2)] {
                let mut b = s[..cut].to_vec();
                if let Some(i) = flip.filter(|i| *i < b.len()) {
                    b[i] ^= 0xa5;
                }
                let mut read = b.clone();
                let _ = split(hdr, &mut read, &mut |p, partial| {
                    assert!(p.len() <= b.len());
                    assert!(partial.is_none_or(|c| c.fits(p.len())));
                });
                batch.push(b);
            }
            let mut written = 0;
            let listed = Listed {
                packets: &batch,
                about: |_: &Vec<u8>| Delivered::default(),
            };
            c.write(&listed, &mut |parts| {
                written += parts.iter().map(|p| p.len()).sum::<usize>();
            });
            let held: usize = batch.iter().map(|b| vnet::LEN + b.len()).sum();
            assert!(written <= held, "no more bytes out than in, with headers");
        }
    }
}

#[test]
fn a_udp_super_packet_splits_into_datagrams_that_join_back_into_one_write() {
    for v6 in [false, true] {
        let data = payload(5000);
        let (hdr, mut p) = udp_super_packet(v6, &data, 1200);
        let datagrams = split_all(&hdr, &mut p).unwrap();
        let sizes: Vec<usize> = datagrams.iter().map(|d| d.len()).collect();
        let head = if v6 { 48 } else { 28 };
        assert_eq!(
            sizes,
            [1200, 1200, 1200, 1200, 200].map(|n| n + head),
            "v6 {v6}"
        );
        let mut ids = Vec::new();
        for (i, d) in datagrams.iter().enumerate() {
            let l = Layout::of(d, layout::PROTO_UDP, None).unwrap();
            assert!(l.checksums_hold(d), "v6 {v6}: datagram {i} checksum");
            assert_eq!(usize::from(layout::get16(d, l.l4 + 4)), d.len() - l.l4);
            assert_eq!(
                &d[l.payload..],
                &data[i * 1200..(i * 1200 + 1200).min(5000)]
            );
            ids.push(layout::get16(d, 4));
        }
        if !v6 {
            assert_eq!(ids, [0x1234, 0x1235, 0x1236, 0x1237, 0x1238]);
        }

        let (writes, c) = coalesce_all(&datagrams);
        assert_eq!(writes.len(), 1, "v6 {v6}: one write");
        assert_eq!(c.stats.joined, 5);
        let (w, mut joined) = writes.into_iter().next().unwrap();
        assert_eq!(
            (w.gso_type, w.gso_size, w.csum_offset, w.hdr_len),
            (vnet::GSO_UDP_L4, 1200, 6, head as u16)
        );
        assert_read_as_the_kernel_reads_it(&w, &joined);
        assert_eq!(split_all(&w, &mut joined).unwrap(), datagrams, "v6 {v6}");
    }
}

#[test]
fn udp_datagrams_join_only_where_the_tun_takes_them_and_only_like_the_kernel() {
    let flow = |sport: u16, len: usize| udp_packet(false, sport, &payload(len));
    // Without USO every datagram is written as it came.
    let same = vec![flow(1, 1000), flow(1, 1000), flow(1, 1000)];
    let mut c = Coalescer::new(false);
    let mut writes = 0;
    let listed = Listed {
        packets: &same,
        about: |_: &Vec<u8>| Delivered::default(),
    };
    c.write(&listed, &mut |_| writes += 1);
    assert_eq!((writes, c.stats.joined), (3, 0));

    // A shorter datagram ends a run; a longer one starts the next; flows stay apart, each
    // in its order.
    let batch = vec![
        flow(1, 1000),
        flow(2, 500),
        flow(1, 1000),
        flow(2, 500),
        flow(1, 700),
        flow(1, 1000),
        flow(1, 1000),
    ];
    let (writes, _) = coalesce_all(&batch);
    let counts: Vec<(u16, usize)> = writes
        .iter()
        .map(|(h, p)| {
            let n = if h.gso_size == 0 {
                1
            } else {
                (p.len() - 28).div_ceil(usize::from(h.gso_size))
            };
            (layout::get16(p, 20), n)
        })
        .collect();
    assert_eq!(counts, [(1, 3), (2, 2), (1, 2)]);

    // A datagram whose checksum fails, or that was sent without one, is written alone and
    // as it came, between the runs of its flow.
    let mut corrupt = flow(1, 1000);
    corrupt[100] ^= 1;
    let mut unsummed = flow(1, 1000);
    layout::put16(&mut unsummed, 26, 0);
    for odd in [corrupt, unsummed] {
        let batch = vec![flow(1, 1000), flow(1, 1000), odd.clone(), flow(1, 1000)];
        let (writes, c) = coalesce_all(&batch);
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1], (VnetHdr::default(), odd));
        assert_eq!(c.stats.joined, 2);
        // Opened on a secure path, the same bytes would have been joined: the path vouched
        // for them.
        assert_eq!(coalesce_all_as(&batch, true).0.len(), 1);
    }
}

#[test]
fn a_fragment_does_not_overtake_a_run_between_the_same_hosts() {
    // An IPv4 UDP datagram too big for the path, in two fragments: neither shows ports, so
    // either may belong to the pending run of its hosts, which must leave first.
    let whole = udp_packet(false, 1, &payload(2000));
    let fragment = |range: std::ops::Range<usize>, offset: u16, more: bool| {
        let mut f = whole[..20].to_vec();
        f.extend_from_slice(&whole[range]);
        let flags = if more { 0x2000 } else { 0 };
        layout::put16(&mut f, 6, flags | (offset / 8));
        let total = f.len();
        layout::put16(&mut f, 2, total as u16);
        layout::put16(&mut f, 10, 0);
        let c = checksum::internet_checksum(&f[..20]);
        layout::put16(&mut f, 10, c);
        f
    };
    let (first, last) = (
        fragment(20..1500, 0, true),
        fragment(1500..2028, 1480, false),
    );
    let other_hosts = {
        let mut p = udp_packet(false, 1, &payload(1000));
        p[19] = 9;
        let (l, total) = (Layout::of(&p, layout::PROTO_UDP, None).unwrap(), p.len());
        l.set_lengths(&mut p, total);
        set_checksum(&l, &mut p);
        p
    };
    let run = |port| udp_packet(false, port, &payload(1000));
    let batch = vec![
        run(1),
        other_hosts.clone(),
        run(1),
        first.clone(),
        other_hosts.clone(),
        last.clone(),
    ];
    let (writes, _) = coalesce_all(&batch);
    let kinds: Vec<(u8, usize)> = writes.iter().map(|(h, p)| (h.gso_type, p.len())).collect();
    assert_eq!(
        kinds,
        [
            (vnet::GSO_UDP_L4, 2028),
            (vnet::GSO_NONE, first.len()),
            (vnet::GSO_NONE, last.len()),
            (vnet::GSO_UDP_L4, 2028),
        ],
        "the run of 10.0.0.1 -> 10.0.0.2 before its fragments; the other hosts' run after"
    );
}
