//! systemd's readiness protocol (`Type=notify`): when `NOTIFY_SOCKET` names a socket, the
//! daemon sends `READY=1` once it serves and `STOPPING=1` when it begins to shut down, as
//! datagrams on that Unix socket (a path, or an abstract name written with a leading `@`).
//! Without the variable nothing is sent, so running by hand is unchanged.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Sends `state` to the socket `NOTIFY_SOCKET` names, if it names one.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = notify_to(&socket.to_string_lossy(), state) {
            tracing::warn!("telling systemd {state}: {e}");
        }
    }
}

/// Sends `state` to the notification socket `socket`.
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let s = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            s.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            s.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_arrive_on_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("ocala-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(&path.display().to_string(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("ocala-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        assert!(notify_to("/nonexistent/socket", "READY=1").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
