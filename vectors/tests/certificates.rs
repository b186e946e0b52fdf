//! Checks `security/certificates.toml`: certificates and chains issue to their exact bytes,
//! decode back and verify; every invalid input fails with the stated error and message.

use ocala_engine::security::{
    CaKey, CertError, CertSpec, Certificate, Chain, DelegationSpec, IdentityKey, TrustBundle,
};
use ocala_vectors::{from_hex, to_hex};
use serde::Deserialize;

const CERTIFICATES: &str = include_str!("../security/certificates.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ca: Ca,
    other_ca: Ca,
    holder: Vec<Holder>,
    certificate: Vec<CertVector>,
    chain: Vec<ChainVector>,
    invalid: Vec<Invalid>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ca {
    seed: String,
    public: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Holder {
    name: String,
    static_key: String,
    identity_seed: String,
    identity_public: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertVector {
    name: String,
    issuer: String,
    holder: String,
    serial: u64,
    names: Vec<String>,
    not_before: u64,
    not_after: u64,
    verify_name: String,
    verify_at: u64,
    hex: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainVector {
    name: String,
    endpoint: String,
    verify_name: String,
    verify_at: u64,
    next_hop: String,
    hex: String,
    #[serde(default)]
    middlebox: Vec<Middlebox>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Middlebox {
    name: String,
    static_key: String,
    not_before: u64,
    not_after: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalid {
    name: String,
    kind: String,
    verify_name: String,
    verify_at: u64,
    error: String,
    message: String,
    hex: String,
}

fn load() -> File {
    toml::from_str(CERTIFICATES).expect("security/certificates.toml parses")
}

fn bytes(what: &str, hex: &str) -> Vec<u8> {
    from_hex(hex).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn key(what: &str, hex: &str) -> [u8; 32] {
    bytes(what, hex)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("{what}: {} bytes, not 32", b.len()))
}

fn ca_key(ca: &Ca) -> CaKey {
    let key = CaKey::from_seed(key("ca seed", &ca.seed));
    assert_eq!(
        to_hex(&key.public()),
        ca.public,
        "CA public key from its seed"
    );
    key
}

fn holder<'f>(file: &'f File, name: &str) -> &'f Holder {
    file.holder
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("no holder {name:?}"))
}

fn identity(h: &Holder) -> IdentityKey {
    let id = IdentityKey::from_seed(key("identity seed", &h.identity_seed));
    assert_eq!(
        to_hex(&id.public()),
        h.identity_public,
        "{}: identity",
        h.name
    );
    id
}

fn issue(file: &File, v: &CertVector) -> Certificate {
    let ca = match v.issuer.as_str() {
        "ca" => ca_key(&file.ca),
        "other_ca" => ca_key(&file.other_ca),
        other => panic!("{}: unknown issuer {other:?}", v.name),
    };
    let h = holder(file, &v.holder);
    ca.issue(&CertSpec {
        serial: v.serial,
        names: v.names.clone(),
        static_key: key("static key", &h.static_key),
        identity_key: identity(h).public(),
        not_before: v.not_before,
        not_after: v.not_after,
    })
    .unwrap_or_else(|e| panic!("{}: issue: {e}", v.name))
}

fn bundle(file: &File) -> TrustBundle {
    TrustBundle::new(&[ca_key(&file.ca).public()]).expect("trust bundle")
}

#[test]
fn certificates_encode_decode_and_verify() {
    let file = load();
    let bundle = bundle(&file);
    assert!(file.certificate.len() >= 3);
    for v in &file.certificate {
        let expected = bytes(&v.name, &v.hex);
        let cert = issue(&file, v);
        assert_eq!(
            to_hex(&cert.encode()),
            to_hex(&expected),
            "{}: issued bytes",
            v.name
        );
        let decoded =
            Certificate::decode(&expected).unwrap_or_else(|e| panic!("{}: decode: {e}", v.name));
        assert_eq!(decoded, cert, "{}: decoded fields", v.name);
        assert_eq!(decoded.names(), v.names.as_slice());
        assert_eq!(decoded.serial(), v.serial);
        assert_eq!(decoded.not_before(), v.not_before);
        assert_eq!(decoded.not_after(), v.not_after);
        let h = holder(&file, &v.holder);
        assert_eq!(to_hex(decoded.static_key()), h.static_key);
        assert_eq!(to_hex(decoded.identity_key()), h.identity_public);
        let result = bundle.verify(&decoded, &v.verify_name, v.verify_at);
        let want = if v.issuer == "ca" {
            Ok(())
        } else {
            Err(CertError::UnknownCa)
        };
        assert_eq!(result, want, "{}: verify", v.name);
    }
}

/// The layout of the first certificate, written out field by field from the module docs
/// rather than taken from the encoder.
#[test]
fn first_certificate_layout_by_hand() {
    let file = load();
    let v = &file.certificate[0];
    let b = bytes(&v.name, &v.hex);
    let h = holder(&file, &v.holder);
    assert_eq!(b.len(), 3 + 1 + 8 + 8 + 8 + 32 + 32 + 32 + 1 + 1 + 7 + 64);
    assert_eq!(&b[0..3], b"OCC", "magic");
    assert_eq!(b[3], 1, "version");
    assert_eq!(b[4..12], [0, 0, 0, 0, 0, 0, 0, 1], "serial 1");
    // 1767225600 = 0x6955b900 (2026-01-01), 1798761600 = 0x6b36ec80 (2027-01-01).
    assert_eq!(
        b[12..20],
        [0, 0, 0, 0, 0x69, 0x55, 0xb9, 0x00],
        "not_before"
    );
    assert_eq!(b[20..28], [0, 0, 0, 0, 0x6b, 0x36, 0xec, 0x80], "not_after");
    let pattern: Vec<u8> = (0x40..0x60).collect();
    assert_eq!(b[28..60], pattern[..], "static key 40 41 .. 5f");
    assert_eq!(to_hex(&b[28..60]), h.static_key);
    assert_eq!(to_hex(&b[60..92]), h.identity_public, "identity key");
    assert_eq!(to_hex(&b[92..124]), file.ca.public, "issuer");
    assert_eq!(b[124], 1, "one name");
    assert_eq!(b[125], 7, "name length");
    assert_eq!(&b[126..133], b"bob.udp");
    // The rest is the CA's 64-byte signature over "ocala cert v1\0" and bytes 0..133; the
    // invalid vectors show that changing any signed byte breaks it.
    assert_eq!(b.len() - 133, 64, "signature");
}

#[test]
fn chains_encode_decode_and_verify() {
    let file = load();
    let bundle = bundle(&file);
    assert!(file.chain.iter().any(|c| !c.middlebox.is_empty()));
    for v in &file.chain {
        let cv = file
            .certificate
            .iter()
            .find(|c| c.name == v.endpoint)
            .unwrap_or_else(|| panic!("{}: no certificate {:?}", v.name, v.endpoint));
        let endpoint = issue(&file, cv);
        let specs: Vec<DelegationSpec> = v
            .middlebox
            .iter()
            .map(|m| DelegationSpec {
                middlebox_name: m.name.clone(),
                middlebox_static_key: key("middlebox key", &m.static_key),
                not_before: m.not_before,
                not_after: m.not_after,
            })
            .collect();
        let id = identity(holder(&file, &cv.holder));
        let chain = Chain::build(endpoint, &id, &specs)
            .unwrap_or_else(|e| panic!("{}: build: {e}", v.name));
        let expected = bytes(&v.name, &v.hex);
        assert_eq!(
            to_hex(&chain.encode()),
            to_hex(&expected),
            "{}: chain bytes",
            v.name
        );
        let decoded =
            Chain::decode(&expected).unwrap_or_else(|e| panic!("{}: decode: {e}", v.name));
        assert_eq!(decoded, chain, "{}: decoded", v.name);
        for (i, (d, m)) in decoded.delegations.iter().zip(&v.middlebox).enumerate() {
            assert_eq!(usize::from(d.segment), i);
            assert_eq!(d.middlebox_name, m.name);
        }
        let next = bundle
            .verify_chain(&decoded, &v.verify_name, v.verify_at)
            .unwrap_or_else(|e| panic!("{}: verify_chain: {e}", v.name));
        assert_eq!(to_hex(next), v.next_hop, "{}: next hop", v.name);
        // The chain starts with its magic and version, then the certificate's own bytes.
        assert_eq!(&expected[..4], b"OCH\x01");
        let cert_bytes = bytes(&cv.name, &cv.hex);
        assert_eq!(&expected[4..4 + cert_bytes.len()], cert_bytes.as_slice());
        assert_eq!(
            usize::from(expected[4 + cert_bytes.len()]),
            v.middlebox.len()
        );
    }
}

#[test]
fn invalid_inputs_fail_as_stated() {
    let file = load();
    let bundle = bundle(&file);
    let mut kinds = std::collections::BTreeSet::new();
    for v in &file.invalid {
        let input = bytes(&v.name, &v.hex);
        let err: CertError = match v.kind.as_str() {
            "certificate" => match Certificate::decode(&input) {
                Err(e) => e,
                Ok(cert) => match bundle.verify(&cert, &v.verify_name, v.verify_at) {
                    Err(e) => e,
                    Ok(()) => panic!("{}: verified", v.name),
                },
            },
            "chain" => match Chain::decode(&input) {
                Err(e) => e,
                Ok(chain) => match bundle.verify_chain(&chain, &v.verify_name, v.verify_at) {
                    Err(e) => e,
                    Ok(_) => panic!("{}: verified", v.name),
                },
            },
            other => panic!("{}: unknown kind {other:?}", v.name),
        };
        assert_eq!(format!("{err:?}"), v.error, "{}: error", v.name);
        assert_eq!(err.to_string(), v.message, "{}: message", v.name);
        let variant = v.error.split(['(', ' ']).next().unwrap_or_default();
        kinds.insert(variant.to_owned());
    }
    for required in [
        "BadSignature",
        "Expired",
        "UnknownCa",
        "NameMismatch",
        "Malformed",
        "BadVersion",
        "BadDelegationSignature",
        "SegmentOutOfOrder",
        "DelegationExpired",
    ] {
        assert!(kinds.contains(required), "no invalid vector for {required}");
    }
}

/// Every vector's hex differs from the others (so a copy-paste slip cannot make two
/// vectors test the same thing by accident), except invalid ones that reuse a valid input
/// with a different time or name.
#[test]
fn invalid_hex_inputs_are_distinct_when_they_should_be() {
    let file = load();
    let valid: Vec<Vec<u8>> = file
        .certificate
        .iter()
        .map(|c| bytes(&c.name, &c.hex))
        .chain(file.chain.iter().map(|c| bytes(&c.name, &c.hex)))
        .collect();
    for v in &file.invalid {
        let input = bytes(&v.name, &v.hex);
        let reuses_valid = valid.contains(&input);
        let by_context = v.error.starts_with("Expired")
            || v.error.starts_with("NotYetValid")
            || v.error.starts_with("NameMismatch")
            || v.error.starts_with("DelegationExpired")
            || v.error.starts_with("UnknownCa");
        assert_eq!(
            reuses_valid, by_context,
            "{}: only time, name or trust failures may reuse valid bytes",
            v.name
        );
    }
}
