//! Property tests: arbitrary bytes never panic, and valid queries survive the round trip
//! through our parser, our builders and hickory-proto.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use proptest::prelude::*;

use super::tests::query_bytes;
use super::*;

/// Every builder must produce a message hickory can read, whatever query it answers.
fn answer_everything(q: &Query) {
    let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for bytes in [
        answer_addresses(q, &[v4, v6], 0),
        answer_ptr(q, "foo.ron_bar.i3", 0),
        answer_empty(q),
        answer_error(
            q,
            ErrorCode::NxDomain,
            Some((EDE_INVALID_DATA, "no hop in name")),
        ),
        answer_error(q, ErrorCode::ServFail, None),
    ] {
        let m = Message::from_vec(&bytes);
        assert!(m.is_ok(), "{q:?}: {bytes:02x?}: {m:?}");
    }
}

fn with_header() -> impl Strategy<Value = Vec<u8>> {
    // QR=0, opcode QUERY, one question, random rest: reaches the question parsers.
    (
        any::<u16>(),
        0u8..2,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(id, ar, tail)| {
            let mut b = id.to_be_bytes().to_vec();
            b.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, ar]);
            b.extend_from_slice(&tail);
            b
        })
}

fn label() -> impl Strategy<Value = String> {
    // hickory's text parser (used to build the queries) wants a letter or digit at each end.
    "[a-zA-Z0-9]([a-zA-Z0-9_-]{0,18}[a-zA-Z0-9])?"
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(q) = parse_query(&bytes) {
            answer_everything(&q);
        }
        let _ = parse_address_answer(&bytes, 0);
    }

    #[test]
    fn arbitrary_questions_never_panic(bytes in with_header()) {
        if let Ok(q) = parse_query(&bytes) {
            answer_everything(&q);
        }
    }

    #[test]
    fn mutated_queries_never_panic(
        edns in proptest::option::of(512u16..4096),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = query_bytes(1, "foo.ron_bar.i3", RecordType::A, true, edns);
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(q) = parse_query(&bytes) {
            answer_everything(&q);
        }
        let _ = parse_address_answer(&bytes, 1);
    }

    #[test]
    fn valid_queries_round_trip(
        labels in proptest::collection::vec(label(), 1..6),
        qtype in any::<u16>().prop_filter("not OPT", |t| *t != TYPE_OPT),
        edns in proptest::option::of(any::<u16>()),
        id in any::<u16>(),
        rd in any::<bool>(),
    ) {
        let name = labels.join(".");
        let bytes = query_bytes(id, &name, RecordType::from(qtype), rd, edns);
        let q = parse_query(&bytes).unwrap();
        prop_assert_eq!(&q.name, &name);
        prop_assert_eq!(q.qtype, qtype);
        prop_assert_eq!(q.edns, edns.map(|e| e.max(512)));
        prop_assert_eq!(Some(q.clone()), parse::checked(&bytes, id, rd));
        let m = Message::from_vec(&answer_empty(&q)).unwrap();
        prop_assert_eq!(m.metadata.id, id);
        prop_assert_eq!(m.queries[0].name().to_ascii(), format!("{name}."));
    }

    #[test]
    fn reverse_names_round_trip(v4 in any::<u32>(), v6 in any::<u128>()) {
        let a = Ipv4Addr::from(v4);
        let o = a.octets();
        let name = format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0]);
        prop_assert_eq!(ptr_target(&name), Some(IpAddr::V4(a)));
        let a = Ipv6Addr::from(v6);
        let nibbles: String = a
            .octets()
            .iter()
            .rev()
            .map(|b| format!("{:x}.{:x}.", b & 0xf, b >> 4))
            .collect();
        prop_assert_eq!(ptr_target(&format!("{nibbles}ip6.arpa.")), Some(IpAddr::V6(a)));
    }

    #[test]
    fn ptr_target_never_panics(s in "\\PC{0,120}") {
        let _ = ptr_target(&s);
    }
}
