//! Checks `wire/rewrite.toml` against `rewrite_addresses`, byte for byte.
//!
//! The vectors' own consistency is checked too, with a deliberately plain full-checksum
//! verifier that shares nothing with the engine: every input and output must carry valid
//! checksums and the addresses the vector names.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ocala_engine::wire::rewrite::rewrite_addresses;
use ocala_vectors::{from_hex, to_hex};
use serde::Deserialize;

const REWRITE: &str = include_str!("../wire/rewrite.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    rewrite: Vec<Vector>,
    error: Vec<ErrorVector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    note: String,
    src: IpAddr,
    dst: IpAddr,
    new_src: IpAddr,
    new_dst: IpAddr,
    input: String,
    output: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorVector {
    name: String,
    input: String,
    new_src: IpAddr,
    new_dst: IpAddr,
    error: String,
}

fn load() -> File {
    toml::from_str(REWRITE).expect("wire/rewrite.toml parses")
}

fn hex(name: &str, text: &str) -> Vec<u8> {
    from_hex(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// RFC 1071 sum, folded, not complemented. Odd trailing byte padded with zero.
fn sum(parts: &[&[u8]]) -> u16 {
    let mut s: u64 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            s += hi | lo;
        }
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn addr(bytes: &[u8]) -> IpAddr {
    match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes")),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")),
        n => panic!("address of {n} bytes"),
    }
}

/// A packet without IPv6 extension headers, split into its parts.
struct Ip<'a> {
    v6: bool,
    header: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    /// The transport segment as far as it is present.
    seg: &'a [u8],
    /// Whether `seg` is as long as the header says (false for a truncated quote).
    complete: bool,
}

fn split(p: &[u8]) -> Ip<'_> {
    match p[0] >> 4 {
        4 => {
            let hl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            Ip {
                v6: false,
                header: &p[..hl],
                src: addr(&p[12..16]),
                dst: addr(&p[16..20]),
                proto: p[9],
                seg: &p[hl..total.min(p.len())],
                complete: total <= p.len(),
            }
        }
        6 => {
            let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            Ip {
                v6: true,
                header: &p[..40],
                src: addr(&p[8..24]),
                dst: addr(&p[24..40]),
                proto: p[6],
                seg: &p[40..(40 + plen).min(p.len())],
                complete: 40 + plen <= p.len(),
            }
        }
        v => panic!("IP version {v}"),
    }
}

fn pseudo_header(ip: &Ip<'_>) -> Vec<u8> {
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut p = octets(ip.src);
    p.extend(octets(ip.dst));
    let len = ip.seg.len() as u32;
    if ip.v6 {
        p.extend(len.to_be_bytes());
        p.extend([0, 0, 0, ip.proto]);
    } else {
        p.extend([0, ip.proto]);
        p.extend((len as u16).to_be_bytes());
    }
    p
}

/// Asserts that every checksum in `p` is valid, recursing once into an ICMP error's quote
/// (whose transport checksum is checked only if the quote is complete).
fn assert_checksums(what: &str, p: &[u8], quoted: bool) {
    let ip = split(p);
    if !ip.v6 {
        assert_eq!(sum(&[ip.header]), 0xffff, "{what}: IPv4 header checksum");
    }
    if quoted && !ip.complete {
        return;
    }
    match (ip.v6, ip.proto) {
        (false, 1) => {
            assert_eq!(sum(&[ip.seg]), 0xffff, "{what}: ICMPv4 checksum");
            if !quoted && ip.seg[0] == 3 {
                assert_checksums(&format!("{what} (quote)"), &ip.seg[8..], true);
            }
        }
        (false, 17) if ip.seg[6..8] == [0, 0] => {} // UDP without checksum
        (_, 6 | 17) | (true, 58) => {
            let ph = pseudo_header(&ip);
            assert_eq!(sum(&[&ph, ip.seg]), 0xffff, "{what}: transport checksum");
            if ip.proto == 58 && !quoted && ip.seg[0] < 128 {
                assert_checksums(&format!("{what} (quote)"), &ip.seg[8..], true);
            }
        }
        (_, proto) => panic!("{what}: unexpected protocol {proto}"),
    }
}

/// Offsets (from the start of the outer packet) of every address and checksum byte of the
/// packet at `base`, and of its quote if it is an ICMP error.
fn rewritable(p: &[u8], base: usize, quoted: bool) -> BTreeSet<usize> {
    let ip = split(&p[base..]);
    let mut set = BTreeSet::new();
    let (addrs, hl) = if ip.v6 {
        (8..40, 40)
    } else {
        (12..20, ip.header.len())
    };
    set.extend(addrs.map(|i| base + i));
    if !ip.v6 {
        set.extend([base + 10, base + 11]);
    }
    let ck = match ip.proto {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    set.extend([base + hl + ck, base + hl + ck + 1]);
    let is_error = if ip.v6 {
        ip.proto == 58 && ip.seg[0] < 128
    } else {
        ip.proto == 1 && ip.seg[0] == 3
    };
    if is_error && !quoted {
        set.extend(rewritable(p, base + hl + 8, true));
    }
    set
}

#[test]
fn rewrite_produces_the_expected_bytes() {
    let file = load();
    for v in &file.rewrite {
        let input = hex(&v.name, &v.input);
        let expected = hex(&v.name, &v.output);
        let mut packet = input.clone();
        rewrite_addresses(&mut packet, v.new_src, v.new_dst)
            .unwrap_or_else(|e| panic!("{}: rewrite failed: {e}", v.name));
        assert_eq!(to_hex(&packet), to_hex(&expected), "{}: {}", v.name, v.note);
        // Rewriting back restores the original exactly.
        rewrite_addresses(&mut packet, v.src, v.dst)
            .unwrap_or_else(|e| panic!("{}: rewrite back failed: {e}", v.name));
        assert_eq!(to_hex(&packet), to_hex(&input), "{}: round trip", v.name);
    }
}

#[test]
fn vectors_are_self_consistent() {
    let file = load();
    for v in &file.rewrite {
        let input = hex(&v.name, &v.input);
        let output = hex(&v.name, &v.output);
        assert_eq!(input.len(), output.len(), "{}", v.name);
        for (what, p, src, dst) in [
            ("input", &input, v.src, v.dst),
            ("output", &output, v.new_src, v.new_dst),
        ] {
            let what = format!("{} {what}", v.name);
            let ip = split(p);
            assert!(ip.complete, "{what}: shorter than its length field");
            assert_eq!(
                ip.seg.len() + ip.header.len(),
                p.len(),
                "{what}: trailing bytes"
            );
            assert_eq!((ip.src, ip.dst), (src, dst), "{what}: addresses");
            assert_checksums(&what, p, false);
            // An ICMP error's quote is of a packet sent the other way.
            let is_error = match (ip.v6, ip.proto) {
                (false, 1) => ip.seg[0] == 3 || ip.seg[0] == 11,
                (true, 58) => ip.seg[0] < 128,
                _ => false,
            };
            if is_error {
                let quote = split(&ip.seg[8..]);
                assert_eq!(
                    (quote.src, quote.dst),
                    (dst, src),
                    "{what}: quoted addresses"
                );
            }
        }
        // Only addresses and checksums differ.
        let fields = rewritable(&input, 0, false);
        for (i, (a, b)) in input.iter().zip(&output).enumerate() {
            assert!(
                a == b || fields.contains(&i),
                "{}: byte {i} differs but is no address or checksum",
                v.name
            );
        }
    }
}

#[test]
fn vectors_cover_the_required_cases() {
    let file = load();
    let names: BTreeSet<&str> = file.rewrite.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), file.rewrite.len(), "duplicate names");
    let kinds: BTreeSet<(bool, u8, bool)> = file
        .rewrite
        .iter()
        .map(|v| {
            let p = hex(&v.name, &v.input);
            let ip = split(&p);
            let error = matches!((ip.v6, ip.proto), (false, 1) if ip.seg[0] == 3)
                || matches!((ip.v6, ip.proto), (true, 58) if ip.seg[0] < 128);
            (ip.v6, ip.proto, error)
        })
        .collect();
    for want in [
        (false, 17, false),
        (false, 6, false),
        (false, 1, false),
        (false, 1, true),
        (true, 17, false),
        (true, 6, false),
        (true, 58, false),
        (true, 58, true),
    ] {
        assert!(kinds.contains(&want), "no vector for {want:?}");
    }
    let zero_udp = file.rewrite.iter().any(|v| {
        let p = hex(&v.name, &v.input);
        let ip = split(&p);
        !ip.v6 && ip.proto == 17 && ip.seg[6..8] == [0, 0]
    });
    assert!(zero_udp, "no IPv4 UDP vector without checksum");
}

#[test]
fn refused_rewrites_leave_the_packet_alone() {
    let file = load();
    assert!(!file.error.is_empty());
    for v in &file.error {
        let input = hex(&v.name, &v.input);
        let mut packet = input.clone();
        match rewrite_addresses(&mut packet, v.new_src, v.new_dst) {
            Ok(()) => panic!("{}: rewrite succeeded: {}", v.name, to_hex(&packet)),
            Err(e) => assert_eq!(format!("{e:?}"), v.error, "{}", v.name),
        }
        assert_eq!(packet, input, "{}: packet modified", v.name);
    }
}
