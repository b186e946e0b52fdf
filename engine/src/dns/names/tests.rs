use super::*;

/// The overlays configured on the test node.
fn known(suffix: &str) -> bool {
    matches!(suffix, "ov" | "i3" | "ron" | "overqos" | "udp")
}

fn parse(name: &str) -> Result<Option<OverlayName>, NameError> {
    parse_name(name, known)
}

fn ours(name: &str) -> OverlayName {
    match parse(name) {
        Ok(Some(n)) => n,
        other => panic!("{name}: expected an overlay name, got {other:?}"),
    }
}

fn hop(prefix: &str, overlay: &str) -> Hop {
    Hop {
        prefix: prefix.into(),
        overlay: overlay.into(),
    }
}

fn err(name: &str) -> NameError {
    match parse(name) {
        Err(e) => e,
        other => panic!("{name}: expected an error, got {other:?}"),
    }
}

#[test]
fn single_hop_names_from_the_paper() {
    let n = ours("foo.ov");
    assert_eq!(n.hops, vec![hop("foo", "ov")]);
    assert_eq!(n.security, None);
    assert_eq!(n.canonical, "foo.ov");
    assert_eq!(n.remaining(), "");

    assert_eq!(ours("bob.i3").first_hop(), &hop("bob", "i3"));
    assert_eq!(ours("B.i3").hops, vec![hop("b", "i3")]);
    assert_eq!(ours("B.i3").canonical, "b.i3");
}

#[test]
fn overqos_preferences_stay_in_the_prefix() {
    let delay = ours("foo.delay50ms.overqos");
    assert_eq!(delay.hops, vec![hop("foo.delay50ms", "overqos")]);
    let bw = ours("foo.bandwidth1Mbps.overqos");
    assert_eq!(bw.hops, vec![hop("foo.bandwidth1mbps", "overqos")]);
    // One name, one tunnel: the two names differ.
    assert_ne!(delay.canonical, bw.canonical);
}

#[test]
fn two_hops_destination_first() {
    let n = ours("foo.ron_bar.i3");
    assert_eq!(n.hops, vec![hop("foo", "ron"), hop("bar", "i3")]);
    assert_eq!(n.first_hop(), &hop("bar", "i3"));
    assert_eq!(n.remaining(), "foo.ron");
}

#[test]
fn papers_option_example_under_destination_first_rule() {
    let n = ours("bar.shortcut.i3_foo.mindelay.ron_encrypt.oci");
    assert_eq!(
        n.hops,
        vec![hop("bar.shortcut", "i3"), hop("foo.mindelay", "ron")]
    );
    assert_eq!(n.first_hop().element(), "foo.mindelay.ron");
    assert_eq!(n.security, Some(Security::Encrypt));
    assert_eq!(n.remaining(), "bar.shortcut.i3_encrypt.oci");
}

#[test]
fn legacy_gateway_host_keeps_its_dots() {
    let n = ours("cnn.com.ip_legacygateway.i3");
    assert_eq!(
        n.hops,
        vec![hop("cnn.com", "ip"), hop("legacygateway", "i3")]
    );
    assert_eq!(n.remaining(), "cnn.com.ip");
}

#[test]
fn remaining_carries_the_options() {
    assert_eq!(
        ours("foo.ron_bar.i3_encrypt.oci").remaining(),
        "foo.ron_encrypt.oci"
    );
    assert_eq!(ours("bob.i3_auth.oci").remaining(), "");
    assert_eq!(
        ours("a.udp_b.ron_c.i3").remaining(),
        "a.udp_b.ron",
        "three hops: the gateway gets the other two, destination first"
    );
}

#[test]
fn uppercase_and_trailing_dot() {
    let n = ours("FOO.Ron_Bar.I3.");
    assert_eq!(n.canonical, "foo.ron_bar.i3");
    assert_eq!(n.hops, vec![hop("foo", "ron"), hop("bar", "i3")]);
    assert_eq!(ours("Bob.I3_ENCRYPT.OCI").security, Some(Security::Encrypt));
}

#[test]
fn options_may_stand_anywhere() {
    for name in [
        "encrypt.oci_foo.ron_bar.i3",
        "foo.ron_encrypt.oci_bar.i3",
        "foo.ron_bar.i3_encrypt.oci",
        "foo.ron_encrypt.oci_bar.i3_encrypt.oci",
    ] {
        let n = ours(name);
        assert_eq!(n.hops, vec![hop("foo", "ron"), hop("bar", "i3")], "{name}");
        assert_eq!(n.security, Some(Security::Encrypt), "{name}");
    }
    assert_eq!(ours("plain.oci_bob.i3").security, Some(Security::Plain));
    assert_eq!(ours("bob.i3_auth.oci").security, Some(Security::Auth));
}

#[test]
fn option_errors() {
    let e = err("bob.udp_fast.oci");
    assert_eq!(e.to_string(), "unknown option 'fast.oci'");
    let e = err("bob.i3_plain.oci_encrypt.oci");
    assert_eq!(
        e,
        NameError::ConflictingOptions {
            first: Security::Plain,
            second: Security::Encrypt
        }
    );
    assert_eq!(
        e.to_string(),
        "conflicting options 'plain.oci' and 'encrypt.oci'"
    );
    assert_eq!(
        err("a.b.oci_bob.i3").to_string(),
        "unknown option 'a.b.oci'"
    );
    assert_eq!(err("encrypt.oci"), NameError::NoHop);
    assert_eq!(err("encrypt.oci_auth.oci"), NameError::NoHop);
    assert_eq!(err("encrypt.oci").to_string(), "no hop in name");
}

#[test]
fn not_overlay_names_go_upstream() {
    for name in [
        "example.com",
        "example.com.",
        "www.example.com",
        "localhost",
        "i3",
        "",
        ".",
        "_dmarc.example.com",
        "foo.i3_bar.com",
        "bob.i3_",
        "bob.i3_encrypt.oci_x",
        "foo.i3.example.com",
        "b@d.com",
        "bob.i3..",
    ] {
        assert_eq!(parse(name), Ok(None), "{name:?}");
    }
}

#[test]
fn only_the_first_hop_must_be_known() {
    let n = ours("foo.unknownoverlay_bar.i3");
    assert_eq!(n.hops[0], hop("foo", "unknownoverlay"));
    // The same overlay unknown as first hop is not ours at all.
    assert_eq!(parse("bar.i3_foo.unknownoverlay"), Ok(None));
}

#[test]
fn the_closure_sees_lowercase_suffixes() {
    let seen = std::cell::RefCell::new(Vec::new());
    let r = parse_name("Bob.I3", |s| {
        seen.borrow_mut().push(s.to_owned());
        s == "i3"
    });
    assert!(matches!(r, Ok(Some(_))));
    assert_eq!(*seen.borrow(), vec!["i3".to_owned()]);
}

#[test]
fn length_limit() {
    // 253 characters: ok; 254: too long. Labels of 63 characters keep each label valid.
    let l63 = "a".repeat(63);
    let base = format!("{l63}.{l63}.{l63}.");
    let ok = format!("{base}{}.i3", "b".repeat(253 - base.len() - 3));
    assert_eq!(ok.len(), 253);
    assert!(ours(&ok).hops.len() == 1);
    assert!(
        ours(&format!("{ok}.")).hops.len() == 1,
        "trailing dot is free"
    );
    let long = format!("{base}{}.i3", "b".repeat(254 - base.len() - 3));
    assert_eq!(long.len(), 254);
    assert_eq!(err(&long), NameError::TooLong { len: 254 });
    let too_long = format!("{}.i3", "a.".repeat(128));
    assert_eq!(
        err(&too_long).to_string(),
        "name too long: 259 > 253 characters"
    );
}

#[test]
fn element_limit() {
    let eight = ["a.udp"; 7].join("_") + "_g.i3";
    assert_eq!(ours(&eight).hops.len(), 8);
    let eight_with_option = ["a.udp"; 6].join("_") + "_encrypt.oci_g.i3";
    assert_eq!(ours(&eight_with_option).hops.len(), 7);
    let nine = ["a.udp"; 8].join("_") + "_g.i3";
    assert_eq!(err(&nine), NameError::TooManyElements { count: 9 });
    assert_eq!(err(&nine).to_string(), "too many elements: 9 > 8");
}

#[test]
fn grammar_errors() {
    assert_eq!(err("foo.ron__bar.i3"), NameError::EmptyElement);
    assert_eq!(err("_bob.i3"), NameError::EmptyElement);
    assert_eq!(err("foo..ron_bar.i3"), NameError::EmptyLabel);
    assert_eq!(err(".i3"), NameError::EmptyLabel);
    let e = err("bob_bar.i3");
    assert_eq!(e.to_string(), "element 'bob' has no overlay suffix");
    assert_eq!(err("b@d.i3"), NameError::InvalidCharacter { ch: '@' });
    assert_eq!(err("bob b.i3"), NameError::InvalidCharacter { ch: ' ' });
    assert_eq!(err("bö.i3"), NameError::InvalidCharacter { ch: 'ö' });
    assert_eq!(err("b\\.i3"), NameError::InvalidCharacter { ch: '\\' });
    let long_label = format!("{}.i3", "x".repeat(64));
    assert_eq!(err(&long_label), NameError::LabelTooLong { len: 64 });
    assert_eq!(
        err(&long_label).to_string(),
        "label too long: 64 > 63 characters"
    );
}

#[test]
fn long_snippets_are_cut() {
    let name = format!("{}.{}.oci_bob.i3", "x".repeat(63), "y".repeat(63));
    match err(&name) {
        NameError::UnknownOption { option } => {
            assert!(option.len() <= 63);
            assert!(option.ends_with("..."));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn split_options_strips_from_the_right() {
    let opt = |l: &str| matches!(l, "shortcut" | "mindelay" | "delay50ms");
    assert_eq!(
        split_options("bar.shortcut", opt),
        ("bar", vec!["shortcut"])
    );
    assert_eq!(split_options("cnn.com", opt), ("cnn.com", vec![]));
    assert_eq!(split_options("bar", opt), ("bar", vec![]));
    assert_eq!(
        split_options("foo.mindelay.shortcut", opt),
        ("foo", vec!["mindelay", "shortcut"])
    );
    // The host part never becomes empty.
    assert_eq!(split_options("shortcut", opt), ("shortcut", vec![]));
    assert_eq!(
        split_options("shortcut.mindelay", opt),
        ("shortcut", vec!["mindelay"])
    );
    // Only the right end: an option label inside the host stays.
    assert_eq!(
        split_options("a.shortcut.b.delay50ms", opt),
        ("a.shortcut.b", vec!["delay50ms"])
    );
}

proptest::proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,300}") {
        let _ = parse_name(&s, known);
    }

    #[test]
    fn grammar_like_names_never_panic(s in "[a-zA-Z0-9._\\-]{0,300}") {
        if let Ok(Some(n)) = parse_name(&s, |_| true) {
            proptest::prop_assert!(!n.hops.is_empty());
            proptest::prop_assert!(n.canonical.len() <= MAX_NAME_LEN);
            let _ = n.remaining();
        }
    }
}
