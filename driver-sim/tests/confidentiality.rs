//! A gateway on an encrypted path relays ciphertext only, and so does an i3 server: every byte
//! it sends is recorded and searched for the apps' payload and inner headers. The same check on
//! a plain path finds them, so the search is known to work.

const SCENARIO: &str = r#"
name = "gateway-sees-nothing"
duration_ms = 3000

[[nodes]]
name = "alice"
ip = "10.0.0.1"

[[nodes]]
name = "gw"
ip = "10.0.0.2"
[nodes.config]
gateway = true

[[nodes]]
name = "carol"
ip = "10.0.0.3"
[nodes.config.security]
accept_plain = true

"#;

/// alice and carol meet through i3 server `gw`, which is no OCALA gateway.
const I3_SCENARIO: &str = r#"
name = "server-sees-nothing"
duration_ms = 3000

[[nodes]]
name = "alice"
ip = "10.0.0.1"
[[nodes.config.overlays]]
name = "i3"
module = "i3"
local_name = "alice"
[nodes.config.overlays.i3]
servers = ["10.0.0.2:4789"]

[[nodes]]
name = "gw"
ip = "10.0.0.2"
[[nodes.config.overlays]]
name = "i3"
module = "i3"
local_name = "gw"
[nodes.config.overlays.i3]
servers = ["10.0.0.2:4789"]
serve_as = "10.0.0.2:4789"

[[nodes]]
name = "carol"
ip = "10.0.0.3"
[nodes.config.security]
accept_plain = true
[[nodes.config.overlays]]
name = "i3"
module = "i3"
local_name = "carol"
[nodes.config.overlays.i3]
servers = ["10.0.0.2:4789"]

"#;

/// The links and the app, the same for both: alice sends through `gw` only.
const LINKS_AND_APP: &str = r#"
[[links]]
a = "alice"
b = "gw"
[[links]]
a = "gw"
b = "carol"

[[apps]]
node = "alice"
at_ms = 10
kind = "udp"
name = "NAME"
count = 10
size = 1200
expect_replies = 10
"#;

/// 32 bytes of the UDP echo app's payload filler.
const FILLER: [u8; 32] = [0x62; 32];

fn gateway_sends(name: &str) -> Vec<Vec<u8>> {
    let scenario = if name.contains(".i3") {
        I3_SCENARIO
    } else {
        SCENARIO
    };
    let text = format!("{scenario}{LINKS_AND_APP}").replace("NAME", name);
    let options = ocala_sim::RunOptions {
        capture: Some(Vec::new()),
        ..Default::default()
    };
    let out = ocala_sim::run_with("inline", &text, &options, &mut |_, _| {}).expect("runs");
    assert!(out.failures.is_empty(), "{}", out.summary);
    out.sent.get("gw").cloned().unwrap_or_default()
}

fn leaks(datagrams: &[Vec<u8>]) -> usize {
    // The payload filler, and alice's TUN address as it appears in inner IPv4 headers.
    let addr = [198, 18, 0, 1];
    datagrams
        .iter()
        .filter(|d| d.windows(FILLER.len()).any(|w| w == FILLER) || d.windows(4).any(|w| w == addr))
        .count()
}

#[test]
fn an_encrypted_path_shows_the_gateway_no_inner_packet() {
    let sent = gateway_sends("carol.udp_gw.udp");
    assert!(
        sent.len() >= 20,
        "the gateway relayed the traffic: {} datagrams",
        sent.len()
    );
    assert_eq!(leaks(&sent), 0);
}

#[test]
fn a_plain_path_does_show_it() {
    let sent = gateway_sends("carol.udp_gw.udp_plain.oci");
    assert!(
        leaks(&sent) >= 20,
        "the check finds plaintext when there is some"
    );
}

#[test]
fn an_i3_server_forwards_only_ciphertext_on_an_encrypted_path() {
    let sent = gateway_sends("carol.i3");
    assert!(sent.len() >= 20, "the server forwarded: {}", sent.len());
    assert_eq!(leaks(&sent), 0);
    let plain = gateway_sends("carol.i3_plain.oci");
    assert!(leaks(&plain) >= 20, "the check finds plaintext over i3 too");
}
