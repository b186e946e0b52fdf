//! The simulator's side of real TCP (`crate::tcp`): each stack — a node's own, or a legacy
//! host's — gets the TCP packets that reach it, sends what its TCP stack sends on the way
//! any packet of it goes (`Sim::stack_send`), runs when its timers ask, and reports each
//! TCP app's progress to the app.

use super::stacks::Stack;
use super::{Ev, Sim};
use crate::apps::Phase;
use crate::tcp::{Progress, TcpHost};
use ocala_engine::Instant;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The shortest wait between two runs of a stack at the same simulated instant: smoltcp
/// asks to run "now" when it has more to send, and every run already sends what it can.
const MIN_WAIT: Duration = Duration::from_micros(10);

impl Sim {
    /// Where a stack's TCP stack lives (none until first used).
    fn tcp_slot(&mut self, stack: Stack) -> &mut Option<TcpHost> {
        match stack {
            Stack::Node(node) => &mut self.nodes[node].tcp,
            Stack::Legacy(host) => &mut self.legacy[host].tcp,
        }
    }

    /// The stack's TCP stack, made on first use: a node's on its TUN addresses, a legacy
    /// host's on its LAN address with its gateway's path MTU (as the gateway's MSS clamp
    /// would have it). Seeds come from the run's seed, legacy hosts numbered after the
    /// nodes, so each stack has its own and runs replay.
    fn tcp_host(&mut self, stack: Stack) -> &mut TcpHost {
        let salt = match stack {
            Stack::Node(node) => node,
            Stack::Legacy(host) => self.nodes.len() + host,
        };
        let seed = self.seed ^ (salt as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let now = self.now;
        match stack {
            Stack::Node(node) => {
                let n = &mut self.nodes[node];
                let h = &n.cfg.handles;
                let addrs = [
                    (IpAddr::from(h.tun_v4), h.pool_v4.len),
                    (IpAddr::from(h.tun_v6), h.pool_v6.len),
                ];
                let mtu = usize::from(n.cfg.limits.path_mtu);
                n.tcp
                    .get_or_insert_with(|| TcpHost::new(&addrs, mtu, seed, now))
            }
            Stack::Legacy(host) => {
                let h = &mut self.legacy[host];
                let mtu = usize::from(self.nodes[h.behind].cfg.limits.path_mtu);
                // Its LAN's prefix is not in the scenario, and it needs none: everything is
                // through the gateway.
                let addrs = [(h.ip, if h.ip.is_ipv4() { 32 } else { 128 })];
                h.tcp
                    .get_or_insert_with(|| TcpHost::new(&addrs, mtu, seed, now))
            }
        }
    }

    /// A TCP app's lookup answered: it connects to `target`.
    pub(super) fn tcp_connect(&mut self, app: usize, target: IpAddr) {
        let stack = self.app_stack(app);
        let src = self.app_source(app, target.is_ipv4());
        let local = SocketAddr::new(src, self.apps[app].port);
        let kind = self.apps[app].kind.clone();
        let now = self.now;
        if let Err(e) = self.tcp_host(stack).connect(app, &kind, local, target, now) {
            self.apps[app].failure = Some(e);
            self.apps[app].phase = Phase::Done;
            return;
        }
        self.tcp_poll(stack);
    }

    /// A TCP packet that reached a stack.
    pub(super) fn tcp_receive(&mut self, stack: Stack, packet: &[u8]) {
        self.tcp_host(stack).receive(packet);
        self.tcp_poll(stack);
    }

    /// A scheduled run of a TCP stack; one that was superseded is ignored.
    pub(super) fn tcp_wake(&mut self, stack: Stack) {
        let now = self.now;
        let due = self
            .tcp_slot(stack)
            .as_ref()
            .is_some_and(|h| h.wake == Some(now));
        if due {
            self.tcp_poll(stack);
        }
    }

    /// Runs a TCP stack now: its packets go out, its apps' progress to the apps, and its
    /// next run is scheduled.
    fn tcp_poll(&mut self, stack: Stack) {
        let now = self.now;
        let Some(host) = self.tcp_slot(stack).as_mut() else {
            return;
        };
        let crate::tcp::Polled {
            packets,
            progress,
            next,
        } = host.poll(now);
        let next = next.map(|at| at.max(now.saturating_add(MIN_WAIT)));
        let schedule = next.filter(|&at| host.wake != Some(at));
        host.wake = next;
        for packet in packets {
            self.stack_send(stack, packet);
        }
        for (app, p) in progress {
            self.tcp_progress(app, p, now);
        }
        if let Some(at) = schedule {
            self.push(at, Ev::TcpPoll { stack });
        }
    }

    fn tcp_progress(&mut self, app: usize, p: Progress, now: Instant) {
        let a = &mut self.apps[app];
        match p {
            Progress::Connected => a.connected = Some(now),
            Progress::Sent(seq) => a.on_send(now, seq),
            Progress::Answered(seq) => a.on_reply(now, seq),
            Progress::Acked(bytes) => {
                if a.acked.last().is_none_or(|&(_, b)| b != bytes) {
                    a.acked.push((now, bytes));
                }
            }
            Progress::Finished => {
                a.finished = Some(now);
                a.phase = Phase::Done;
            }
            Progress::Failed(why) => {
                a.failure = Some(why);
                a.phase = Phase::Done;
            }
        }
    }
}
