use super::*;

fn rules(list: &[(&str, &str)]) -> Result<Rules, RuleError> {
    let owned: Vec<(String, String)> = list
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect();
    Rules::new(&owned)
}

fn ok(list: &[(&str, &str)]) -> Rules {
    match rules(list) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn papers_company_rule() {
    let r = ok(&[(r"^(.*)\.company1\.com$", "${1}.company1.com_gw1.i3")]);
    assert_eq!(r.apply("www.company1.com"), "www.company1.com_gw1.i3");
    assert_eq!(r.apply("www.company2.com"), "www.company2.com");
    assert!(matches!(r.apply("www.company2.com"), Cow::Borrowed(_)));
}

#[test]
fn whole_match_followed_by_underscore() {
    // `$0_gw1` would be a group named `0_gw1` to the regex crate; we read it as `${0}_gw1`.
    let r = ok(&[(r"^(.*)\.company1\.com$", "$0_gw1.i3")]);
    assert_eq!(r.apply("www.company1.com"), "www.company1.com_gw1.i3");
    let r = ok(&[(r"^(.*)\.cnn\.com$", "$1.cnn.com.ip_legacygateway.i3")]);
    assert_eq!(r.apply("www.cnn.com"), "www.cnn.com.ip_legacygateway.i3");
}

#[test]
fn matching_is_case_insensitive() {
    let r = ok(&[(r"^(.*)\.company1\.com$", "$0_gw1.i3")]);
    assert_eq!(r.apply("WWW.Company1.COM"), "WWW.Company1.COM_gw1.i3");
}

#[test]
fn named_groups_and_literal_dollars() {
    let r = ok(&[(r"^(?P<host>[a-z]+)\.corp$", "${host}.x$$_$host.ron")]);
    assert_eq!(r.apply("db.corp"), "db.x$_db.ron");
    let r = ok(&[(r"^a$", "cost$")]);
    assert_eq!(r.apply("a"), "cost$");
    let r = ok(&[(r"^a$", "x${")]);
    assert_eq!(r.apply("a"), "x${");
}

#[test]
fn first_matching_rule_wins_and_applies_once() {
    let r = ok(&[
        (r"\.example\.com$", "$0_first.i3"),
        (r"\.com$", "$0_second.i3"),
        (r"^(.*)$", "$1_again.i3"),
    ]);
    assert_eq!(r.apply("a.example.com"), "a.example.com_first.i3");
    assert_eq!(r.apply("a.other.com"), "a.other.com_second.i3");
    // The third rule matches its own output, but rules apply once.
    assert_eq!(r.apply("x"), "x_again.i3");
    assert_eq!(r.len(), 3);
}

#[test]
fn only_the_first_match_is_replaced() {
    let r = ok(&[("a", "b")]);
    assert_eq!(r.apply("aaa"), "baa");
}

#[test]
fn no_rules_borrow() {
    let r = ok(&[]);
    assert!(r.is_empty());
    assert!(matches!(r.apply("bob.i3"), Cow::Borrowed("bob.i3")));
}

#[test]
fn invalid_pattern_reports_its_index() {
    let e = rules(&[("ok", "x"), ("(unclosed", "x")]).unwrap_err();
    assert_eq!(e.index, 1);
    assert!(e.message.contains("unclosed"), "{}", e.message);
    assert!(e.to_string().starts_with("rule 1: "));
}

#[test]
fn unknown_groups_are_errors() {
    let e = rules(&[(r"^(.*)$", "$2_gw.i3")]).unwrap_err();
    assert_eq!(e.index, 0);
    assert_eq!(e.message, "replacement refers to unknown group '2'");
    let e = rules(&[(r"^(.*)$", "${nope}")]).unwrap_err();
    assert_eq!(e.message, "replacement refers to unknown group 'nope'");
}
