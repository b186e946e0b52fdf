//! Clients of the control socket (`ocala status`, `ocala resolve NAME`) and of the metrics
//! endpoint (`GET /metrics`), served without ever blocking the event loop: each connection is
//! non-blocking and registered with the poll, its request is gathered as it arrives, its
//! answer written as the socket takes it. A client gets `CLIENT_TIMEOUT` for the whole
//! exchange, requests are bounded, and at most `MAX_CLIENTS` are served at once (more are
//! closed at once), so a stuck or hostile client costs a slot, never the data path's time.

use mio::event::Source;
use mio::{Interest, Registry, Token};
use ocala_engine::Instant;
use slab::Slab;
use std::io::{self, Read, Write};
use std::time::Duration;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a client has to send its request and take its answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request line.
const MAX_REQUEST: usize = 4096;

struct Client<S> {
    stream: S,
    request: Vec<u8>,
    answer: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// What a client's readiness brought.
pub enum Progress {
    /// Nothing to do yet (or the client is gone).
    Waiting,
    /// A whole request's first line (without its line end), to be answered with
    /// [`Clients::answer`].
    Request(String),
}

/// The connected clients of one listener; tokens are `base + slot`.
pub struct Clients<S> {
    base: usize,
    /// What ends a request: a newline for the control socket, a blank line for HTTP (whose
    /// headers are read whole, so closing after the answer never discards unread data).
    end: &'static [u8],
    slots: Slab<Client<S>>,
}

impl<S: Read + Write + Source> Clients<S> {
    pub fn new(base: usize, end: &'static [u8]) -> Clients<S> {
        Clients {
            base,
            end,
            slots: Slab::with_capacity(MAX_CLIENTS),
        }
    }

    /// Whether `token` is one of ours.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + MAX_CLIENTS
    }

    /// Takes a freshly accepted, non-blocking connection, or closes it when every slot is
    /// busy.
    pub fn add(&mut self, registry: &Registry, mut stream: S, now: Instant) -> io::Result<()> {
        if self.slots.len() >= MAX_CLIENTS {
            tracing::debug!("{MAX_CLIENTS} clients already, one refused");
            return Ok(());
        }
        let entry = self.slots.vacant_entry();
        registry.register(
            &mut stream,
            Token(self.base + entry.key()),
            Interest::READABLE,
        )?;
        entry.insert(Client {
            stream,
            request: Vec::new(),
            answer: Vec::new(),
            written: 0,
            deadline: now.saturating_add(CLIENT_TIMEOUT),
        });
        Ok(())
    }

    /// Reads or writes what the client's socket allows now.
    pub fn ready(&mut self, registry: &Registry, token: Token) -> Progress {
        let key = token.0 - self.base;
        let Some(c) = self.slots.get_mut(key) else {
            return Progress::Waiting;
        };
        if !c.answer.is_empty() {
            return self.flush(registry, key);
        }
        let mut chunk = [0u8; 512];
        loop {
            match c.stream.read(&mut chunk) {
                // The client closed before its request was whole.
                Ok(0) => break,
                Ok(n) => {
                    c.request.extend_from_slice(&chunk[..n]);
                    if c.request.windows(self.end.len()).any(|w| w == self.end) {
                        let first = c.request.split(|b| *b == b'\n').next().unwrap_or(&[]);
                        let line = String::from_utf8_lossy(first).trim_end().to_string();
                        return Progress::Request(line);
                    }
                    if c.request.len() > MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.close(registry, key);
        Progress::Waiting
    }

    /// Gives a client whose answer takes long (a trace) until `deadline`.
    pub fn hold(&mut self, token: Token, deadline: Instant) {
        if let Some(c) = self.slots.get_mut(token.0 - self.base) {
            c.deadline = deadline;
        }
    }

    /// Whether a client is still connected and waiting.
    pub fn alive(&self, token: Token) -> bool {
        token.0 >= self.base && self.slots.contains(token.0 - self.base)
    }

    /// Queues the answer to a client's request and writes what the socket takes now.
    pub fn answer(&mut self, registry: &Registry, token: Token, text: String) {
        let key = token.0 - self.base;
        let Some(c) = self.slots.get_mut(key) else {
            return;
        };
        c.answer = text.into_bytes();
        if c.answer.is_empty() {
            return self.close(registry, key);
        }
        let _ = registry.reregister(&mut c.stream, token, Interest::WRITABLE);
        self.flush(registry, key);
    }

    fn flush(&mut self, registry: &Registry, key: usize) -> Progress {
        let Some(c) = self.slots.get_mut(key) else {
            return Progress::Waiting;
        };
        while c.written < c.answer.len() {
            match c.stream.write(&c.answer[c.written..]) {
                Ok(0) => break,
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.close(registry, key);
        Progress::Waiting
    }

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut c) = self.slots.try_remove(key) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// The earliest client deadline.
    pub fn next_deadline(&self) -> Instant {
        self.slots
            .iter()
            .map(|(_, c)| c.deadline)
            .min()
            .unwrap_or(Instant::MAX)
    }

    /// Closes the clients whose time is up.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in late {
            tracing::debug!("control client timed out");
            self.close(registry, key);
        }
    }
}
