//! Userspace mode (`ocalad --userspace`): the same engine without a TUN device and without
//! root. A userspace TCP/IP stack ([`stack`], smoltcp) holds the node's TUN addresses and
//! talks to the engine through queues ([`link`]) instead of a kernel device; local apps
//! reach overlay names through a SOCKS5 and an HTTP CONNECT proxy ([`proxy`], handshakes in
//! [`request`]), e.g. `curl --socks5-hostname 127.0.0.1:1080 http://bob.udp:8000/`.

pub mod link;
pub mod proxy;
pub mod request;
pub mod stack;

use crate::config::Loaded;
use mio::{Registry, Token};
use ocala_engine::Instant;
use std::io;

/// The SOCKS5 listener's token.
pub const SOCKS: Token = Token(7);
/// The HTTP CONNECT listener's token.
pub const HTTP: Token = Token(8);
/// Proxy connections' tokens, above the metrics clients'.
const PROXY_BASE: usize = 1 << 22;

/// The stack and its proxies.
pub struct Userspace {
    pub stack: stack::Stack,
    pub proxy: proxy::Proxy,
}

impl Userspace {
    /// Checks that the configuration needs nothing from the kernel, then starts the stack
    /// and the proxies.
    pub fn start(cfg: &Loaded, registry: &Registry, now: Instant) -> io::Result<Userspace> {
        let kernel_only = [
            (cfg.engine.legacy_server.is_some(), "legacy_server"),
            (cfg.engine.legacy_client.is_some(), "legacy_client"),
            (cfg.daemon.resolved_split_dns, "daemon.resolved_split_dns"),
        ];
        if let Some((_, key)) = kernel_only.iter().find(|(on, _)| *on) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{key}: needs the kernel's routing and a TUN device, which --userspace runs without"),
            ));
        }
        let stack = stack::Stack::new(&cfg.engine.handles, usize::from(cfg.daemon.mtu), now);
        let mut listen = vec![(proxy::Kind::Socks, cfg.daemon.socks_listen, SOCKS)];
        if let Some(http) = cfg.daemon.http_proxy_listen {
            listen.push((proxy::Kind::Http, http, HTTP));
        }
        let proxy = proxy::Proxy::new(registry, &listen, PROXY_BASE)?;
        for (kind, addr, _) in &listen {
            tracing::info!("userspace mode: {kind:?} proxy on {addr}");
        }
        Ok(Userspace { stack, proxy })
    }

    /// Moves the proxies and the stack along; whether anything moved.
    pub fn step(&mut self, registry: &Registry, now: Instant) -> bool {
        let moved = self.proxy.pump(&mut self.stack, registry, now);
        self.stack.poll(now) || moved
    }

    /// When the loop must come back: the stack's timers or a proxy handshake's deadline.
    pub fn deadline(&mut self, now: Instant) -> Instant {
        let stack = self
            .stack
            .poll_delay(now)
            .map_or(Instant::MAX, |d| now.saturating_add(d));
        stack.min(self.proxy.next_deadline())
    }
}
