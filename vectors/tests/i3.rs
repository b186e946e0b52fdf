//! Checks `wire/i3.toml`: public trigger ids of names, and i3 packets that parse to the stated
//! kind and encode back to the very same bytes; invalid packets fail with the stated error.
//! The vectors were written from the format in `engine/src/ocd/i3/wire.rs`, not by the encoder.

use ocala_engine::ocd::i3::id::Id;
use ocala_engine::ocd::i3::wire::I3Packet;
use ocala_vectors::{from_hex, to_hex, InvalidVector, PacketVector};
use serde::Deserialize;

const VECTORS: &str = include_str!("../wire/i3.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Vec<Name>,
    packet: Vec<PacketVector>,
    invalid: Vec<InvalidVector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
    id: String,
}

fn file() -> File {
    toml::from_str(VECTORS).expect("i3.toml parses")
}

fn kind(p: &I3Packet<'_>) -> &'static str {
    match p {
        I3Packet::Data { .. } => "data",
        I3Packet::Insert { .. } => "insert",
        I3Packet::Ack { .. } => "ack",
        I3Packet::Remove { .. } => "remove",
        I3Packet::Ping { .. } => "ping",
        I3Packet::Pong { .. } => "pong",
        I3Packet::Refused { .. } => "refused",
        I3Packet::Shortcut { .. } => "shortcut",
        I3Packet::Probe { .. } => "probe",
        I3Packet::ProbeAck { .. } => "probe_ack",
    }
}

#[test]
fn names_map_to_their_public_trigger_ids() {
    for v in file().name {
        assert_eq!(to_hex(&Id::of_name(&v.name).0), v.id, "{}", v.name);
    }
}

#[test]
fn packets_parse_to_their_kind_and_encode_to_the_same_bytes() {
    let f = file();
    let kinds: std::collections::BTreeSet<&str> =
        f.packet.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds.len(), 10, "every packet type has a vector: {kinds:?}");
    for v in &f.packet {
        let bytes = from_hex(&v.hex).expect("hex");
        let p = I3Packet::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(kind(&p), v.kind, "{}", v.name);
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(to_hex(&out), v.hex, "{}", v.name);
    }
}

#[test]
fn invalid_packets_fail_with_the_stated_error() {
    for v in file().invalid {
        let bytes = from_hex(&v.hex).expect("hex");
        match I3Packet::parse(&bytes) {
            Ok(p) => panic!("{}: parsed as {p:?}", v.name),
            Err(e) => assert!(e.to_string().starts_with(&v.error), "{}: {e}", v.name),
        }
    }
}
