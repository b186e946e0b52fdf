//! Example-based tests: every builder's output is read back with hickory-proto.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::*;

pub(super) fn query_bytes(
    id: u16,
    name: &str,
    rtype: RecordType,
    rd: bool,
    edns: Option<u16>,
) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = rd;
    m.add_query(HQuery::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Query {
    parse_query(&query_bytes(0x1234, name, rtype, true, edns)).unwrap()
}

fn reparse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("unreadable answer {bytes:02x?}: {e}"))
}

/// Header fields every answer to `q` shares.
fn check_common(m: &Message, q: &Query, rcode: ResponseCode, aa: bool) {
    assert_eq!(m.metadata.id, q.id);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.op_code, OpCode::Query);
    assert_eq!(m.metadata.authoritative, aa);
    assert!(m.metadata.recursion_available);
    assert_eq!(m.metadata.recursion_desired, q.recursion_desired);
    assert_eq!(m.metadata.response_code, rcode);
    assert_eq!(m.queries.len(), 1);
    let echoed = &m.queries[0];
    // Case preserved: compare the label bytes, not the case-insensitive Name equality.
    let expected = Name::from_ascii(format!("{}.", q.name)).unwrap();
    assert!(
        echoed.name().eq_case(&expected),
        "{} vs {}",
        echoed.name(),
        expected
    );
    assert_eq!(u16::from(echoed.query_type()), q.qtype);
    assert_eq!(u16::from(echoed.query_class()), q.qclass);
}

/// The EDE option of a response, as (code, text).
fn ede_of(m: &Message) -> Option<(u16, String)> {
    let edns = m.edns.as_ref()?;
    match edns.option(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(15, data) => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8(data[2..].to_vec()).unwrap(),
        )),
        other => panic!("unexpected option {other:?}"),
    }
}

#[test]
fn parses_a_plain_query() {
    let bytes = query_bytes(0xbeef, "Bob.I3.", RecordType::A, true, None);
    let q = parse_query(&bytes).unwrap();
    assert_eq!(q.id, 0xbeef);
    assert_eq!(q.name, "Bob.I3");
    assert_eq!(q.qtype, TYPE_A);
    assert_eq!(q.qclass, CLASS_IN);
    assert!(q.recursion_desired);
    assert_eq!(q.edns, None);
    assert_eq!(q.question(), &bytes[12..]);
    assert_eq!(
        parse::fast(&bytes, q.id, true),
        Some(q.clone()),
        "fast path taken"
    );
    assert_eq!(
        parse::checked(&bytes, q.id, true),
        Some(q),
        "both paths agree"
    );
}

#[test]
fn parses_edns_and_rd_clear() {
    let bytes = query_bytes(7, "foo.ron_bar.i3", RecordType::AAAA, false, Some(4096));
    let q = parse_query(&bytes).unwrap();
    assert_eq!(q.edns, Some(4096));
    assert!(!q.recursion_desired);
    assert_eq!(q.qtype, TYPE_AAAA);
    assert_eq!(parse::checked(&bytes, 7, false), Some(q));
    // RFC 6891: sizes under 512 mean 512.
    assert_eq!(query("a.i3", RecordType::A, Some(100)).edns, Some(512));
}

#[test]
fn root_query() {
    let q = query(".", RecordType::NS, None);
    assert_eq!(q.name, "");
    let m = reparse(&answer_empty(&q));
    check_common(&m, &q, ResponseCode::NoError, true);
}

#[test]
fn answers_a_query_with_the_handle() {
    let q = query("Bob.I3", RecordType::A, None);
    let handle = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    let bytes = answer_addresses(&q, &[handle], 0);
    let m = reparse(&bytes);
    check_common(&m, &q, ResponseCode::NoError, true);
    assert_eq!(m.answers.len(), 1);
    let r = &m.answers[0];
    assert!(r.name.eq_case(&Name::from_ascii("Bob.I3.").unwrap()));
    assert_eq!(r.ttl, 0);
    assert_eq!(r.dns_class, DNSClass::IN);
    assert_eq!(r.data, RData::A(A(Ipv4Addr::new(198, 18, 0, 1))));
    assert!(m.edns.is_none(), "no OPT when the query had none");
    assert!(!m.metadata.truncation);
    // The answer's owner is a pointer to the question name.
    assert_eq!(&bytes[12 + q.question().len()..][..2], &[0xc0, 0x0c]);
}

#[test]
fn answers_aaaa_with_edns_and_only_v6() {
    let q = query("bob.i3", RecordType::AAAA, Some(4096));
    let v6 = Ipv6Addr::from_str("fd00:6f63:616c::1").unwrap();
    let addrs = [IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), IpAddr::V6(v6)];
    let m = reparse(&answer_addresses(&q, &addrs, 30));
    check_common(&m, &q, ResponseCode::NoError, true);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 30);
    assert_eq!(m.answers[0].data, RData::AAAA(AAAA(v6)));
    let edns = m.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), OUR_PAYLOAD_SIZE);
    assert_eq!(ede_of(&m), None);
}

#[test]
fn any_gets_both_families() {
    let q = query("bob.i3", RecordType::ANY, None);
    let v6 = Ipv6Addr::LOCALHOST;
    let addrs = [IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), IpAddr::V6(v6)];
    let m = reparse(&answer_addresses(&q, &addrs, 0));
    assert_eq!(m.answers.len(), 2);
}

#[test]
fn too_many_addresses_set_tc() {
    let q = query("bob.i3", RecordType::A, None);
    let addrs: Vec<IpAddr> = (0..60u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)))
        .collect();
    let bytes = answer_addresses(&q, &addrs, 0);
    assert!(bytes.len() <= 512);
    let m = reparse(&bytes);
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 60);

    let q = query("bob.i3", RecordType::A, Some(1232));
    let bytes = answer_addresses(&q, &addrs, 0);
    assert!(bytes.len() <= 1232);
    let m = reparse(&bytes);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
}

#[test]
fn answers_ptr() {
    let q = query("1.0.18.198.IN-ADDR.arpa", RecordType::PTR, Some(1232));
    let m = reparse(&answer_ptr(&q, "foo.ron_bar.i3", 0));
    check_common(&m, &q, ResponseCode::NoError, true);
    assert_eq!(m.answers.len(), 1);
    match &m.answers[0].data {
        RData::PTR(ptr) => assert_eq!(ptr.0.to_ascii(), "foo.ron_bar.i3."),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.answers[0].record_type(), RecordType::PTR);
}

#[test]
fn invalid_ptr_target_is_servfail() {
    let q = query("1.0.18.198.in-addr.arpa", RecordType::PTR, None);
    let m = reparse(&answer_ptr(&q, "a..b", 0));
    check_common(&m, &q, ResponseCode::ServFail, false);
    assert!(m.answers.is_empty());
    assert_eq!(
        ede_of(&m),
        Some((EDE_OTHER, "PTR target is not a valid DNS name".into()))
    );
}

#[test]
fn answers_empty() {
    let q = query("bob.i3", RecordType::HTTPS, None);
    let m = reparse(&answer_empty(&q));
    check_common(&m, &q, ResponseCode::NoError, true);
    assert!(m.answers.is_empty() && m.authorities.is_empty() && m.additionals.is_empty());
    assert!(m.edns.is_none());
}

#[test]
fn nxdomain_with_ede_adds_opt() {
    let q = query("A.b.c.d.e.f.g.h.i.udp_x.I3", RecordType::A, None);
    let text = "too many elements: 9 > 8";
    let m = reparse(&answer_error(
        &q,
        ErrorCode::NxDomain,
        Some((EDE_INVALID_DATA, text)),
    ));
    check_common(&m, &q, ResponseCode::NXDomain, true);
    assert_eq!(ede_of(&m), Some((EDE_INVALID_DATA, text.into())));
    assert_eq!(m.edns.as_ref().unwrap().max_payload(), OUR_PAYLOAD_SIZE);
}

#[test]
fn every_error_code() {
    let q = query("bob.i3", RecordType::A, Some(1400));
    for (code, rcode, aa) in [
        (ErrorCode::NxDomain, ResponseCode::NXDomain, true),
        (ErrorCode::ServFail, ResponseCode::ServFail, false),
        (ErrorCode::Refused, ResponseCode::Refused, false),
        (ErrorCode::FormErr, ResponseCode::FormErr, false),
        (ErrorCode::NotImp, ResponseCode::NotImp, false),
    ] {
        let m = reparse(&answer_error(&q, code, None));
        check_common(&m, &q, rcode, aa);
        assert!(m.edns.is_some(), "OPT echoed");
        assert_eq!(ede_of(&m), None);

        let m = reparse(&answer_error(
            &q,
            code,
            Some((EDE_NETWORK_ERROR, "gw down")),
        ));
        assert_eq!(ede_of(&m), Some((EDE_NETWORK_ERROR, "gw down".into())));
    }
    let plain = query("bob.i3", RecordType::A, None);
    let m = reparse(&answer_error(&plain, ErrorCode::ServFail, None));
    assert!(m.edns.is_none());
}

#[test]
fn long_ede_text_is_cut_to_fit() {
    let q = query("bob.i3", RecordType::A, None);
    let text = "é".repeat(1000);
    let bytes = answer_error(&q, ErrorCode::ServFail, Some((EDE_OTHER, &text)));
    assert!(bytes.len() <= 512, "{}", bytes.len());
    let (code, cut) = ede_of(&reparse(&bytes)).unwrap();
    assert_eq!(code, EDE_OTHER);
    assert!(text.starts_with(&cut) && cut.len() > 400);

    let q = query("bob.i3", RecordType::A, Some(4096));
    let bytes = answer_error(&q, ErrorCode::ServFail, Some((EDE_OTHER, &text)));
    assert!(bytes.len() <= usize::from(OUR_PAYLOAD_SIZE));
    assert!(ede_of(&reparse(&bytes)).unwrap().1.len() > 1100);
}

#[test]
fn header_only_errors() {
    for (code, rcode) in [
        (ErrorCode::FormErr, ResponseCode::FormErr),
        (ErrorCode::NotImp, ResponseCode::NotImp),
    ] {
        let bytes = error_for_header(0x4242, true, code);
        assert_eq!(bytes.len(), 12);
        let m = reparse(&bytes);
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.metadata.response_code, rcode);
        assert!(m.queries.is_empty());
    }
    assert!(
        !reparse(&error_for_header(1, false, ErrorCode::FormErr))
            .metadata
            .recursion_desired
    );
}

#[test]
fn query_errors() {
    assert_eq!(parse_query(&[]), Err(QueryError::Unreadable));
    assert_eq!(parse_query(&[0; 11]), Err(QueryError::Unreadable));

    let good = query_bytes(0x0102, "bob.i3", RecordType::A, true, None);
    let form_err = Err(QueryError::FormErr {
        id: 0x0102,
        recursion_desired: true,
    });

    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(parse_query(&response), Err(QueryError::NotQuery));

    let mut status = good.clone();
    status[2] |= 2 << 3; // opcode STATUS
    assert_eq!(
        parse_query(&status),
        Err(QueryError::NotImplemented {
            id: 0x0102,
            recursion_desired: true
        })
    );

    // Header only, question missing, question cut short.
    assert_eq!(parse_query(&good[..12]), form_err);
    assert_eq!(parse_query(&good[..good.len() - 1]), form_err);
    assert_eq!(parse_query(&good[..15]), form_err);

    // No question at all.
    let mut none = good[..12].to_vec();
    none[5] = 0;
    assert_eq!(parse_query(&none), form_err);

    // Oversized.
    let mut big = good.clone();
    big.resize(4097, 0);
    assert_eq!(parse_query(&big), form_err);
}

#[test]
fn two_questions_are_formerr() {
    let mut m = Message::new(9, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(
        Name::from_ascii("a.i3.").unwrap(),
        RecordType::A,
    ));
    m.add_query(HQuery::query(
        Name::from_ascii("b.i3.").unwrap(),
        RecordType::A,
    ));
    let bytes = m.to_vec().unwrap();
    assert_eq!(
        parse_query(&bytes),
        Err(QueryError::FormErr {
            id: 9,
            recursion_desired: false
        })
    );
}

#[test]
fn compression_loops_are_formerr() {
    // A question name that points at itself, and one that points forward.
    let mut looped = vec![0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(matches!(
        parse_query(&looped),
        Err(QueryError::FormErr { id: 5, .. })
    ));
    let mut forward = vec![0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    forward.extend_from_slice(&[0xc0, 20, 0, 1, 0, 1, 0, 0, 1, b'a', 0]);
    assert!(matches!(
        parse_query(&forward),
        Err(QueryError::FormErr { .. })
    ));
}

#[test]
fn duplicate_opt_is_formerr() {
    let mut bytes = query_bytes(3, "bob.i3", RecordType::A, false, Some(1232));
    let opt = bytes[bytes.len() - 11..].to_vec();
    bytes.extend_from_slice(&opt);
    bytes[11] = 2;
    assert_eq!(
        parse_query(&bytes),
        Err(QueryError::FormErr {
            id: 3,
            recursion_desired: false
        })
    );
}

#[test]
fn unusual_shapes_take_the_checked_path() {
    // An A record in the additional section: not the fast shape, still a valid query.
    let mut m = Message::new(11, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(
        Name::from_ascii("Bob.i3.").unwrap(),
        RecordType::A,
    ));
    m.add_additional(Record::from_rdata(
        Name::from_ascii("x.").unwrap(),
        0,
        RData::A(A(Ipv4Addr::LOCALHOST)),
    ));
    let mut e = Edns::new();
    e.set_max_payload(1400);
    m.set_edns(e);
    let bytes = m.to_vec().unwrap();
    assert_eq!(parse::fast(&bytes, 11, false), None);
    let q = parse_query(&bytes).unwrap();
    assert_eq!(q.name, "Bob.i3");
    assert_eq!(q.edns, Some(1400));
    let m = reparse(&answer_empty(&q));
    check_common(&m, &q, ResponseCode::NoError, true);
}

#[test]
fn edns_options_are_accepted_on_the_fast_path() {
    let mut bytes = query_bytes(3, "bob.i3", RecordType::A, true, Some(1232));
    // Append a COOKIE option (code 10, 8 bytes) to the OPT RDATA.
    let rdlen_at = bytes.len() - 2;
    bytes[rdlen_at..].copy_from_slice(&12u16.to_be_bytes());
    bytes.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    let q = parse::fast(&bytes, 3, true).expect("fast path");
    assert_eq!(q.edns, Some(1232));
    assert_eq!(parse_query(&bytes), Ok(q));
    // A broken option list is left to hickory, which rejects it.
    let mut broken = bytes.clone();
    broken[rdlen_at..rdlen_at + 2].copy_from_slice(&11u16.to_be_bytes());
    broken.pop();
    let last = broken.len() - 1;
    broken[last - 8] = 0xff; // option length far beyond the RDATA
    assert_eq!(parse::fast(&broken, 3, true), None);
    assert!(parse_query(&broken).is_err());
}

#[test]
fn odd_label_bytes_are_escaped_and_echoed_verbatim() {
    let mut bytes = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&[3, b'a', b'.', b'B', 2, 0xff, b'\\', 0, 0, 1, 0, 1]);
    let q = parse_query(&bytes).unwrap();
    assert_eq!(q.name, "a\\046B.\\255\\092");
    assert!(!matches!(
        crate::dns::parse_name(&q.name, |_| true),
        Ok(Some(_))
    ));
    let answer = answer_empty(&q);
    assert_eq!(&answer[12..], &bytes[12..]);
}

#[test]
fn query_new_matches_parsed() {
    let bytes = query_bytes(77, "Bob.I3", RecordType::A, true, Some(1232));
    let parsed = parse_query(&bytes).unwrap();
    let built = Query::new(77, "Bob.I3.", TYPE_A, CLASS_IN, true, Some(1232)).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(
        Query::new(1, &"a".repeat(64), TYPE_A, CLASS_IN, false, None),
        Err(HostError::LabelTooLong { len: 64 })
    );
}

#[test]
fn ptr_targets() {
    let v4 = |s: &str| ptr_target(s);
    assert_eq!(
        v4("1.0.18.198.in-addr.arpa"),
        Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
    );
    assert_eq!(
        v4("1.0.18.198.IN-ADDR.ARPA."),
        Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)))
    );
    assert_eq!(
        v4("255.0.0.0.in-addr.arpa"),
        Some(IpAddr::V4(Ipv4Addr::new(0, 0, 0, 255)))
    );
    for bad in [
        "0.18.198.in-addr.arpa",
        "1.1.0.18.198.in-addr.arpa",
        "256.0.18.198.in-addr.arpa",
        "01.0.18.198.in-addr.arpa",
        "a.0.18.198.in-addr.arpa",
        "-1.0.18.198.in-addr.arpa",
        "+1.0.18.198.in-addr.arpa",
        ".0.18.198.in-addr.arpa",
        "in-addr.arpa",
        "bob.i3",
        "",
        "1.0.18.198.in-addr.arpa.com",
    ] {
        assert_eq!(v4(bad), None, "{bad}");
    }

    let addr = Ipv6Addr::from_str("fd00:6f63:616c::1").unwrap();
    let nibbles: String = addr
        .octets()
        .iter()
        .rev()
        .map(|b| format!("{:x}.{:x}.", b & 0xf, b >> 4))
        .collect();
    let name = format!("{nibbles}ip6.arpa");
    assert_eq!(ptr_target(&name), Some(IpAddr::V6(addr)));
    assert_eq!(
        ptr_target(&name.to_ascii_uppercase()),
        Some(IpAddr::V6(addr))
    );
    assert_eq!(ptr_target(&format!("0.{name}")), None, "33 nibbles");
    assert_eq!(
        ptr_target(&format!("{}ip6.arpa", &nibbles[2..])),
        None,
        "31"
    );
    assert_eq!(
        ptr_target(&name.replacen('1', "10", 1)),
        None,
        "two-digit label"
    );
    assert_eq!(ptr_target(&name.replacen('1', "g", 1)), None, "not hex");
}

#[test]
fn ids() {
    let mut m = query_bytes(1, "bob.i3", RecordType::A, true, None);
    assert_eq!(id_of(&m), Some(1));
    assert!(set_id(&mut m, 0xabcd));
    assert_eq!(id_of(&m), Some(0xabcd));
    assert_eq!(parse_query(&m).unwrap().id, 0xabcd);
    let mut short = [0u8; 11];
    assert!(!set_id(&mut short, 1));
    assert_eq!(short, [0; 11]);
    assert_eq!(id_of(&short), None);
}

#[test]
fn address_queries() {
    let bytes = build_address_query(0x5150, "CNN.com.", false).unwrap();
    let m = reparse(&bytes);
    assert_eq!(m.metadata.id, 0x5150);
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    assert!(m.queries[0]
        .name()
        .eq_case(&Name::from_ascii("CNN.com.").unwrap()));
    assert_eq!(m.queries[0].query_type(), RecordType::A);
    assert_eq!(m.queries[0].query_class(), DNSClass::IN);
    assert_eq!(m.edns.as_ref().unwrap().max_payload(), OUR_PAYLOAD_SIZE);
    // Our own parser reads it too.
    assert_eq!(parse_query(&bytes).unwrap().name, "CNN.com");

    let m = reparse(&build_address_query(1, "cnn.com", true).unwrap());
    assert_eq!(m.queries[0].query_type(), RecordType::AAAA);

    assert_eq!(build_address_query(1, "", false), Err(HostError::Empty));
    assert_eq!(build_address_query(1, ".", false), Err(HostError::Empty));
    assert_eq!(
        build_address_query(1, "a..b", false),
        Err(HostError::EmptyLabel)
    );
    let long = vec!["a".repeat(60); 5].join(".");
    assert_eq!(
        build_address_query(1, &long, false),
        Err(HostError::TooLong)
    );
}

fn upstream_answer(id: u16, rcode: ResponseCode, records: Vec<Record>, tc: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.metadata.truncation = tc;
    m.add_query(HQuery::query(
        Name::from_ascii("cnn.com.").unwrap(),
        RecordType::A,
    ));
    m.add_answers(records);
    m.to_vec().unwrap()
}

#[test]
fn address_answers() {
    let name = Name::from_ascii("cnn.com.").unwrap();
    let target = Name::from_ascii("edge.cdn.net.").unwrap();
    let a1 = Ipv4Addr::new(151, 101, 1, 67);
    let a2 = Ipv4Addr::new(151, 101, 65, 67);
    let records = vec![
        Record::from_rdata(name.clone(), 60, RData::CNAME(CNAME(target.clone()))),
        Record::from_rdata(target.clone(), 60, RData::A(A(a1))),
        Record::from_rdata(target.clone(), 60, RData::A(A(a2))),
        Record::from_rdata(target, 60, RData::A(A(a1))),
    ];
    let bytes = upstream_answer(8, ResponseCode::NoError, records, false);
    assert_eq!(
        parse_address_answer(&bytes, 8),
        Ok(vec![IpAddr::V4(a1), IpAddr::V4(a2)])
    );
    assert_eq!(
        parse_address_answer(&bytes, 9),
        Err(AnswerError::IdMismatch {
            expected: 9,
            got: 8
        })
    );

    let nx = upstream_answer(8, ResponseCode::NXDomain, vec![], false);
    assert_eq!(parse_address_answer(&nx, 8), Err(AnswerError::Rcode(3)));
    assert_eq!(
        AnswerError::Rcode(3).to_string(),
        format!("DNS error {}", ResponseCode::NXDomain)
    );
    let nodata = upstream_answer(8, ResponseCode::NoError, vec![], false);
    assert_eq!(parse_address_answer(&nodata, 8), Ok(vec![]));
    let tc = upstream_answer(8, ResponseCode::NoError, vec![], true);
    assert_eq!(parse_address_answer(&tc, 8), Err(AnswerError::Truncated));

    let q = build_address_query(8, "cnn.com", false).unwrap();
    assert_eq!(parse_address_answer(&q, 8), Err(AnswerError::NotResponse));
    assert_eq!(
        parse_address_answer(&[0, 8, 0x80], 8),
        Err(AnswerError::Malformed)
    );
    let mut cut = bytes.clone();
    cut.truncate(bytes.len() - 3);
    assert_eq!(parse_address_answer(&cut, 8), Err(AnswerError::Malformed));
}
