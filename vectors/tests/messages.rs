//! Checks `wire/messages.toml`: every vector encodes to its exact bytes and parses back to
//! its fields; every invalid datagram fails with the stated error.

use std::collections::BTreeSet;

use ocala_engine::wire::message::{
    Accept, Close, CloseReason, Confirm, CookieReply, Families, Grant, Keepalive, Message, Reject,
    RejectReason, Setup, Sources,
};
use ocala_engine::wire::WireError;
use ocala_vectors::{from_hex, to_hex, InvalidVector};
use serde::Deserialize;

const MESSAGES: &str = include_str!("../wire/messages.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    message: Vec<Vector>,
    invalid: Vec<InvalidVector>,
}

/// One message vector. Which fields are present depends on `kind`; a field the kind does
/// not use must be absent (checked in `message()`), so that a typo cannot go unnoticed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    kind: String,
    hex: String,
    label: Option<u32>,
    payload: Option<String>,
    sender_label: Option<u32>,
    receiver_label: Option<u32>,
    path_id: Option<String>,
    hop_count: Option<u8>,
    options: Option<u8>,
    return_name: Option<String>,
    remaining: Option<String>,
    handshake: Option<String>,
    reason: Option<u8>,
    reason_text: Option<String>,
    text: Option<String>,
    reply_requested: Option<bool>,
    is_reply: Option<bool>,
    seq: Option<u32>,
    cookie: Option<String>,
    /// Grant: the sealed keys.
    sealed: Option<String>,
    /// Accept: `"v4"` or `"v6"` when the far end takes one family only.
    families: Option<String>,
    /// Setup: the initiator's proposed source addresses (address negotiation), if any.
    sources_v4: Option<std::net::Ipv4Addr>,
    sources_v6: Option<std::net::Ipv6Addr>,
}

fn load() -> File {
    toml::from_str(MESSAGES).expect("wire/messages.toml parses")
}

fn req<T: Clone>(name: &str, field: &str, v: &Option<T>) -> T {
    v.clone()
        .unwrap_or_else(|| panic!("{name}: missing field `{field}`"))
}

fn bytes(name: &str, field: &str, v: &Option<String>) -> Vec<u8> {
    from_hex(&req(name, field, v)).unwrap_or_else(|e| panic!("{name}: `{field}`: {e}"))
}

fn path_id(v: &Vector) -> u64 {
    let text = req(&v.name, "path_id", &v.path_id);
    let digits = text
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("{}: path_id must start with 0x", v.name));
    assert_eq!(digits.len(), 16, "{}: path_id must have 16 digits", v.name);
    u64::from_str_radix(digits, 16).unwrap_or_else(|e| panic!("{}: path_id: {e}", v.name))
}

/// Owned byte fields, so that the borrowed `Message` can point into them.
struct Blobs {
    payload: Vec<u8>,
    handshake: Vec<u8>,
    sealed: Vec<u8>,
}

impl Vector {
    /// Names of the optional fields that are set.
    fn present(&self) -> BTreeSet<&'static str> {
        let all: [(&'static str, bool); 18] = [
            ("label", self.label.is_some()),
            ("payload", self.payload.is_some()),
            ("sender_label", self.sender_label.is_some()),
            ("receiver_label", self.receiver_label.is_some()),
            ("path_id", self.path_id.is_some()),
            ("hop_count", self.hop_count.is_some()),
            ("options", self.options.is_some()),
            ("return_name", self.return_name.is_some()),
            ("remaining", self.remaining.is_some()),
            ("handshake", self.handshake.is_some()),
            ("reason", self.reason.is_some()),
            ("reason_text", self.reason_text.is_some()),
            ("text", self.text.is_some()),
            ("reply_requested", self.reply_requested.is_some()),
            ("is_reply", self.is_reply.is_some()),
            ("seq", self.seq.is_some()),
            ("cookie", self.cookie.is_some()),
            ("sealed", self.sealed.is_some()),
        ];
        all.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect()
    }

    fn blobs(&self) -> Blobs {
        Blobs {
            payload: match self.payload {
                Some(_) => bytes(&self.name, "payload", &self.payload),
                None => Vec::new(),
            },
            handshake: match self.handshake {
                Some(_) => bytes(&self.name, "handshake", &self.handshake),
                None => Vec::new(),
            },
            sealed: match self.sealed {
                Some(_) => bytes(&self.name, "sealed", &self.sealed),
                None => Vec::new(),
            },
        }
    }

    /// The message these fields describe. Panics on a missing or superfluous field.
    fn message<'a>(&'a self, blobs: &'a Blobs) -> Message<'a> {
        let n = self.name.as_str();
        assert!(
            self.kind == "setup" || (self.sources_v4.is_none() && self.sources_v6.is_none()),
            "{n}: only setups propose sources"
        );
        let expected: &[&str] = match self.kind.as_str() {
            "data" => &["label", "payload"],
            "setup" => &[
                "sender_label",
                "path_id",
                "hop_count",
                "options",
                "return_name",
                "remaining",
                "handshake",
            ],
            "accept" => &["sender_label", "receiver_label", "path_id", "handshake"],
            "reject" => &["receiver_label", "path_id", "reason", "reason_text", "text"],
            "close" => &["receiver_label", "path_id", "reason", "reason_text"],
            "keepalive" => &["reply_requested", "is_reply", "seq"],
            "confirm" => &["receiver_label", "path_id", "handshake"],
            "cookie" => &["receiver_label", "path_id", "cookie"],
            "grant" => &["receiver_label", "path_id", "sealed"],
            other => panic!("{n}: unknown kind {other:?}"),
        };
        assert_eq!(
            self.present(),
            expected.iter().copied().collect::<BTreeSet<_>>(),
            "{n}: fields do not match kind {:?}",
            self.kind
        );
        match self.kind.as_str() {
            "data" => Message::Data {
                label: req(n, "label", &self.label),
                payload: &blobs.payload,
            },
            "setup" => Message::Setup(Setup {
                sender_label: req(n, "sender_label", &self.sender_label),
                path_id: path_id(self),
                hop_count: req(n, "hop_count", &self.hop_count),
                options: req(n, "options", &self.options),
                return_name: self.return_name.as_deref().unwrap_or_default(),
                remaining: self.remaining.as_deref().unwrap_or_default(),
                handshake: &blobs.handshake,
                sources: Sources {
                    v4: self.sources_v4,
                    v6: self.sources_v6,
                },
            }),
            "accept" => Message::Accept(Accept {
                sender_label: req(n, "sender_label", &self.sender_label),
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                handshake: &blobs.handshake,
                families: match self.families.as_deref() {
                    None => Families::BOTH,
                    Some("v4") => Families::V4,
                    Some("v6") => Families::V6,
                    Some(other) => panic!("{n}: families: '{other}' is not v4 or v6"),
                },
            }),
            "reject" => Message::Reject(Reject {
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                reason: RejectReason::from_u8(req(n, "reason", &self.reason)),
                text: self.text.as_deref().unwrap_or_default(),
            }),
            "close" => Message::Close(Close {
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                reason: CloseReason::from_u8(req(n, "reason", &self.reason)),
            }),
            "confirm" => Message::Confirm(Confirm {
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                handshake: &blobs.handshake,
            }),
            "cookie" => Message::Cookie(CookieReply {
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                cookie: bytes(n, "cookie", &self.cookie)
                    .try_into()
                    .expect("16-byte cookie"),
            }),
            "grant" => Message::Grant(Grant {
                receiver_label: req(n, "receiver_label", &self.receiver_label),
                path_id: path_id(self),
                sealed: &blobs.sealed,
            }),
            _ => Message::Keepalive(Keepalive {
                reply_requested: req(n, "reply_requested", &self.reply_requested),
                is_reply: req(n, "is_reply", &self.is_reply),
                seq: req(n, "seq", &self.seq),
            }),
        }
    }
}

#[test]
fn every_vector_encodes_to_its_bytes_and_parses_back() {
    let file = load();
    for v in &file.message {
        let blobs = v.blobs();
        let msg = v.message(&blobs);
        let wire = from_hex(&v.hex).unwrap_or_else(|e| panic!("{}: hex: {e}", v.name));
        assert_eq!(msg.kind_name(), v.kind, "{}", v.name);

        // encode appends: start from a non-empty buffer to check that too.
        let mut out = vec![0xa5, 0x5a];
        msg.encode(&mut out)
            .unwrap_or_else(|e| panic!("{}: encode: {e}", v.name));
        assert_eq!(&out[..2], &[0xa5, 0x5a], "{}: prefix clobbered", v.name);
        assert_eq!(
            to_hex(&out[2..]),
            to_hex(&wire),
            "{}: encoded bytes differ",
            v.name
        );

        let parsed = Message::parse(&wire).unwrap_or_else(|e| panic!("{}: parse: {e}", v.name));
        assert_eq!(parsed, msg, "{}: parsed fields differ", v.name);
        assert_eq!(parsed.kind(), wire[0] & 0x0f, "{}", v.name);
    }
}

#[test]
fn reason_codes_map_to_the_named_reasons() {
    let file = load();
    for v in &file.message {
        let Some(reason) = v.reason else { continue };
        let want = req(&v.name, "reason_text", &v.reason_text);
        let got = match v.kind.as_str() {
            "reject" => RejectReason::from_u8(reason).to_string(),
            "close" => CloseReason::from_u8(reason).to_string(),
            other => panic!("{}: reason on a {other} message", v.name),
        };
        assert_eq!(got, want, "{}", v.name);
        // The code is on the wire just before the text (reject) or last (close).
        let wire = from_hex(&v.hex).unwrap_or_else(|e| panic!("{}: hex: {e}", v.name));
        assert_eq!(wire[13], reason, "{}: reason byte at offset 13", v.name);
    }
}

#[test]
fn vectors_cover_every_type_and_reason() {
    let file = load();
    let kinds: BTreeSet<&str> = file.message.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "data",
            "setup",
            "accept",
            "reject",
            "close",
            "keepalive",
            "confirm",
            "cookie",
            "grant"
        ]
        .into_iter()
        .collect()
    );
    let codes = |kind: &str| -> BTreeSet<u8> {
        file.message
            .iter()
            .filter(|v| v.kind == kind)
            .filter_map(|v| v.reason)
            .collect()
    };
    let reject = codes("reject");
    for code in 1..=9 {
        assert!(reject.contains(&code), "no reject vector with code {code}");
    }
    assert!(
        reject
            .iter()
            .any(|&c| matches!(RejectReason::from_u8(c), RejectReason::Unknown(_))),
        "no reject vector with an unknown code"
    );
    let close = codes("close");
    for code in 1..=4 {
        assert!(close.contains(&code), "no close vector with code {code}");
    }
    assert!(
        close
            .iter()
            .any(|&c| matches!(CloseReason::from_u8(c), CloseReason::Unknown(_))),
        "no close vector with an unknown code"
    );
    let setups: Vec<&Vector> = file.message.iter().filter(|v| v.kind == "setup").collect();
    let has = |f: &dyn Fn(&Vector) -> bool| setups.iter().any(|v| f(v));
    assert!(has(&|v| v.remaining.as_deref() == Some("")));
    assert!(has(&|v| v.remaining.as_deref() != Some("")));
    assert!(has(&|v| v.handshake.as_deref() == Some("")));
    assert!(has(&|v| v.handshake.as_deref() != Some("")));
    let keepalives: BTreeSet<(bool, bool)> = file
        .message
        .iter()
        .filter(|v| v.kind == "keepalive")
        .map(|v| (v.reply_requested == Some(true), v.is_reply == Some(true)))
        .collect();
    assert!(keepalives.contains(&(true, false)), "no keepalive request");
    assert!(keepalives.contains(&(false, true)), "no keepalive reply");
    let names: BTreeSet<&str> = file.message.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), file.message.len(), "duplicate vector names");
}

#[test]
fn invalid_datagrams_fail_with_the_stated_error() {
    let file = load();
    assert!(!file.invalid.is_empty());
    let mut seen = BTreeSet::new();
    for v in &file.invalid {
        let wire = from_hex(&v.hex).unwrap_or_else(|e| panic!("{}: hex: {e}", v.name));
        match Message::parse(&wire) {
            Ok(m) => panic!("{}: parsed as {m:?}", v.name),
            Err(e) => assert_eq!(format!("{e:?}"), v.error, "{}", v.name),
        }
        seen.insert(v.error.split('(').next().unwrap_or_default().to_owned());
    }
    for want in [
        "Truncated",
        "BadVersion",
        "UnknownType",
        "BadLength",
        "BadHeader",
        "BadName",
    ] {
        assert!(seen.contains(want), "no invalid vector for {want}");
    }
}

/// Every strict prefix of a control message is truncated; data messages only need their
/// 5-byte header; an accept without its optional families byte is one for both families,
/// and a setup without its proposed sources one that proposes none.
#[test]
fn prefixes_of_control_vectors_are_truncated() {
    let file = load();
    for v in &file.message {
        let wire = from_hex(&v.hex).unwrap_or_else(|e| panic!("{}: hex: {e}", v.name));
        let proposed =
            4 * usize::from(v.sources_v4.is_some()) + 16 * usize::from(v.sources_v6.is_some());
        let min = match (v.kind.as_str(), &v.families) {
            ("data", _) => 5,
            ("accept", Some(_)) => wire.len() - 1,
            ("setup", _) => wire.len() - proposed,
            _ => wire.len(),
        };
        if proposed > 0 {
            let bare = Message::parse(&wire[..min]);
            assert!(
                matches!(bare, Ok(Message::Setup(s)) if s.sources == Sources::default()),
                "{}: {bare:?}",
                v.name
            );
        }
        for n in 0..min {
            assert_eq!(
                Message::parse(&wire[..n]),
                Err(WireError::Truncated),
                "{}: prefix of {n} bytes",
                v.name
            );
        }
    }
}

/// Fields the parser would refuse are refused by the encoder too, leaving the buffer as it
/// was.
#[test]
fn encoder_refuses_what_the_parser_refuses() {
    let base = Setup {
        sender_label: 7,
        path_id: 0x1122_3344_5566_7788,
        hop_count: 0,
        options: 0,
        return_name: "alice.udp",
        remaining: "",
        handshake: &[],
        sources: Sources::default(),
    };
    let long = "a".repeat(254);
    let big = vec![0u8; 65_536];
    let cases: [(Setup<'_>, WireError); 5] = [
        (
            Setup {
                return_name: "",
                ..base
            },
            WireError::BadName,
        ),
        (
            Setup {
                return_name: "alice udp",
                ..base
            },
            WireError::BadName,
        ),
        (
            Setup {
                remaining: "caf\u{e9}",
                ..base
            },
            WireError::BadName,
        ),
        (
            Setup {
                remaining: &long,
                ..base
            },
            WireError::BadName,
        ),
        (
            Setup {
                handshake: &big,
                ..base
            },
            WireError::TooLarge,
        ),
    ];
    for (setup, err) in cases {
        let mut out = vec![1, 2, 3];
        assert_eq!(
            Message::Setup(setup).encode(&mut out),
            Err(err),
            "{setup:?}"
        );
        assert_eq!(out, [1, 2, 3]);
    }
    let text = "x".repeat(256);
    let mut out = Vec::new();
    let reject = Message::Reject(Reject {
        receiver_label: 0,
        path_id: 0,
        reason: RejectReason::Refused,
        text: &text,
    });
    assert_eq!(reject.encode(&mut out), Err(WireError::TooLarge));
    assert!(out.is_empty());
    // The longest allowed name and text are accepted.
    let name = "n".repeat(253);
    let ok = Message::Setup(Setup {
        return_name: &name,
        ..base
    });
    ok.encode(&mut out).expect("253-byte name encodes");
    assert_eq!(out.len(), 1 + 4 + 8 + 2 + 1 + 253 + 1 + 2);
    assert_eq!(out[15], 253);
}
