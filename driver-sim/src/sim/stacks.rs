//! The hosts' IP stacks and the ways between them and the engines. A node's own stack sits
//! behind its TUN; a legacy host's sits on its gateway's LAN, the host's latency away each
//! way, and a legacy server's traffic crosses the gateway's masquerade. Every stack answers
//! ICMP and UDP echo, hands DNS answers and echo replies to the apps on it, and hands TCP to
//! its smoltcp stack (`tcp_apps`), so a legacy host serves and opens TCP connections as a
//! node does.

use super::{serves_lan, Ev, Sim};
use crate::hoststack::{self, Delivered};

/// An IP stack the simulator runs: a node's own, behind its TUN, or a legacy host's (by
/// index into `Sim::legacy`), on its gateway's LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stack {
    Node(usize),
    Legacy(usize),
}

impl Sim {
    /// A packet the engine wrote to a node's TUN: the node's own stack takes it, or the
    /// legacy host on its LAN it is for.
    pub(super) fn deliver_to_host(&mut self, node: usize, packet: &[u8]) {
        if !hoststack::checksums_ok(packet) {
            // Where links corrupt, a plain path carries what it got, as IP does, and the
            // host's stack drops it. Elsewhere a bad checksum is the engine's rewriting.
            if self.corrupted > 0 {
                self.bad_checksums += 1;
                return;
            }
            self.errors.push(format!(
                "{}: engine delivered a packet with a bad checksum",
                self.nodes[node].name
            ));
        }
        let dst = ocala_engine::wire::ip::IpView::parse(packet).map(|ip| ip.dst());
        let host = dst.ok().and_then(|d| {
            self.legacy
                .iter()
                .position(|h| h.behind == node && h.ip == d)
        });
        match host {
            Some(host) => self.send_to_legacy_host(host, packet),
            None => self.stack_receive(Stack::Node(node), packet.to_vec()),
        }
    }

    /// A gateway's packet for a legacy host on its LAN, on its way there: masqueraded as the
    /// gateway for a legacy server; as it is for a LAN client, which called the handle it
    /// comes from.
    fn send_to_legacy_host(&mut self, host: usize, packet: &[u8]) {
        let h = &self.legacy[host];
        let (node, at) = (h.behind, self.now.saturating_add(h.latency));
        let mut packet = packet.to_vec();
        if !serves_lan(&self.nodes[node].cfg, h.ip) {
            let lan = self.nodes[node].ip;
            if let Err(e) = self.nodes[node].masquerade.outbound(&mut packet, lan) {
                return self
                    .errors
                    .push(format!("{}: masquerade: {e}", self.nodes[node].name));
            }
        }
        self.record(node, "lan-out", &packet);
        self.push(at, Ev::Lan { host, packet });
    }

    /// A packet from its gateway arriving at a legacy host.
    pub(super) fn lan_arrival(&mut self, host: usize, packet: Vec<u8>) {
        self.record(self.legacy[host].behind, "lan-in", &packet);
        self.legacy[host].received += 1;
        self.stack_receive(Stack::Legacy(host), packet);
    }

    /// A stack takes a packet: TCP goes to its TCP stack, echo requests are answered, DNS
    /// answers and echo replies go to the app on it they are for.
    fn stack_receive(&mut self, stack: Stack, packet: Vec<u8>) {
        if crate::tcp::is_tcp(&packet) {
            return self.tcp_receive(stack, &packet);
        }
        let now = self.now;
        match hoststack::classify(&packet) {
            Delivered::Dns { port, message } => {
                if let Some(app) = self.app_by_port(stack, port) {
                    self.on_dns_answer(app, &message);
                }
            }
            Delivered::EchoRequest { reply } | Delivered::UdpEcho { reply } => {
                self.check_answered(stack, &packet);
                self.stack_send(stack, reply)
            }
            Delivered::EchoReply { id, seq } => {
                if let Some(app) = self.app_by_port(stack, id) {
                    self.check_reply(app, &packet);
                    self.apps[app].on_reply(now, u32::from(seq));
                }
            }
            Delivered::UdpReply { port, payload } => {
                if let (Some(app), Some(seq)) = (self.app_by_port(stack, port), payload.get(..4)) {
                    self.check_reply(app, &packet);
                    self.apps[app]
                        .on_reply(now, u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]));
                }
            }
            Delivered::Other => {}
        }
    }

    /// A packet a stack sends, on its way into the engine that carries it: a node's at once;
    /// a legacy host's across the LAN to its gateway, and a legacy server's back through the
    /// masquerade to the egress address it answers. The masquerade turns it as it leaves the
    /// host: connection tracking learns flows only from packets on their way in, which all
    /// came before, so it turns it as it would on arrival.
    pub(super) fn stack_send(&mut self, stack: Stack, mut packet: Vec<u8>) {
        let (node, at) = match stack {
            Stack::Node(node) => (node, self.now),
            Stack::Legacy(host) => {
                let h = &mut self.legacy[host];
                h.sent += 1;
                let (node, at) = (h.behind, self.now.saturating_add(h.latency));
                let n = &self.nodes[node];
                if !serves_lan(&n.cfg, h.ip) && n.masquerade.inbound(&mut packet).is_none() {
                    // It answers no flow the gateway tracks: the gateway drops it.
                    return;
                }
                (node, at)
            }
        };
        self.push(at, Ev::Tun { node, packet });
    }

    /// The stack an app runs on.
    pub(super) fn app_stack(&self, app: usize) -> Stack {
        let a = &self.apps[app];
        a.lan.map_or(Stack::Node(a.node), Stack::Legacy)
    }

    /// The app on `stack` with this UDP client port or ICMP echo identifier.
    fn app_by_port(&self, stack: Stack, port: u16) -> Option<usize> {
        self.apps_by_port.get(&(stack, port)).copied()
    }
}
