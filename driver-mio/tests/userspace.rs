//! Userspace mode without root: carol runs `ocalad --userspace` as the unprivileged user
//! `nobody` (no TUN device, no capabilities) in a namespace joined to bob's; curl, also as
//! `nobody`, fetches files from a real HTTP server on bob by overlay name through the SOCKS5
//! proxy and through the HTTP CONNECT proxy, over an encrypted path. A name no path can be
//! set up for is refused with the proxies' own errors, and a plain address is reached
//! directly. Needs root (for the namespaces), setpriv, curl and python3.

mod support;

use support::Topology;

/// `nobody` on Debian.
const NOBODY: u32 = 65534;

fn config(name: &str, peer: &str, addr: &str) -> String {
    format!(
        "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"{name}\"\naddress_book = {{ {peer} = \"{addr}:4789\" }}\n"
    )
}

fn topology() -> Topology {
    support::require_root();
    let mut t = Topology::new("ocu", &["carol", "bob"]);
    t.certify(&["udp"]);
    t.link("carol", "10.96.0.1/24", "bob", "10.96.0.2/24");
    t.start("bob", &config("bob", "carol", "10.96.0.1"), "");
    t.serve(
        "bob",
        &["python3", "-m", "http.server", "8000", "--bind", "::"],
    );
    t.run_as("carol", NOBODY);
    t.host_mut_args("carol", &["--userspace"]);
    t.start(
        "carol",
        &config("carol", "bob", "10.96.0.2"),
        "socks_listen = \"127.0.0.1:1080\"\nhttp_proxy_listen = \"127.0.0.1:8080\"\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    t
}

/// curl as `nobody` in carol's namespace; its output and exit code.
fn curl(t: &Topology, args: &[&str]) -> (Vec<u8>, Option<i32>) {
    let uid = format!("--reuid={NOBODY}");
    let gid = format!("--regid={NOBODY}");
    let mut cmd = vec![
        "setpriv",
        &uid,
        &gid,
        "--clear-groups",
        "curl",
        "-s",
        "-m",
        "20",
    ];
    cmd.extend_from_slice(args);
    let out = t.exec("carol", &cmd);
    (out.stdout, out.status.code())
}

#[test]
fn curl_reaches_overlay_names_through_the_proxies_without_root() {
    let t = topology();
    let uid = t.uid_of_daemon("carol");
    assert_eq!(uid, Some(NOBODY), "carol's ocalad runs without root");

    // The server serves this crate's folder: the files to expect are right here.
    let small = std::fs::read("Cargo.toml").expect("Cargo.toml");
    let large = std::fs::read("src/daemon.rs").expect("a larger file");
    let socks = ["--socks5-hostname", "127.0.0.1:1080"];
    let (body, code) = curl(
        &t,
        &[&socks[..], &["http://bob.udp:8000/Cargo.toml"]].concat(),
    );
    assert_eq!(code, Some(0), "{}", t.log("carol"));
    assert_eq!(body, small);
    let (body, _) = curl(
        &t,
        &[&socks[..], &["http://bob.udp:8000/src/daemon.rs"]].concat(),
    );
    assert_eq!(body, large, "a larger file arrives whole");

    let http = ["-p", "-x", "http://127.0.0.1:8080"];
    let (body, code) = curl(
        &t,
        &[&http[..], &["http://bob.udp:8000/Cargo.toml"]].concat(),
    );
    assert_eq!(
        (code, body),
        (Some(0), small.clone()),
        "through HTTP CONNECT"
    );

    // No path can be set up to a name the address book lacks: SOCKS says so (curl 97),
    // HTTP CONNECT answers 502.
    let (_, code) = curl(&t, &[&socks[..], &["http://nosuch.udp:8000/"]].concat());
    assert_eq!(code, Some(97));
    let (_, code) = curl(&t, &[&http[..], &["http://nosuch.udp:8000/"]].concat());
    assert_eq!(code, Some(56), "curl's code for a refused CONNECT");

    // A plain address is not an overlay's: the proxy connects to it itself.
    let (body, code) = curl(
        &t,
        &[&socks[..], &["http://10.96.0.2:8000/Cargo.toml"]].concat(),
    );
    assert_eq!((code, body), (Some(0), small));

    let status = t.ocala("carol", &["status"]).expect("status answers");
    assert!(
        status.contains("bob.udp") && status.contains("encrypt"),
        "{status}"
    );
}
