//! The bodies of the fuzz targets in `fuzz/`: each takes arbitrary bytes and must neither
//! panic nor break the property it checks. They live here, not in the fuzz crate, so that
//! `cargo test` replays the committed corpus (`fuzz/corpus/<target>/`) on stable Rust
//! without the fuzzer (`tests/fuzz_corpus.rs`).

use ocala_engine::config::{Config, OverlayConfig, Protection};
use ocala_engine::dns::message::parse_query;
use ocala_engine::wire::checksum;
use ocala_engine::wire::ip::IpView;
use ocala_engine::wire::message::Message;
use ocala_engine::wire::rewrite::{rewrite_addresses, write_udp_packet};
use ocala_engine::PartialChecksum;
use ocala_engine::{Engine, Input, Instant, Output, OverlayId};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::Duration;

/// A target's body: arbitrary bytes in, a panic when a property breaks.
pub type Body = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: [(&str, Body); 9] = [
    ("engines", engines),
    ("wire_message", wire_message),
    ("dns_query", dns_query),
    ("ip_packet", ip_packet),
    ("engine_inputs", engine_inputs),
    ("tun_offload", tun_offload),
    ("certificate", certificate),
    ("overlay_name", overlay_name),
    ("overlay_headers", overlay_headers),
];

/// Certificates and delegation chains from peers: what decodes is the canonical encoding,
/// byte for byte (signatures are over re-encoded fields, so anything else would be a hole).
pub fn certificate(data: &[u8]) {
    use ocala_engine::security::{Certificate, Chain};
    if let Ok(c) = Certificate::decode(data) {
        assert_eq!(
            c.encode(),
            data,
            "a certificate decodes only from its own encoding"
        );
    }
    if let Ok(c) = Chain::decode(data) {
        assert_eq!(
            c.encode(),
            data,
            "a chain decodes only from its own encoding"
        );
    }
}

/// Names apps ask for, and rewrite rules: parsing a name's canonical form gives the same
/// name, every hop has a host and an overlay, and rules compiled from arbitrary text either
/// compile or say why, and then rewrite without panicking.
pub fn overlay_name(data: &[u8]) {
    use ocala_engine::dns::names::parse_name;
    use ocala_engine::dns::rules::Rules;
    let text = String::from_utf8_lossy(data);
    let known = |s: &str| ["udp", "i3", "ron", "oci"].contains(&s);
    if let Ok(Some(n)) = parse_name(&text, known) {
        assert!(!n.hops.is_empty());
        assert!(n
            .hops
            .iter()
            .all(|h| !h.prefix.is_empty() && !h.overlay.is_empty()));
        let again = parse_name(&n.canonical, known);
        assert_eq!(
            again,
            Ok(Some(n.clone())),
            "the canonical form parses the same"
        );
    }
    let (pattern, replacement) = text.split_once("=>").unwrap_or((&text, "$0"));
    let rule = [(pattern.trim().to_string(), replacement.trim().to_string())];
    if let Ok(rules) = Rules::new(&rule) {
        let _ = rules.apply("bob.corp");
        let _ = rules.apply(&text);
    }
}

/// The i3 and RON overlays' own headers: i3 packets re-encode to what they parsed from;
/// RON packets parse (MAC checked with a fixed key) without panicking, and whatever passes
/// re-encodes to the same bytes.
pub fn overlay_headers(data: &[u8]) {
    use ocala_engine::ocd::i3::wire::I3Packet;
    use ocala_engine::ocd::ron::wire::RonPacket;
    if let Ok(p) = I3Packet::parse(data) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(
            I3Packet::parse(&out),
            Ok(p),
            "an i3 packet survives re-encoding"
        );
    }
    let key = [0x5a_u8; 32]; // the key of vectors/wire/ron.toml, so its packets seed the corpus
    if let Ok(p) = RonPacket::parse(data, &key) {
        let mut out = Vec::new();
        p.encode(&key, &mut out);
        assert_eq!(
            RonPacket::parse(&out, &key).ok(),
            Some(p),
            "a RON packet survives re-encoding"
        );
    }
}

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

/// IP packets from the TUN or from a peer: the view's fields stay inside the buffer, and
/// rewriting their addresses keeps the packet whole or leaves it untouched.
pub fn ip_packet(data: &[u8]) {
    let Ok(ip) = IpView::parse(data) else {
        return;
    };
    assert!(ip.payload().len() <= data.len());
    let _ = (ip.src(), ip.dst(), ip.protocol(), ip.is_fragment());
    // Rewritten as a path's receiving end rewrites it, to the addresses exchanged, to all
    // zeros and to all ones (the largest words a checksum adds): a refused rewrite leaves
    // the packet as it was; a done one puts the new addresses in and keeps a valid IPv4
    // header checksum and a valid TCP or UDP checksum valid.
    let (src, dst) = (ip.src(), ip.dst());
    let (zeros, ones) = match src {
        IpAddr::V4(_) => (IpAddr::from([0u8; 4]), IpAddr::from([255u8; 4])),
        IpAddr::V6(_) => (IpAddr::from([0u8; 16]), IpAddr::from([255u8; 16])),
    };
    let transport_holds =
        |p: &[u8]| PartialChecksum::of(p).map(|c| c.leave_partial(&mut p.to_vec()).is_ok());
    let header_holds = |p: &[u8]| {
        let v4 = IpView::parse(p).ok().filter(|ip| ip.version() == 4);
        v4.map(|ip| checksum::verify(&p[..ip.header_len()]))
    };
    for (new_src, new_dst) in [(dst, src), (zeros, zeros), (ones, ones)] {
        let mut p = data.to_vec();
        match rewrite_addresses(&mut p, new_src, new_dst) {
            Err(_) => assert_eq!(p, data, "a refused rewrite changed the packet"),
            Ok(()) => {
                let ip = IpView::parse(&p).expect("a rewritten packet parses");
                assert_eq!((ip.src(), ip.dst()), (new_src, new_dst));
                if header_holds(data) == Some(true) {
                    assert_eq!(header_holds(&p), Some(true), "IPv4 header checksum");
                }
                if transport_holds(data) == Some(true) {
                    assert_eq!(transport_holds(&p), Some(true), "transport checksum");
                }
            }
        }
    }
}

/// A TUN read (a `virtio_net_hdr` and a packet: TCP or UDP super-packets, or one packet)
/// through the daemon's software offloads:
/// cutting never yields a packet longer than the read or a partial checksum outside its
/// packet, and joining loses and invents nothing — every super-packet the coalescer writes
/// cuts again, without error, into segments with valid checksums once completed, as many as
/// went in.
pub fn tun_offload(data: &[u8]) {
    use ocala_mio::offload::coalesce::{Coalescer, Delivered, Listed};
    use ocala_mio::offload::layout::{self, Layout};
    use ocala_mio::offload::{segment, vnet::VnetHdr};
    let mut read = data.to_vec();
    let Some((hdr, packet)) = VnetHdr::parse(&mut read) else {
        return;
    };
    let mut cut: Vec<Vec<u8>> = Vec::new();
    let limit = packet.len();
    let each = &mut |p: &[u8], partial: Option<ocala_engine::PartialChecksum>| {
        let mut p = p.to_vec();
        // Completed, as the engine does for a peer that takes no partial checksums.
        assert!(partial.is_none_or(|c| c.complete(&mut p)));
        cut.push(p);
    };
    if segment::split(&hdr, packet, each).is_err() {
        return;
    }
    assert!(cut.iter().all(|p| p.len() <= limit));
    let mut writes: Vec<Vec<u8>> = Vec::new();
    // Half the reads are joined as if opened on a secure path, whose segments join without
    // their checksums summed (the path vouched for them).
    let about = Delivered {
        authentic: data.len() % 2 == 1,
        partial: None,
    };
    let listed = Listed {
        packets: &cut,
        about: |_: &Vec<u8>| about,
    };
    Coalescer::new(true).write(&listed, &mut |parts| {
        writes.push(parts.iter().flat_map(|p| p.iter().copied()).collect());
    });
    let mut out = 0;
    for mut whole in writes {
        let (wh, p) = VnetHdr::parse(&mut whole).expect("a whole header");
        if wh == VnetHdr::default() {
            out += 1;
            continue;
        }
        segment::split(&wh, p, &mut |s, partial| {
            let mut s = s.to_vec();
            assert!(partial.is_some_and(|c| c.complete(&mut s)));
            let l = layout::protocol(&s)
                .and_then(|proto| Layout::of(&s, proto, None))
                .expect("a joined segment is TCP or UDP");
            assert!(l.checksums_hold(&s), "a joined segment's checksums hold");
            out += 1;
        })
        .expect("a joined write cuts again");
    }
    assert_eq!(out, cut.len(), "packets in, packets out");
}

const PEER: &str = "10.0.0.2:4789";

fn node() -> Config {
    named_node("alice", &[("bob", PEER)])
}

/// A plain gateway-capable node called `name` with this address book. alice's driver takes
/// partial checksums, so her plain paths carry the partial form towards her.
fn named_node(name: &str, book: &[(&str, &str)]) -> Config {
    let mut cfg = Config {
        overlays: vec![OverlayConfig {
            name: "udp".into(),
            module: "udp".into(),
            local_name: name.into(),
            port: 4789,
            keepalive_secs: 25,
            address_book: book
                .iter()
                .map(|(n, a)| (n.to_string(), a.parse().expect("an address")))
                .collect(),
            i3: Default::default(),
            ron: Default::default(),
        }],
        gateway: true,
        ..Config::default()
    };
    cfg.security.default = Protection::Plain;
    cfg.security.accept_plain = true;
    cfg.security.partial_checksums = name == "alice";
    cfg
}

/// Three engines (alice, gw, bob) on an in-memory network, driven by arbitrary operations:
/// apps asking for names (direct and through gw), raw app packets, datagrams delivered,
/// lost, duplicated or corrupted, time passing, and a node restarting from its checkpointed
/// handles. After every step each engine passes [`check_engine`], and the whole run is
/// deterministic: the same bytes give the same transcript twice.
pub fn engines(data: &[u8]) {
    let first = engines_run(data);
    assert_eq!(first, engines_run(data), "same inputs, same outputs");
}

fn engines_run(data: &[u8]) -> u64 {
    use ocala_engine::dns::message::build_address_query;
    use std::collections::VecDeque;
    use std::hash::{DefaultHasher, Hasher};
    const ADDRS: [&str; 3] = ["10.0.0.1:4789", "10.0.0.2:4789", "10.0.0.3:4789"];
    const NAMES: [&str; 6] = [
        "bob.udp",
        "gw.udp",
        "bob.udp_gw.udp",
        "alice.udp_gw.udp",
        "nobody.udp",
        "bob.udp_gw.udp_plain.oci",
    ];
    let configs = [
        named_node("alice", &[("gw", ADDRS[1]), ("bob", ADDRS[2])]),
        named_node("gw", &[("alice", ADDRS[0]), ("bob", ADDRS[2])]),
        named_node("bob", &[("alice", ADDRS[0]), ("gw", ADDRS[1])]),
    ];
    let addrs: Vec<SocketAddr> = ADDRS
        .iter()
        .map(|a| a.parse().expect("an address"))
        .collect();
    let start = |i: usize, now: Instant| {
        Engine::new(configs[i].clone(), [i as u8 + 1; 32], now).expect("valid configs")
    };
    let mut nodes: Vec<Engine> = (0..3).map(|i| start(i, Instant::ZERO)).collect();
    let mut wire: VecDeque<(usize, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut transcript = DefaultHasher::new();
    let mut now = Instant::ZERO;
    let mut rest = data;
    let mut packet = Vec::new();
    let mut query_id = 0u16;
    while let [op, arg, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let at = usize::from(*arg) % 3;
        let mut feed: Option<(usize, Vec<u8>, Option<SocketAddr>)> = None;
        match op % 8 {
            0 => {
                query_id = query_id.wrapping_add(1);
                let name = NAMES[usize::from(*arg) % NAMES.len()];
                let cfg = &configs[at];
                let q = build_address_query(query_id, name, false).expect("valid names");
                packet.clear();
                let from = SocketAddr::new(cfg.handles.tun_v4.into(), 5353);
                let to = SocketAddr::new(cfg.handles.dns_v4.into(), 53);
                if write_udp_packet(&mut packet, from, to, &q).is_ok() {
                    feed = Some((at, packet.clone(), None));
                }
            }
            1 => feed = Some((at, chunk.to_vec(), None)),
            2 => {
                if let Some((dst, from, bytes)) = wire.pop_front() {
                    feed = Some((dst, bytes, Some(from)));
                }
            }
            3 => {
                wire.pop_front();
            }
            4 => {
                if let Some(d) = wire.front().cloned() {
                    wire.push_back(d);
                }
            }
            5 => {
                if let Some((_, _, bytes)) = wire.front_mut() {
                    for (b, x) in bytes.iter_mut().zip(chunk) {
                        *b ^= x;
                    }
                }
            }
            6 => now = now.saturating_add(Duration::from_millis(u64::from(*len) * 50)),
            _ => {
                let saved = nodes[at].handle_bindings();
                nodes[at] = start(at, now);
                nodes[at].restore_handles(&saved);
            }
        }
        for (i, e) in nodes.iter_mut().enumerate() {
            let input = match &mut feed {
                Some((dst, bytes, from)) if *dst == i => match from {
                    Some(from) => Input::Datagram {
                        overlay: OverlayId(0),
                        from,
                        payload: bytes,
                        queued: std::time::Duration::ZERO,
                        ecn: ocala_engine::Ecn::NotEct,
                    },
                    None => Input::TunPacket(bytes),
                },
                _ => Input::Timeout,
            };
            e.handle_input(now, input)
                .unwrap_or_else(|err| panic!("time moved forward only: {err:?}"));
            let lent: &[u8] = match &feed {
                Some((dst, bytes, Some(_))) if *dst == i => bytes,
                _ => &[],
            };
            loop {
                match e.poll_output() {
                    Output::Timeout(_) => break,
                    Output::Transmit { to, payload, .. } => {
                        transcript.write(&payload);
                        if let Some(dst) = addrs.iter().position(|a| *a == to) {
                            if wire.len() < 512 {
                                wire.push_back((dst, addrs[i], payload.to_vec()));
                            }
                        }
                        e.recycle(payload);
                    }
                    Output::WriteTun(p) => {
                        transcript.write(&p);
                        e.recycle(p);
                    }
                    Output::WriteTunInPlace(d) => {
                        assert_eq!(d.datagram, 0, "one datagram a batch");
                        transcript.write(lent.get(d.range).expect("within its datagram"));
                    }
                    Output::UpstreamDns { query, .. } => e.recycle(query),
                    Output::Event(_) => {}
                }
            }
            check_engine(e, &configs[i].limits);
        }
    }
    transcript.finish()
}

/// A whole engine fed an arbitrary sequence of inputs: app packets, DNS queries, datagrams
/// from a known peer and a stranger, and time steps. It must never panic, never see time
/// go backwards as an error, and pass [`check_engine`] after every input.
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
    let mut datagram = Vec::new();
    let peer: SocketAddr = PEER.parse().expect("an address");
    let stranger: SocketAddr = "192.0.2.66:4000".parse().expect("an address");
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let input = match op % 5 {
            // Some app packets come with a checksum the kernel left partial, anywhere.
            0 if op & 0x80 != 0 => Input::TunPartial {
                packet: chunk,
                checksum: ocala_engine::PartialChecksum {
                    start: u16::from(*len & 0x3f),
                    offset: u16::from(op & 0x1e),
                },
            },
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
                from: if op % 5 == 2 { &peer } else { &stranger },
                payload: {
                    datagram.clear();
                    datagram.extend_from_slice(chunk);
                    &mut datagram
                },
                // Waits from none to 12.75 ms, so the receive queue's congestion signals
                // (marks and drops) are reached too.
                queued: Duration::from_micros(u64::from(*len) * 50),
                ecn: ocala_engine::Ecn::from_bits(*op >> 3),
            },
            _ => {
                now = now.saturating_add(Duration::from_millis(u64::from(*len) * 20));
                Input::Timeout
            }
        };
        engine
            .handle_input(now, input)
            .unwrap_or_else(|e| panic!("time moved forward only: {e:?}"));
        loop {
            match engine.poll_output() {
                Output::Timeout(_) => break,
                Output::WriteTunInPlace(d) => {
                    assert_eq!(d.datagram, 0, "one datagram a batch");
                    assert!(d.range.end <= datagram.len(), "within its datagram");
                }
                _ => {}
            }
        }
        check_engine(&engine, &limits);
    }
}

/// What holds after every step: the tables are within their limits and agree with each
/// other (`Engine::check_tables`, as in the engine's property test).
fn check_engine(e: &Engine, limits: &ocala_engine::config::Limits) {
    let status = e.status();
    assert!(
        status.paths.len() <= limits.max_paths,
        "paths over the limit"
    );
    assert!(
        status.handles.len() <= limits.max_handles,
        "handles over the limit"
    );
    if let Err(why) = e.check_tables() {
        panic!("the tables disagree: {why}");
    }
}
