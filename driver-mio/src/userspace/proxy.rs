//! The proxies of userspace mode: SOCKS5 and HTTP CONNECT on local ports. A client names a
//! host; overlay names are resolved by the engine and reached through the userspace stack
//! over the overlay's paths, other names and addresses the host connects to itself, as any
//! proxy would. Each connection is a small state machine advanced whenever anything moved;
//! every socket is non-blocking, so a slow client or peer costs its own buffers only.

use super::request::{self, Parsed, Target};
use super::stack::Stack;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use ocala_engine::Instant;
use slab::Slab;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::State;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Time from accept to an open connection (the overlay path may take a few setups).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes buffered each way per connection.
const BUFFER: usize = 64 * 1024;
/// Time a closed connection's stack socket may take to finish its close.
const LINGER: Duration = Duration::from_secs(10);

/// Which handshake a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Socks,
    Http,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    Request,
    Resolving {
        id: u16,
        port: u16,
    },
    Connecting,
    Relay,
    /// Writing what is left for the client, then closing.
    Closing,
}

enum Upstream {
    None,
    Stack(SocketHandle),
    Direct(TcpStream),
}

struct Conn {
    kind: Kind,
    client: TcpStream,
    phase: Phase,
    /// From the client: handshake bytes, then data not yet sent on.
    up: Vec<u8>,
    /// For the client, not yet written.
    down: Vec<u8>,
    upstream: Upstream,
    client_eof: bool,
    upstream_eof: bool,
    /// The upstream's sending side was closed after the client's EOF.
    up_closed: bool,
    down_closed: bool,
    deadline: Instant,
}

/// What the proxies did, for the log and tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyStats {
    pub accepted: u64,
    pub through_overlay: u64,
    pub direct: u64,
    pub failed: u64,
}

/// The listeners and their connections; tokens are `base + 2 × slot` for a client and one
/// more for a direct upstream.
pub struct Proxy {
    listeners: Vec<(Kind, TcpListener)>,
    conns: Slab<Conn>,
    base: usize,
    keys: Vec<usize>,
    lingering: Vec<(SocketHandle, Instant)>,
    pub stats: ProxyStats,
}

impl Proxy {
    /// Listens on the given addresses, registered with `tokens` in order.
    pub fn new(
        registry: &Registry,
        listen: &[(Kind, SocketAddr, Token)],
        base: usize,
    ) -> io::Result<Proxy> {
        let mut listeners = Vec::new();
        for (kind, addr, token) in listen {
            let mut l = TcpListener::bind(*addr)
                .map_err(|e| io::Error::new(e.kind(), format!("{kind:?} proxy on {addr}: {e}")))?;
            registry.register(&mut l, *token, Interest::READABLE)?;
            listeners.push((*kind, l));
        }
        Ok(Proxy {
            listeners,
            conns: Slab::new(),
            base,
            keys: Vec::new(),
            lingering: Vec::new(),
            stats: ProxyStats::default(),
        })
    }

    /// Whether `token` is one of the connections'.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + 2 * MAX_CONNECTIONS
    }

    /// The earliest handshake deadline.
    pub fn next_deadline(&self) -> Instant {
        self.conns
            .iter()
            .filter(|(_, c)| c.phase != Phase::Relay)
            .map(|(_, c)| c.deadline)
            .min()
            .unwrap_or(Instant::MAX)
    }

    /// Accepts new clients and advances every connection; whether anything moved.
    pub fn pump(&mut self, stack: &mut Stack, registry: &Registry, now: Instant) -> bool {
        let mut moved = self.accept(registry, now);
        self.keys.clear();
        self.keys.extend(self.conns.iter().map(|(k, _)| k));
        for i in 0..self.keys.len() {
            let k = self.keys[i];
            moved |= self.step(k, stack, registry, now);
        }
        self.lingering.retain(|(h, since)| {
            let done = matches!(stack.tcp(*h).state(), State::Closed | State::TimeWait)
                || now.since(*since) > LINGER;
            if done {
                stack.remove(*h);
            }
            !done
        });
        moved
    }

    fn accept(&mut self, registry: &Registry, now: Instant) -> bool {
        let mut moved = false;
        for (kind, l) in &self.listeners {
            loop {
                let mut client = match l.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("proxy accept: {e}");
                        break;
                    }
                };
                moved = true;
                if self.conns.len() >= MAX_CONNECTIONS {
                    tracing::debug!("proxy: {MAX_CONNECTIONS} connections already, one refused");
                    continue;
                }
                let entry = self.conns.vacant_entry();
                let token = Token(self.base + 2 * entry.key());
                if registry
                    .register(&mut client, token, Interest::READABLE | Interest::WRITABLE)
                    .is_err()
                {
                    continue;
                }
                self.stats.accepted += 1;
                entry.insert(Conn {
                    kind: *kind,
                    client,
                    phase: match kind {
                        Kind::Socks => Phase::Greeting,
                        Kind::Http => Phase::Request,
                    },
                    up: Vec::new(),
                    down: Vec::new(),
                    upstream: Upstream::None,
                    client_eof: false,
                    upstream_eof: false,
                    up_closed: false,
                    down_closed: false,
                    deadline: now.saturating_add(CONNECT_TIMEOUT),
                });
            }
        }
        moved
    }

    /// Advances connection `k`; whether anything moved.
    fn step(&mut self, k: usize, stack: &mut Stack, registry: &Registry, now: Instant) -> bool {
        let Some(c) = self.conns.get_mut(k) else {
            return false;
        };
        let mut moved = read_some(&mut c.client, &mut c.up, &mut c.client_eof);
        let before = c.phase;
        match c.phase {
            Phase::Greeting => match request::socks_greeting(&c.up) {
                Parsed::Done(no_auth, n) => {
                    c.up.drain(..n);
                    if no_auth {
                        c.down.extend_from_slice(&request::NO_AUTH);
                        c.phase = Phase::Request;
                    } else {
                        c.down.extend_from_slice(&request::NO_ACCEPTABLE_METHOD);
                        c.phase = Phase::Closing;
                    }
                }
                Parsed::Incomplete if !c.client_eof => {}
                _ => c.phase = Phase::Closing,
            },
            Phase::Request => {
                let parsed = match c.kind {
                    Kind::Socks => request::socks_request(&c.up),
                    Kind::Http => Ok(request::http_connect(&c.up)),
                };
                match parsed {
                    Ok(Parsed::Done(target, n)) => {
                        c.up.drain(..n);
                        match target {
                            Target::Addr(addr) => self.open(k, addr, stack, registry),
                            Target::Name(name, port) => match stack.resolve(&name) {
                                Ok(id) => c.phase = Phase::Resolving { id, port },
                                Err(e) => self.fail(k, request::HOST_UNREACHABLE, &e),
                            },
                        }
                    }
                    Ok(Parsed::Incomplete) if !c.client_eof => {}
                    Ok(Parsed::Incomplete | Parsed::Bad(_)) => c.phase = Phase::Closing,
                    Err(code) => self.fail(k, code, "request refused"),
                }
            }
            Phase::Resolving { id, port } => match stack.answer(id) {
                Some(Ok(ip)) => self.open(k, SocketAddr::new(ip, port), stack, registry),
                Some(Err(e)) => self.fail(k, request::HOST_UNREACHABLE, &e),
                None => {}
            },
            Phase::Connecting => self.check_connected(k, stack),
            Phase::Relay => moved |= self.relay(k, stack),
            Phase::Closing => {}
        }
        let Some(c) = self.conns.get_mut(k) else {
            return true;
        };
        moved |= c.phase != before;
        if c.phase != Phase::Relay && c.phase != Phase::Closing && now >= c.deadline {
            self.fail(k, request::HOST_UNREACHABLE, "timed out");
        }
        let Some(c) = self.conns.get_mut(k) else {
            return true;
        };
        moved |= write_some(&mut c.client, &mut c.down);
        let finished = match c.phase {
            Phase::Closing => c.down.is_empty() || c.client_eof,
            Phase::Relay => c.client_eof && c.upstream_eof && c.up.is_empty() && c.down.is_empty(),
            _ => c.client_eof && c.phase == Phase::Greeting,
        };
        if finished {
            self.close(k, stack, registry, now);
            moved = true;
        }
        moved
    }

    /// Opens the upstream: through the stack for a handle, directly otherwise.
    fn open(&mut self, k: usize, to: SocketAddr, stack: &mut Stack, registry: &Registry) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        if stack.routes(to.ip()) {
            match stack.connect(to) {
                Ok(h) => {
                    c.upstream = Upstream::Stack(h);
                    c.phase = Phase::Connecting;
                    self.stats.through_overlay += 1;
                }
                Err(e) => self.fail(k, request::GENERAL_FAILURE, &e),
            }
            return;
        }
        match TcpStream::connect(to) {
            Ok(mut s) => {
                let token = Token(self.base + 2 * k + 1);
                if let Err(e) =
                    registry.register(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                {
                    return self.fail(k, request::GENERAL_FAILURE, &e.to_string());
                }
                c.upstream = Upstream::Direct(s);
                c.phase = Phase::Connecting;
                self.stats.direct += 1;
            }
            Err(e) => self.fail(k, request::CONNECTION_REFUSED, &e.to_string()),
        }
    }

    fn check_connected(&mut self, k: usize, stack: &mut Stack) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let outcome = match &c.upstream {
            Upstream::Stack(h) => match stack.tcp(*h).state() {
                State::Established => Some(Ok(())),
                State::Closed | State::TimeWait | State::Closing | State::LastAck => {
                    Some(Err("refused".to_string()))
                }
                _ => None,
            },
            Upstream::Direct(s) => match s.take_error() {
                Ok(Some(e)) | Err(e) => Some(Err(e.to_string())),
                Ok(None) => match s.peer_addr() {
                    Ok(_) => Some(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
                    Err(e) => Some(Err(e.to_string())),
                },
            },
            Upstream::None => Some(Err("no upstream".to_string())),
        };
        match outcome {
            Some(Ok(())) => {
                match c.kind {
                    Kind::Socks => c
                        .down
                        .extend_from_slice(&request::socks_reply(request::SUCCEEDED)),
                    Kind::Http => c
                        .down
                        .extend_from_slice(request::http_reply(true, "").as_bytes()),
                }
                c.phase = Phase::Relay;
            }
            Some(Err(e)) => self.fail(k, request::CONNECTION_REFUSED, &e),
            None => {}
        }
    }

    /// Moves data both ways and passes each side's end on to the other.
    fn relay(&mut self, k: usize, stack: &mut Stack) -> bool {
        let Some(c) = self.conns.get_mut(k) else {
            return false;
        };
        let mut moved = false;
        match &mut c.upstream {
            Upstream::Stack(h) => {
                let s = stack.tcp(*h);
                if s.can_send() && !c.up.is_empty() {
                    if let Ok(n) = s.send_slice(&c.up) {
                        c.up.drain(..n);
                        moved |= n > 0;
                    }
                }
                while s.can_recv() && c.down.len() < BUFFER {
                    let room = BUFFER - c.down.len();
                    let start = c.down.len();
                    c.down.resize(start + room, 0);
                    let n = s.recv_slice(&mut c.down[start..]).unwrap_or(0);
                    c.down.truncate(start + n);
                    if n == 0 {
                        break;
                    }
                    moved = true;
                }
                if !s.may_recv() && !s.can_recv() && !c.upstream_eof {
                    c.upstream_eof = true;
                    moved = true;
                }
                if c.client_eof && c.up.is_empty() && !c.up_closed {
                    s.close();
                    c.up_closed = true;
                    moved = true;
                }
            }
            Upstream::Direct(s) => {
                moved |= write_some(s, &mut c.up);
                moved |= read_some(s, &mut c.down, &mut c.upstream_eof);
                if c.client_eof && c.up.is_empty() && !c.up_closed {
                    let _ = s.shutdown(Shutdown::Write);
                    c.up_closed = true;
                    moved = true;
                }
            }
            Upstream::None => c.upstream_eof = true,
        }
        if c.upstream_eof && c.down.is_empty() && !c.down_closed {
            let _ = c.client.shutdown(Shutdown::Write);
            c.down_closed = true;
            moved = true;
        }
        moved
    }

    /// Refuses the client with a reply it understands, then closes.
    fn fail(&mut self, k: usize, code: u8, why: &str) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        tracing::debug!("proxy: {why}");
        self.stats.failed += 1;
        match c.kind {
            Kind::Socks => c.down.extend_from_slice(&request::socks_reply(code)),
            Kind::Http => c
                .down
                .extend_from_slice(request::http_reply(false, why).as_bytes()),
        }
        c.phase = Phase::Closing;
    }

    fn close(&mut self, k: usize, stack: &mut Stack, registry: &Registry, now: Instant) {
        let Some(mut c) = self.conns.try_remove(k) else {
            return;
        };
        let _ = registry.deregister(&mut c.client);
        if let Phase::Resolving { id, .. } = c.phase {
            stack.forget(id);
        }
        match c.upstream {
            Upstream::Stack(h) => {
                stack.tcp(h).close();
                self.lingering.push((h, now));
            }
            Upstream::Direct(mut s) => {
                let _ = registry.deregister(&mut s);
            }
            Upstream::None => {}
        }
    }
}

/// Reads what `from` has, up to `BUFFER` buffered in `into`; notes its end in `eof`.
fn read_some(from: &mut TcpStream, into: &mut Vec<u8>, eof: &mut bool) -> bool {
    let mut moved = false;
    let mut chunk = [0u8; 16 * 1024];
    while !*eof && into.len() < BUFFER {
        let room = (BUFFER - into.len()).min(chunk.len());
        match from.read(&mut chunk[..room]) {
            Ok(0) => {
                *eof = true;
                moved = true;
            }
            Ok(n) => {
                into.extend_from_slice(&chunk[..n]);
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                *eof = true;
                moved = true;
            }
        }
    }
    moved
}

/// Writes what `to` takes of `from`.
fn write_some(to: &mut TcpStream, from: &mut Vec<u8>) -> bool {
    let mut written = 0;
    while written < from.len() {
        match to.write(&from[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    from.drain(..written);
    written > 0
}
