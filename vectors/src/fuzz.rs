//! The bodies of the fuzz targets in `fuzz/`: each takes arbitrary bytes and must neither
//! panic nor break the property it checks. They live here, not in the fuzz crate, so that
//! `cargo test` replays the committed corpus (`fuzz/corpus/<target>/`) on stable Rust
//! without the fuzzer (`tests/fuzz_corpus.rs`).

use ocala_engine::config::{Config, OverlayConfig, Protection};
use ocala_engine::dns::message::parse_query;
use ocala_engine::wire::ip::IpView;
use ocala_engine::wire::message::Message;
use ocala_engine::wire::rewrite::write_udp_packet;
use ocala_engine::{Engine, Input, Instant, Output, OverlayId};
use std::net::SocketAddr;
use std::time::Duration;

/// A target's body: arbitrary bytes in, a panic when a property breaks.
pub type Body = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: [(&str, Body); 5] = [
    ("wire_message", wire_message),
    ("dns_query", dns_query),
    ("ip_packet", ip_packet),
    ("engine_inputs", engine_inputs),
    ("tun_offload", tun_offload),
];

/// OCALA messages: whatever parses re-encodes, and the encoding parses to the same message.
pub fn wire_message(data: &[u8]) {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let mut out = Vec::new();
    msg.encode(&mut out)
        .unwrap_or_else(|e| panic!("{msg:?} parsed but does not encode: {e:?}"));
    assert_eq!(
        Message::parse(&out),
        Ok(msg),
        "re-encoding changed the message"
    );
}

/// DNS queries from apps: parsing never panics, and a parsed name is printable text (bytes
/// outside printable ASCII written `\DDD`, at most four characters for each of a wire
/// name's 255 bytes).
pub fn dns_query(data: &[u8]) {
    if let Ok(q) = parse_query(data) {
        assert!(q.name.len() <= 4 * 255, "name of {} bytes", q.name.len());
        assert!(
            q.name.bytes().all(|b| b.is_ascii_graphic()),
            "unprintable name {:?}",
            q.name
        );
    }
}

/// IP packets from the TUN: the view's fields stay inside the buffer.
pub fn ip_packet(data: &[u8]) {
    if let Ok(ip) = IpView::parse(data) {
        assert!(ip.payload().len() <= data.len());
        let _ = (ip.src(), ip.dst(), ip.protocol(), ip.is_fragment());
    }
}

/// A TUN read (a `virtio_net_hdr` and a packet) through the daemon's software offloads:
/// cutting never yields a packet longer than the read, and joining loses and invents
/// nothing — every super-packet the coalescer writes cuts again, without error, into
/// segments with valid checksums, as many as went in.
pub fn tun_offload(data: &[u8]) {
    use ocala_mio::offload::{coalesce::Coalescer, segment, tcp::Layout, vnet::VnetHdr};
    let mut read = data.to_vec();
    let Some((hdr, packet)) = VnetHdr::parse(&mut read) else {
        return;
    };
    let mut scratch = vec![0u8; 2 * 65_536];
    let Ok(packets) = segment::split(&hdr, packet, &mut scratch) else {
        return;
    };
    let cut: Vec<Vec<u8>> = packets.iter(packet, &scratch).map(<[u8]>::to_vec).collect();
    assert!(cut.iter().all(|p| p.len() <= packet.len()));
    let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut c = Coalescer::default();
    let mut write = |h: &[u8], p: &[u8]| writes.push((h.to_vec(), p.to_vec()));
    for p in &cut {
        c.push(p, &mut write);
    }
    c.flush(&mut write);
    let mut out = 0;
    let mut again = vec![0u8; 2 * 65_536];
    for (h, mut p) in writes {
        let mut whole = h.clone();
        whole.extend_from_slice(&p);
        let (wh, _) = VnetHdr::parse(&mut whole).expect("a whole header");
        if wh == VnetHdr::default() {
            out += 1;
            continue;
        }
        let segs = segment::split(&wh, &mut p, &mut again).expect("a joined write cuts again");
        for s in segs.iter(&p, &again) {
            let l = Layout::of(s, None).expect("a joined segment is TCP");
            assert!(l.checksums_hold(s), "a joined segment's checksums hold");
            out += 1;
        }
    }
    assert_eq!(out, cut.len(), "packets in, packets out");
}

const PEER: &str = "10.0.0.2:4789";

fn node() -> Config {
    let mut cfg = Config {
        overlays: vec![OverlayConfig {
            name: "udp".into(),
            module: "udp".into(),
            local_name: "alice".into(),
            port: 4789,
            keepalive_secs: 25,
            address_book: [("bob".to_string(), PEER.parse().expect("an address"))].into(),
            i3: Default::default(),
            ron: Default::default(),
        }],
        gateway: true,
        ..Config::default()
    };
    cfg.security.default = Protection::Plain;
    cfg.security.accept_plain = true;
    cfg
}

/// A whole engine fed an arbitrary sequence of inputs: app packets, DNS queries, datagrams
/// from a known peer and a stranger, and time steps. It must never panic, never see time
/// go backwards as an error, and keep its tables within its limits.
pub fn engine_inputs(data: &[u8]) {
    let cfg = node();
    let limits = cfg.limits.clone();
    let (tun, dns) = (cfg.handles.tun_v4, cfg.handles.dns_v4);
    let Ok(mut engine) = Engine::new(cfg, [5; 32], Instant::ZERO) else {
        panic!("the fuzz node's config is valid");
    };
    let mut now = Instant::ZERO;
    let mut rest = data;
    let mut packet = Vec::new();
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let input = match op % 5 {
            0 => Input::TunPacket(chunk),
            1 => {
                packet.clear();
                let from = SocketAddr::new(tun.into(), 5353);
                let to = SocketAddr::new(dns.into(), 53);
                if write_udp_packet(&mut packet, from, to, chunk).is_err() {
                    continue;
                }
                Input::TunPacket(&packet)
            }
            2 | 3 => Input::Datagram {
                overlay: OverlayId(0),
                from: if op % 5 == 2 {
                    PEER.parse().expect("an address")
                } else {
                    "192.0.2.66:4000".parse().expect("an address")
                },
                payload: chunk,
            },
            _ => {
                now = now.saturating_add(Duration::from_millis(u64::from(*len) * 20));
                Input::Timeout
            }
        };
        engine
            .handle_input(now, input)
            .unwrap_or_else(|e| panic!("time moved forward only: {e:?}"));
        while !matches!(engine.poll_output(), Output::Timeout(_)) {}
        let status = engine.status();
        assert!(
            status.paths.len() <= limits.max_paths,
            "paths over the limit"
        );
        assert!(
            status.handles.len() <= limits.max_handles,
            "handles over the limit"
        );
    }
}
