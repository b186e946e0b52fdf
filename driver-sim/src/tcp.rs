//! Real TCP for the app models: a userspace TCP/IP stack (smoltcp) on each simulated host that
//! needs one, fed with what the engine writes to the host's TUN and feeding the engine what
//! it sends. So a bulk transfer or a request/response exchange over an overlay meets real
//! TCP behaviour — handshakes, retransmission, congestion control (CUBIC), flow control —
//! and the goodput and latency the summary reports are TCP's, not a packet counter's.
//!
//! Every host's stack serves two ports, as every host runs the UDP echo service:
//! - [`SINK_PORT`]: reads and discards everything (iperf's server, in spirit);
//! - [`REQUEST_PORT`]: reads requests `[request length u32][response length u32][padding]`
//!   and answers each with that many bytes, in order (an HTTP keep-alive server, in spirit).
//!
//! The stack owns nothing random or timed of its own: its clock is the simulator's and its
//! seed comes from the scenario seed, so runs stay identical.

use crate::scenario::AppKind;
use ocala_engine::Instant;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The discard service every host runs.
pub const SINK_PORT: u16 = 5001;
/// The request/response service every host runs.
pub const REQUEST_PORT: u16 = 80;
/// Bytes of a request's header: its own length and the response length it asks for.
pub const REQUEST_HEADER: usize = 8;
/// Each connection's buffers, each way: a window large enough for the simulated links'
/// bandwidth-delay products.
const BUFFER: usize = 512 * 1024;

/// Whether an IP packet carries TCP.
pub fn is_tcp(packet: &[u8]) -> bool {
    ocala_engine::wire::ip::IpView::parse(packet).is_ok_and(|ip| ip.protocol() == 6)
}

/// The simulator's clock as smoltcp's.
fn smol(now: Instant) -> SmolInstant {
    SmolInstant::from_micros((now.as_nanos() / 1_000) as i64)
}

fn sim(t: SmolInstant) -> Instant {
    Instant::from_nanos(
        u64::try_from(t.total_micros())
            .unwrap_or(0)
            .saturating_mul(1_000),
    )
}

/// The stack's link: packets for it and packets from it.
#[derive(Default)]
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        self.0.push_back(b);
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

/// What a client app asked of its connection.
#[derive(Debug, Clone)]
enum Work {
    /// Send this many bytes to the sink.
    Bulk { total: u64, written: u64 },
    /// Make requests one at a time, each at least `interval` after the previous one began.
    Requests {
        count: u32,
        interval: Duration,
        request: usize,
        response: usize,
        /// The request in flight: its number, and the response bytes read so far.
        current: Option<(u32, usize)>,
        next: u32,
        next_at: Instant,
    },
}

struct Client {
    app: usize,
    socket: SocketHandle,
    work: Work,
    connected: bool,
    finished: bool,
}

/// A server connection's state.
enum Serving {
    Sink,
    /// Reading a request header (bytes so far), or its padding (left), or sending the
    /// response (left).
    Requests {
        header: Vec<u8>,
        padding: usize,
        answer: usize,
        /// Answers owed for requests read while an earlier answer was still going out.
        owed: VecDeque<usize>,
    },
}

struct Server {
    socket: SocketHandle,
    port: u16,
    /// `None` while it listens.
    serving: Option<Serving>,
}

/// What happened to a client app during a poll, for the simulator to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Connected,
    /// Request `seq` went out.
    Sent(u32),
    /// Request `seq`'s whole response came back.
    Answered(u32),
    /// Bytes the far end has acknowledged so far (bulk).
    Acked(u64),
    /// All work done (bulk: all acknowledged; requests: all answered).
    Finished,
    /// The connection was reset or closed before the work was done.
    Failed(String),
}

/// What one run of a stack produced: the packets it sends (for the engine), what happened
/// to each client app, and when it wants to run next.
pub struct Polled {
    pub packets: Vec<Vec<u8>>,
    pub progress: Vec<(usize, Progress)>,
    pub next: Option<Instant>,
}

/// One host's TCP/IP stack.
pub struct TcpHost {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    servers: Vec<Server>,
    clients: Vec<Client>,
    /// The next poll the simulator has scheduled, so it schedules each at most once.
    pub wake: Option<Instant>,
}

fn socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; BUFFER]),
        tcp::SocketBuffer::new(vec![0; BUFFER]),
    );
    s.set_congestion_control(tcp::CongestionControl::Cubic);
    s.set_nagle_enabled(false);
    s
}

impl TcpHost {
    /// A stack holding `addrs` (each with its prefix), serving its two ports. Its link
    /// carries bare IP with no neighbour discovery, so it sends to peers off its prefixes
    /// the same way, with no route: a node's TUN, or a legacy host's LAN whose gateway
    /// takes everything.
    pub fn new(addrs: &[(IpAddr, u8)], mtu: usize, seed: u64, now: Instant) -> TcpHost {
        let mut dev = Queues {
            mtu,
            ..Default::default()
        };
        let mut cfg = Config::new(HardwareAddress::Ip);
        cfg.random_seed = seed;
        let mut iface = Interface::new(cfg, &mut dev, smol(now));
        iface.update_ip_addrs(|a| {
            for &(ip, len) in addrs {
                let _ = a.push(IpCidr::new(IpAddress::from(ip), len));
            }
        });
        let mut host = TcpHost {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            servers: Vec::new(),
            clients: Vec::new(),
            wake: None,
        };
        for port in [SINK_PORT, REQUEST_PORT] {
            host.listen(port);
        }
        host
    }

    fn listen(&mut self, port: u16) {
        let mut s = socket();
        if s.listen(port).is_ok() {
            let socket = self.sockets.add(s);
            self.servers.push(Server {
                socket,
                port,
                serving: None,
            });
        }
    }

    /// Opens app `app`'s connection from `local` to `remote`, for the work its kind asks.
    pub fn connect(
        &mut self,
        app: usize,
        kind: &AppKind,
        local: SocketAddr,
        remote: IpAddr,
        now: Instant,
    ) -> Result<(), String> {
        let (work, port) = match kind {
            AppKind::TcpBulk { bytes, .. } => (
                Work::Bulk {
                    total: *bytes,
                    written: 0,
                },
                SINK_PORT,
            ),
            AppKind::TcpRequest {
                count,
                interval_ms,
                request_bytes,
                response_bytes,
                ..
            } => (
                Work::Requests {
                    count: *count,
                    interval: Duration::from_millis(*interval_ms),
                    request: (*request_bytes).max(REQUEST_HEADER),
                    response: *response_bytes,
                    current: None,
                    next: 0,
                    next_at: now,
                },
                REQUEST_PORT,
            ),
            _ => return Err("not a TCP app".into()),
        };
        let mut s = socket();
        s.connect(
            self.iface.context(),
            (IpAddress::from(remote), port),
            (IpAddress::from(local.ip()), local.port()),
        )
        .map_err(|e| format!("connecting to {remote}:{port}: {e}"))?;
        let socket = self.sockets.add(s);
        self.clients.push(Client {
            app,
            socket,
            work,
            connected: false,
            finished: false,
        });
        Ok(())
    }

    /// A packet the engine delivered to this host.
    pub fn receive(&mut self, packet: &[u8]) {
        self.dev.rx.push_back(packet.to_vec());
    }

    /// Runs the stack and the apps on it at `now`.
    pub fn poll(&mut self, now: Instant) -> Polled {
        let mut progress = Vec::new();
        let t = smol(now);
        self.iface.poll(t, &mut self.dev, &mut self.sockets);
        self.serve();
        for c in &mut self.clients {
            let s = self.sockets.get_mut::<tcp::Socket>(c.socket);
            run_client(c, s, now, &mut progress);
        }
        // What the apps wrote goes out now, not at the next poll.
        self.iface.poll(t, &mut self.dev, &mut self.sockets);
        let mut next = self.iface.poll_at(t, &self.sockets).map(sim);
        for c in self.clients.iter().filter(|c| c.connected && !c.finished) {
            if let Work::Requests {
                current: None,
                next_at,
                ..
            } = c.work
            {
                next = Some(next.map_or(next_at, |n| n.min(next_at)));
            }
        }
        self.clients.retain(|c| !c.finished);
        Polled {
            packets: self.dev.tx.drain(..).collect(),
            progress,
            next: next.map(|n| n.max(now)),
        }
    }

    /// Server side: accepts, reads and answers; a listener that took a connection is
    /// replaced, so each port keeps listening.
    fn serve(&mut self) {
        let mut relisten = Vec::new();
        let mut closed = Vec::new();
        for (i, srv) in self.servers.iter_mut().enumerate() {
            let s = self.sockets.get_mut::<tcp::Socket>(srv.socket);
            if srv.serving.is_none() {
                if s.is_active() && s.state() != tcp::State::Listen {
                    srv.serving = Some(match srv.port {
                        SINK_PORT => Serving::Sink,
                        _ => Serving::Requests {
                            header: Vec::new(),
                            padding: 0,
                            answer: 0,
                            owed: VecDeque::new(),
                        },
                    });
                    relisten.push(srv.port);
                } else {
                    continue;
                }
            }
            if !s.is_active() {
                closed.push(i);
                continue;
            }
            if s.state() == tcp::State::SynReceived {
                // Not connected yet: nothing to read, and nothing to close.
                continue;
            }
            match srv.serving.as_mut() {
                Some(Serving::Sink) => {
                    let _ = s.recv(|b| (b.len(), ()));
                    if !s.may_recv() && s.may_send() {
                        s.close();
                    }
                }
                Some(Serving::Requests {
                    header,
                    padding,
                    answer,
                    owed,
                }) => serve_requests(s, header, padding, answer, owed),
                None => {}
            }
        }
        for i in closed.into_iter().rev() {
            let srv = self.servers.remove(i);
            self.sockets.remove(srv.socket);
        }
        for port in relisten {
            self.listen(port);
        }
    }
}

/// Reads requests and writes their answers, as far as the buffers allow.
fn serve_requests(
    s: &mut tcp::Socket,
    header: &mut Vec<u8>,
    padding: &mut usize,
    answer: &mut usize,
    owed: &mut VecDeque<usize>,
) {
    while s.can_recv() {
        if *padding > 0 {
            let n = s.recv(|b| {
                let n = b.len().min(*padding);
                (n, n)
            });
            match n {
                Ok(n) if n > 0 => *padding -= n,
                _ => break,
            }
            continue;
        }
        let want = REQUEST_HEADER - header.len();
        let got = s.recv(|b| {
            let n = b.len().min(want);
            (n, b[..n].to_vec())
        });
        match got {
            Ok(bytes) if !bytes.is_empty() => header.extend_from_slice(&bytes),
            _ => break,
        }
        if header.len() == REQUEST_HEADER {
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let resp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            *padding = len.saturating_sub(REQUEST_HEADER);
            owed.push_back(resp);
            header.clear();
        }
    }
    loop {
        if *answer == 0 {
            match owed.pop_front() {
                Some(n) => *answer = n,
                None => break,
            }
        }
        let sent = s.send(|b| {
            let n = b.len().min(*answer);
            b[..n].fill(0x72);
            (n, n)
        });
        match sent {
            Ok(n) if n > 0 => *answer -= n,
            _ => break,
        }
        if *answer > 0 {
            break;
        }
    }
    if !s.may_recv() && owed.is_empty() && *answer == 0 {
        s.close();
    }
}

/// Moves a client app's work along and notes what happened.
fn run_client(c: &mut Client, s: &mut tcp::Socket, now: Instant, out: &mut Vec<(usize, Progress)>) {
    if !c.connected {
        if s.may_send() {
            c.connected = true;
            out.push((c.app, Progress::Connected));
        } else if !s.is_active() {
            c.finished = true;
            out.push((
                c.app,
                Progress::Failed("connection refused or timed out".into()),
            ));
            return;
        } else {
            return;
        }
    }
    if !s.is_active() && !c.finished {
        c.finished = true;
        out.push((c.app, Progress::Failed("connection closed".into())));
        return;
    }
    match &mut c.work {
        Work::Bulk { total, written } => {
            while *written < *total && s.can_send() {
                let left = *total - *written;
                let n = s
                    .send(|b| {
                        let n = b.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        b[..n].fill(0x62);
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                *written += n as u64;
            }
            let acked = *written - s.send_queue() as u64;
            out.push((c.app, Progress::Acked(acked)));
            if acked == *total {
                s.close();
                c.finished = true;
                out.push((c.app, Progress::Finished));
            }
        }
        Work::Requests {
            count,
            interval,
            request,
            response,
            current,
            next,
            next_at,
        } => {
            if let Some((seq, got)) = current.as_mut() {
                let n = s.recv(|b| (b.len(), b.len())).unwrap_or(0);
                *got += n;
                if *got >= *response {
                    out.push((c.app, Progress::Answered(*seq)));
                    *current = None;
                }
            }
            if current.is_none() && *next >= *count {
                s.close();
                c.finished = true;
                out.push((c.app, Progress::Finished));
                return;
            }
            if current.is_none()
                && now >= *next_at
                && s.send_capacity() - s.send_queue() >= *request
            {
                let mut req = vec![0x71u8; *request];
                req[..4].copy_from_slice(&(*request as u32).to_be_bytes());
                req[4..8].copy_from_slice(&(*response as u32).to_be_bytes());
                if s.send_slice(&req).is_ok() {
                    out.push((c.app, Progress::Sent(*next)));
                    *current = Some((*next, 0));
                    *next += 1;
                    *next_at = now.saturating_add(*interval);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last: u8, seed: u64) -> TcpHost {
        let v4 = IpAddr::from([198, 18, 0, last]);
        let v6 = IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(last)]);
        TcpHost::new(&[(v4, 24), (v6, 64)], 1400, seed, Instant::ZERO)
    }

    /// Two stacks wired back to back with `delay` each way, run until `until`; what
    /// happened to the client apps on them.
    fn run(a: &mut TcpHost, b: &mut TcpHost, delay: Duration, until: Instant) -> Vec<Progress> {
        let mut seen = Vec::new();
        let mut now = Instant::ZERO;
        // (arrival, for b?, packet)
        let mut flight: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        while now < until {
            for (at, to_b, p) in &flight {
                if *at <= now {
                    if *to_b {
                        b.receive(p)
                    } else {
                        a.receive(p)
                    }
                }
            }
            flight.retain(|(at, _, _)| *at > now);
            for (to_b, host) in [(true, &mut *a), (false, &mut *b)] {
                let polled = host.poll(now);
                seen.extend(polled.progress.into_iter().map(|(_, p)| p));
                for p in polled.packets {
                    flight.push((now.saturating_add(delay), to_b, p));
                }
            }
            now = now.saturating_add(Duration::from_micros(500));
        }
        seen
    }

    #[test]
    fn requests_are_answered_in_full_and_a_bulk_transfer_is_acknowledged_to_the_last_byte() {
        let (mut a, mut b) = (host(1, 1), host(2, 2));
        let to = IpAddr::from([198, 18, 0, 2]);
        let local = SocketAddr::new(IpAddr::from([198, 18, 0, 1]), 40000);
        let requests = AppKind::TcpRequest {
            name: "b".into(),
            count: 3,
            interval_ms: 10,
            request_bytes: 300,
            response_bytes: 5000,
            expect_replies: None,
            expect_median_rtt_ms: None,
        };
        a.connect(0, &requests, local, to, Instant::ZERO).unwrap();
        let until = Instant::from_nanos(500_000_000);
        let seen = run(&mut a, &mut b, Duration::from_millis(2), until);
        let answered: Vec<&Progress> = seen
            .iter()
            .filter(|p| matches!(p, Progress::Answered(_)))
            .collect();
        assert_eq!(
            answered,
            [
                &Progress::Answered(0),
                &Progress::Answered(1),
                &Progress::Answered(2)
            ]
        );
        assert!(seen.contains(&Progress::Finished));

        let bulk = AppKind::TcpBulk {
            name: "b".into(),
            bytes: 3_000_000,
            expect_goodput_mbps: None,
        };
        let (mut a, mut b) = (host(1, 3), host(2, 4));
        a.connect(1, &bulk, local, to, Instant::ZERO).unwrap();
        let seen = run(&mut a, &mut b, Duration::from_millis(2), until);
        assert!(
            seen.contains(&Progress::Acked(3_000_000)),
            "{:?}",
            seen.last()
        );
        assert_eq!(seen.last(), Some(&Progress::Finished));
        assert!(!seen.iter().any(|p| matches!(p, Progress::Failed(_))));
    }

    #[test]
    fn hosts_reach_peers_off_their_prefixes() {
        // Two legacy hosts, each with nothing on its prefix but itself.
        let (client, server) = (
            IpAddr::from([192, 168, 1, 10]),
            IpAddr::from([10, 0, 0, 80]),
        );
        let mut a = TcpHost::new(&[(client, 32)], 1400, 1, Instant::ZERO);
        let mut b = TcpHost::new(&[(server, 32)], 1400, 2, Instant::ZERO);
        let requests = AppKind::TcpRequest {
            name: "b".into(),
            count: 2,
            interval_ms: 10,
            request_bytes: 100,
            response_bytes: 3000,
            expect_replies: None,
            expect_median_rtt_ms: None,
        };
        let local = SocketAddr::new(client, 40000);
        a.connect(0, &requests, local, server, Instant::ZERO)
            .unwrap();
        let until = Instant::from_nanos(200_000_000);
        let seen = run(&mut a, &mut b, Duration::from_millis(2), until);
        assert!(seen.contains(&Progress::Answered(1)), "{seen:?}");
        assert_eq!(seen.last(), Some(&Progress::Finished));
    }

    #[test]
    fn a_connection_to_a_port_nobody_serves_fails() {
        let (mut a, mut b) = (host(1, 1), host(2, 2));
        // Nobody listens on the request port of a host without the service.
        b.servers.clear();
        b.sockets = SocketSet::new(Vec::new());
        let requests = AppKind::TcpRequest {
            name: "b".into(),
            count: 1,
            interval_ms: 10,
            request_bytes: 100,
            response_bytes: 100,
            expect_replies: None,
            expect_median_rtt_ms: None,
        };
        let local = SocketAddr::new(IpAddr::from([198, 18, 0, 1]), 40000);
        a.connect(
            0,
            &requests,
            local,
            IpAddr::from([198, 18, 0, 2]),
            Instant::ZERO,
        )
        .unwrap();
        let seen = run(
            &mut a,
            &mut b,
            Duration::from_millis(2),
            Instant::from_nanos(200_000_000),
        );
        assert!(
            seen.iter().any(|p| matches!(p, Progress::Failed(_))),
            "{seen:?}"
        );
    }
}
