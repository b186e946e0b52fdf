//! Checks `wire/ron.toml`: member ids of names, and RON packets that parse (MACs verified) to
//! the stated kind and encode back to the very same bytes; invalid packets fail with the
//! stated error. The vectors, MACs included, were computed from the format in
//! `engine/src/ocd/ron/wire.rs` by an independent BLAKE2s (Python's hashlib), not by the
//! encoder.

use ocala_engine::ocd::ron::member_id;
use ocala_engine::ocd::ron::wire::{Key, ReadError, RonPacket};
use ocala_vectors::{from_hex, to_hex, InvalidVector, PacketVector};
use serde::Deserialize;

const VECTORS: &str = include_str!("../wire/ron.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    key: String,
    member: Vec<Member>,
    packet: Vec<PacketVector>,
    invalid: Vec<InvalidVector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    name: String,
    id: String,
}

fn file() -> (File, Key) {
    let f: File = toml::from_str(VECTORS).expect("ron.toml parses");
    let key = from_hex(&f.key)
        .expect("hex")
        .try_into()
        .expect("32-byte key");
    (f, key)
}

fn kind(p: &RonPacket<'_>) -> &'static str {
    match p {
        RonPacket::Data(..) => "data",
        RonPacket::Probe { .. } => "probe",
        RonPacket::Ack { .. } => "ack",
        RonPacket::Links { .. } => "links",
    }
}

#[test]
fn names_map_to_their_member_ids() {
    for v in file().0.member {
        assert_eq!(
            to_hex(&member_id(&v.name).to_be_bytes()),
            v.id,
            "{}",
            v.name
        );
    }
}

#[test]
fn packets_parse_to_their_kind_and_encode_to_the_same_bytes() {
    let (f, key) = file();
    let kinds: std::collections::BTreeSet<&str> =
        f.packet.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds.len(), 4, "every packet type has a vector: {kinds:?}");
    for v in &f.packet {
        let bytes = from_hex(&v.hex).expect("hex");
        let p = RonPacket::parse(&bytes, &key).unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(kind(&p), v.kind, "{}", v.name);
        let mut out = Vec::new();
        p.encode(&key, &mut out);
        assert_eq!(to_hex(&out), v.hex, "{}", v.name);
    }
}

#[test]
fn invalid_packets_fail_with_the_stated_error() {
    let (f, key) = file();
    for v in f.invalid {
        let bytes = from_hex(&v.hex).expect("hex");
        let error = match RonPacket::parse(&bytes, &key) {
            Ok(p) => panic!("{}: parsed as {p:?}", v.name),
            Err(ReadError::BadMac) => "bad mac".to_string(),
            Err(ReadError::Malformed(e)) => e.to_string(),
        };
        assert_eq!(error, v.error, "{}", v.name);
    }
}
