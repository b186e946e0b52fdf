//! The host's real resolver, for names that are not overlay names (and for overlay modules
//! that look a host up). Each query goes out with a fresh random transaction id, is sent
//! again to the next server after a timeout, and its answer is matched by id *and* server
//! address, so an off-path sender cannot answer for the resolver.

use mio::net::UdpSocket;
use ocala_engine::{Instant, QueryId, UpstreamError};
use rand_core::{OsRng, TryRngCore};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

struct Pending {
    id: QueryId,
    original_id: u16,
    query: Vec<u8>,
    server: usize,
    attempts: u32,
    deadline: Instant,
}

/// Queries in flight to the upstream resolvers.
pub struct Upstream {
    pub v4: Option<UdpSocket>,
    pub v6: Option<UdpSocket>,
    servers: Vec<SocketAddr>,
    pending: BTreeMap<u16, Pending>,
    timeout: Duration,
    attempts: u32,
}

/// What became of queries: answers, and queries given up on.
pub type Finished = Vec<(QueryId, Result<Vec<u8>, UpstreamError>)>;

impl Upstream {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration, attempts: u32) -> io::Result<Upstream> {
        let v4 = if servers.iter().any(SocketAddr::is_ipv4) {
            Some(UdpSocket::bind(
                "0.0.0.0:0".parse().map_err(io::Error::other)?,
            )?)
        } else {
            None
        };
        let v6 = if servers.iter().any(SocketAddr::is_ipv6) {
            Some(UdpSocket::bind(
                "[::]:0".parse().map_err(io::Error::other)?,
            )?)
        } else {
            None
        };
        Ok(Upstream {
            v4,
            v6,
            servers,
            pending: BTreeMap::new(),
            timeout,
            attempts,
        })
    }

    fn socket(&self, to: SocketAddr) -> Option<&UdpSocket> {
        if to.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    /// Sends a query on the engine's behalf; `Err` right away when there is no resolver.
    pub fn send(&mut self, now: Instant, id: QueryId, query: &[u8]) -> Result<(), UpstreamError> {
        if self.servers.is_empty() || query.len() < 12 {
            return Err(UpstreamError::Unreachable);
        }
        let original_id = u16::from_be_bytes([query[0], query[1]]);
        let mut txid = random_u16();
        while self.pending.contains_key(&txid) {
            txid = txid.wrapping_add(1);
        }
        let mut p = Pending {
            id,
            original_id,
            query: query.to_vec(),
            server: 0,
            attempts: 0,
            deadline: now,
        };
        p.query[0..2].copy_from_slice(&txid.to_be_bytes());
        self.transmit(now, &mut p);
        self.pending.insert(txid, p);
        Ok(())
    }

    fn transmit(&self, now: Instant, p: &mut Pending) {
        let to = self.servers[p.server % self.servers.len()];
        if let Some(sock) = self.socket(to) {
            if let Err(e) = sock.send_to(&p.query, to) {
                tracing::debug!("upstream query to {to}: {e}");
            }
        }
        p.attempts += 1;
        p.deadline = now.saturating_add(self.timeout);
    }

    /// Reads answers waiting on both sockets.
    pub fn receive(&mut self) -> Finished {
        let mut done = Vec::new();
        let mut buf = [0u8; 4096];
        for v6 in [false, true] {
            loop {
                let sock = if v6 {
                    self.v6.as_ref()
                } else {
                    self.v4.as_ref()
                };
                let Some(sock) = sock else { break };
                let (n, from) = match sock.recv_from(&mut buf) {
                    Ok(x) => x,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("upstream socket: {e}");
                        break;
                    }
                };
                let Some(answer) = buf.get(..n).filter(|a| a.len() >= 12) else {
                    continue;
                };
                let txid = u16::from_be_bytes([answer[0], answer[1]]);
                let Some(p) = self.pending.get(&txid) else {
                    continue;
                };
                if self.servers.get(p.server % self.servers.len()) != Some(&from) {
                    continue;
                }
                if let Some(p) = self.pending.remove(&txid) {
                    let mut answer = answer.to_vec();
                    answer[0..2].copy_from_slice(&p.original_id.to_be_bytes());
                    done.push((p.id, Ok(answer)));
                }
            }
        }
        done
    }

    /// Resends or gives up on queries whose deadline passed.
    pub fn on_timeout(&mut self, now: Instant) -> Finished {
        let due: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut done = Vec::new();
        for txid in due {
            let Some(mut p) = self.pending.remove(&txid) else {
                continue;
            };
            if p.attempts >= self.attempts {
                done.push((p.id, Err(UpstreamError::Timeout)));
                continue;
            }
            p.server += 1;
            self.transmit(now, &mut p);
            self.pending.insert(txid, p);
        }
        done
    }

    /// The earliest deadline of a query in flight.
    pub fn next_deadline(&self) -> Instant {
        self.pending
            .values()
            .map(|p| p.deadline)
            .min()
            .unwrap_or(Instant::MAX)
    }
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    // The OS generator failing leaves ids predictable, not wrong; matching by server still holds.
    let _ = OsRng.try_fill_bytes(&mut b);
    u16::from_be_bytes(b)
}
