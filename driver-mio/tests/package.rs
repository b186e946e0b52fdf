//! The Debian package: `packaging/build-deb.sh` builds it (the debug build, compressed
//! fast) with `cargo deb`; the test unpacks it into a scratch root with `dpkg -x` and checks
//! what a user would install — the binaries run, the example configuration passes the
//! daemon's own check, the systemd unit asks for readiness notification and holds only the
//! capabilities it needs, completions and man pages are there. Then the daemon tells a
//! stand-in for systemd it is ready, and that it is stopping, over `NOTIFY_SOCKET`; it runs
//! in userspace mode so no root or namespace is needed for that part. Needs cargo-deb and
//! dpkg (`.ci/run` installs cargo-deb).

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ocala-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_package_installs_what_an_operator_needs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/build-deb.sh");
    let out = run(Command::new("bash").arg(&script).env("PROFILE", "dev"));
    let deb = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(out.lines().last().expect("the package's path").trim());
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(
        info.contains("Package: ocala") && info.contains("Depends: iproute2"),
        "{info}"
    );
    let control = scratch("deb-control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        read(&control.join("conffiles")).trim(),
        "/etc/ocala/ocalad.toml"
    );

    let root = scratch("deb-root");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root));
    for bin in ["ocalad", "ocala", "ocala-sim"] {
        let v = run(Command::new(root.join("usr/bin").join(bin)).arg("--version"));
        assert!(v.starts_with(bin), "{v}");
    }
    let config = root.join("etc/ocala/ocalad.toml");
    let checked = run(Command::new(root.join("usr/bin/ocalad"))
        .arg("--check-config")
        .arg(&config));
    assert!(checked.ends_with(": ok\n"), "{checked}");

    let unit = read(&root.join("lib/systemd/system/ocalad.service"));
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/bin/ocalad --check-config /etc/ocala/ocalad.toml",
        "ExecStart=/usr/bin/ocalad --config /etc/ocala/ocalad.toml --log-format text",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "StateDirectory=ocala",
        "RuntimeDirectory=ocala",
        "DeviceAllow=/dev/net/tun rw",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "the unit lacks {line}:\n{unit}"
        );
    }
    // The example's paths are the ones the unit's directories create.
    let example = read(&config);
    assert!(
        example.contains("\"/var/lib/ocala/state.json\"")
            && example.contains("\"/run/ocala/ocalad.sock\"")
    );

    for (dir, file) in [
        ("usr/share/bash-completion/completions", "ocala"),
        ("usr/share/bash-completion/completions", "ocalad"),
        ("usr/share/zsh/vendor-completions", "_ocala-sim"),
        ("usr/share/fish/vendor_completions.d", "ocala.fish"),
    ] {
        let text = read(&root.join(dir).join(file));
        assert!(text.contains("ocala"), "{dir}/{file}");
    }
    for page in ["ocalad.1.gz", "ocala.1.gz", "ocala-sim.1.gz"] {
        let gz = root.join("usr/share/man/man1").join(page);
        let mut roff = String::new();
        Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip")
            .stdout
            .expect("output")
            .read_to_string(&mut roff)
            .expect("text");
        assert!(roff.contains(".TH"), "{page} is a man page");
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&control);
}

#[test]
fn the_daemon_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = scratch("notify");
    let socket = dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&socket).expect("a stand-in for systemd");
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let config = dir.join("ocalad.toml");
    std::fs::write(
        &config,
        format!(
            "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"solo\"\nport = 0\n\
             [security]\ndefault = \"plain\"\n\
             [daemon]\ncontrol_socket = \"{}\"\nsocks_listen = \"127.0.0.1:0\"\nhttp_proxy_listen = \"127.0.0.1:0\"\n",
            dir.join("ocalad.sock").display()
        ),
    )
    .expect("config");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ocalad"))
        .arg("--userspace")
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket)
        .stderr(Stdio::null())
        .spawn()
        .expect("ocalad starts");
    let mut buf = [0u8; 64];
    let n = systemd.recv(&mut buf).expect("READY within 10 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means serving: the control socket answers now.
    let status = Command::new(env!("CARGO_BIN_EXE_ocala"))
        .arg("--socket")
        .arg(dir.join("ocalad.sock"))
        .arg("status")
        .output()
        .expect("ocala runs");
    assert!(status.status.success(), "{status:?}");
    run(Command::new("kill").arg(daemon.id().to_string()));
    let n = systemd.recv(&mut buf).expect("STOPPING within 10 s");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(daemon.wait().expect("exits").success());
    let _ = std::fs::remove_dir_all(&dir);
}
