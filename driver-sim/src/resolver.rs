//! DNS on the simulated hosts' side: the stub queries app models send to the sentinel, the
//! answers they read back, and the upstream resolver the engines forward other names to.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

/// What an app read from a DNS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: String,
    pub addrs: Vec<IpAddr>,
    pub names: Vec<String>,
    /// Extended DNS Error (info code, text), if any.
    pub ede: Option<(u16, String)>,
}

/// A stub query for `name` with record type `qtype` ("A", "AAAA", "PTR", "MX", ...).
pub fn query(id: u16, name: &str, qtype: &str) -> Result<Vec<u8>, String> {
    let rtype = RecordType::from_str(&qtype.to_ascii_uppercase())
        .map_err(|e| format!("qtype '{qtype}': {e}"))?;
    let name = Name::from_ascii(name).map_err(|e| format!("name '{name}': {e}"))?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name, rtype));
    m.to_vec().map_err(|e| e.to_string())
}

/// Reads an answer; None if it is not a DNS message.
pub fn read_answer(bytes: &[u8]) -> Option<Answer> {
    let m = Message::from_vec(bytes).ok()?;
    let mut addrs = Vec::new();
    let mut names = Vec::new();
    for r in &m.answers {
        match &r.data {
            RData::A(a) => addrs.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addrs.push(IpAddr::V6(a.0)),
            RData::PTR(p) => names.push(p.0.to_ascii()),
            _ => {}
        }
    }
    let ede = m.edns.as_ref().and_then(|e| {
        e.options()
            .as_ref()
            .iter()
            .find_map(|(code, opt)| match (u16::from(*code), opt) {
                (15, hickory_proto::rr::rdata::opt::EdnsOption::Unknown(_, data))
                    if data.len() >= 2 =>
                {
                    Some((
                        u16::from_be_bytes([data[0], data[1]]),
                        String::from_utf8_lossy(&data[2..]).into_owned(),
                    ))
                }
                _ => None,
            })
    });
    Some(Answer {
        rcode: rcode_text(m.metadata.response_code),
        addrs,
        names,
        ede,
    })
}

fn rcode_text(r: ResponseCode) -> String {
    match r {
        ResponseCode::NoError => "noerror".into(),
        ResponseCode::NXDomain => "nxdomain".into(),
        ResponseCode::ServFail => "servfail".into(),
        ResponseCode::FormErr => "formerr".into(),
        ResponseCode::NotImp => "notimp".into(),
        ResponseCode::Refused => "refused".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// The upstream resolver: answers A/AAAA from the scenario's table, NXDOMAIN otherwise.
pub fn upstream_answer(table: &BTreeMap<String, IpAddr>, query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    let key = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    m.add_query(question.clone());
    match table.get(&key) {
        Some(ip) => {
            let data = match (ip, question.query_type()) {
                (IpAddr::V4(a), RecordType::A) => Some(RData::A(A(*a))),
                (IpAddr::V6(a), RecordType::AAAA) => Some(RData::AAAA(AAAA(*a))),
                _ => None,
            };
            if let Some(data) = data {
                m.add_answer(Record::from_rdata(question.name().clone(), 300, data));
            }
        }
        None => m.metadata.response_code = ResponseCode::NXDomain,
    }
    if q.edns.is_some() {
        m.set_edns(Edns::new());
    }
    m.to_vec().ok()
}
