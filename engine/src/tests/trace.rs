//! `trace_plan` and `path_summary`, what `ocala trace` asks the engine.

use super::*;

#[test]
fn probes_grow_from_the_first_hop_and_keep_the_path_option() {
    let net = Net::new(vec![config("alice", &[("gw", 2), ("bob", 3)], false)]);
    let e = &net.nodes[0];
    assert_eq!(
        e.trace_plan("bob.udp_gw.udp_plain.oci"),
        Ok(vec![
            "gw.udp_plain.oci".to_string(),
            "bob.udp_gw.udp_plain.oci".to_string()
        ])
    );
    assert_eq!(e.trace_plan("Bob.UDP."), Ok(vec!["bob.udp".to_string()]));
    assert!(e
        .trace_plan("example.com")
        .unwrap_err()
        .contains("not an overlay name"));
    assert!(e.trace_plan("bob.udp_x.udp_plain.oci_auth.oci").is_err());
    assert_eq!(e.path_summary("bob.udp"), None, "nothing set up yet");
}

#[test]
fn an_up_path_is_summarised() {
    let mut net = pair();
    net.lookup(0, "bob.udp").expect("up");
    let s = net.nodes[0].path_summary("bob.udp").expect("a path");
    assert_eq!((s.state.as_str(), s.protection.as_str()), ("up", "plain"));
    assert!(s.tunnel.starts_with("udp: "), "{s:?}");
}
