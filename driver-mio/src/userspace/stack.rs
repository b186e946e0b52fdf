//! The userspace TCP/IP stack (smoltcp) that stands in for the kernel's when ocalad runs
//! without a TUN device: it owns the node's TUN addresses, so the engine sees its packets
//! exactly as it sees apps' packets from a TUN, opens TCP connections to handles for the
//! proxies, and asks the engine's DNS sentinel for names over UDP, as an app would.

use super::link::Link;
use ocala_engine::config::HandleConfig;
use ocala_engine::dns::message::{build_address_query, id_of, parse_address_answer};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The stack's port for DNS queries to the sentinel.
const DNS_PORT: u16 = 53_535;
/// Each TCP connection's buffers, each way.
const TCP_BUFFER: usize = 64 * 1024;
/// Local ports for outgoing connections.
const FIRST_PORT: u16 = 49_152;

/// The engine's clock as smoltcp's.
pub fn smol_now(now: ocala_engine::Instant) -> SmolInstant {
    SmolInstant::from_micros((now.as_nanos() / 1_000) as i64)
}

/// The stack, its sockets and its link to the engine.
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    pub link: Link,
    dns: SocketHandle,
    dns_server: IpEndpoint,
    handles: HandleConfig,
    next_id: u16,
    next_port: u16,
    /// Queries sent, by DNS id, and the answers that came back.
    asked: BTreeMap<u16, String>,
    answers: BTreeMap<u16, Result<IpAddr, String>>,
}

impl Stack {
    /// A stack holding `handles.tun_v4` and `tun_v6`, with the handle pools on link.
    pub fn new(handles: &HandleConfig, mtu: usize, now: ocala_engine::Instant) -> Stack {
        let mut link = Link::new(mtu);
        let mut cfg = Config::new(HardwareAddress::Ip);
        // smoltcp draws initial sequence numbers and ports from this; the node's clock is
        // as good a seed as any and keeps two daemons started together apart.
        cfg.random_seed = now.as_nanos();
        let mut iface = Interface::new(cfg, &mut link, smol_now(now));
        iface.update_ip_addrs(|a| {
            let v4 = IpCidr::new(IpAddress::Ipv4(handles.tun_v4), handles.pool_v4.len);
            let v6 = IpCidr::new(IpAddress::Ipv6(handles.tun_v6), handles.pool_v6.len);
            // Two addresses always fit the interface's list.
            let _ = a.push(v4);
            let _ = a.push(v6);
        });
        let mut sockets = SocketSet::new(Vec::new());
        let mut dns = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 16 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 32], vec![0; 16 * 1024]),
        );
        let _ = dns.bind(DNS_PORT);
        let dns = sockets.add(dns);
        Stack {
            iface,
            sockets,
            link,
            dns,
            dns_server: IpEndpoint::new(IpAddress::Ipv4(handles.dns_v4), 53),
            handles: handles.clone(),
            next_id: 1,
            next_port: FIRST_PORT,
            asked: BTreeMap::new(),
            answers: BTreeMap::new(),
        }
    }

    /// Asks the sentinel for `name`'s IPv4 address; the answer comes with [`Stack::answer`].
    pub fn resolve(&mut self, name: &str) -> Result<u16, String> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let query = build_address_query(id, name, false).map_err(|e| e.to_string())?;
        self.sockets
            .get_mut::<udp::Socket>(self.dns)
            .send_slice(&query, self.dns_server)
            .map_err(|e| format!("DNS query for {name}: {e}"))?;
        self.asked.insert(id, name.to_string());
        Ok(id)
    }

    /// The answer to query `id`, once it is in.
    pub fn answer(&mut self, id: u16) -> Option<Result<IpAddr, String>> {
        self.answers.remove(&id)
    }

    /// Forgets query `id` (its client went away).
    pub fn forget(&mut self, id: u16) {
        self.asked.remove(&id);
        self.answers.remove(&id);
    }

    /// Whether `ip` is a handle, reached through the engine (else the host connects itself).
    pub fn routes(&self, ip: IpAddr) -> bool {
        self.handles.pool_v4.contains(ip) || self.handles.pool_v6.contains(ip)
    }

    /// Opens a TCP connection to a handle.
    pub fn connect(&mut self, to: SocketAddr) -> Result<SocketHandle, String> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        );
        let port = self.next_port;
        self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT);
        s.connect(self.iface.context(), to, port)
            .map_err(|e| format!("connecting to {to}: {e}"))?;
        Ok(self.sockets.add(s))
    }

    /// A connection's socket.
    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// Drops a connection's socket (after `close` or `abort`, once its last segment left).
    pub fn remove(&mut self, h: SocketHandle) {
        self.sockets.remove(h);
    }

    /// Runs the stack: takes what the engine delivered, sends what sockets have, and
    /// collects DNS answers. Returns whether anything happened.
    pub fn poll(&mut self, now: ocala_engine::Instant) -> bool {
        let changed = self
            .iface
            .poll(smol_now(now), &mut self.link, &mut self.sockets)
            == smoltcp::iface::PollResult::SocketStateChanged;
        let dns = self.sockets.get_mut::<udp::Socket>(self.dns);
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = dns.recv_slice(&mut buf) {
            let answer = &buf[..n];
            let Some(id) = id_of(answer).filter(|id| self.asked.contains_key(id)) else {
                continue;
            };
            let name = self.asked.remove(&id).unwrap_or_default();
            let result = match parse_address_answer(answer, id) {
                Ok(addrs) => addrs
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("{name}: no address")),
                Err(e) => Err(format!("{name}: {e}")),
            };
            self.answers.insert(id, result);
        }
        changed
    }

    /// How long until the stack must run again (retransmissions, delayed ACKs).
    pub fn poll_delay(&mut self, now: ocala_engine::Instant) -> Option<Duration> {
        self.iface
            .poll_delay(smol_now(now), &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }
}
