//! The simulator's side of real TCP (`crate::tcp`): each host's stack gets the TCP packets
//! the engine writes to the host, sends what the stack sends into the engine as the host's
//! apps would, runs when its timers ask, and reports each TCP app's progress to the app.

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
    /// The node's stack, made on first use with the node's TUN addresses.
    fn tcp_host(&mut self, node: usize) -> &mut TcpHost {
        let seed = self.seed ^ (node as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let now = self.now;
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

    /// A TCP app's lookup answered: it connects to `target`.
    pub(super) fn tcp_connect(&mut self, app: usize, target: IpAddr) {
        let node = self.apps[app].node;
        let (src, _) = self.app_source(app, target.is_ipv4());
        let local = SocketAddr::new(src, self.apps[app].port);
        let kind = self.apps[app].kind.clone();
        let now = self.now;
        if let Err(e) = self.tcp_host(node).connect(app, &kind, local, target, now) {
            self.apps[app].failure = Some(e);
            self.apps[app].phase = Phase::Done;
            return;
        }
        self.tcp_poll(node);
    }

    /// A TCP packet the engine delivered to the node's own stack.
    pub(super) fn tcp_receive(&mut self, node: usize, packet: &[u8]) {
        self.tcp_host(node).receive(packet);
        self.tcp_poll(node);
    }

    /// A scheduled run of the node's stack; one that was superseded is ignored.
    pub(super) fn tcp_wake(&mut self, node: usize) {
        let now = self.now;
        let due = self.nodes[node]
            .tcp
            .as_ref()
            .is_some_and(|h| h.wake == Some(now));
        if due {
            self.tcp_poll(node);
        }
    }

    /// Runs the node's stack now: its packets go to the engine, its apps' progress to the
    /// apps, and its next run is scheduled.
    fn tcp_poll(&mut self, node: usize) {
        let now = self.now;
        let Some(host) = self.nodes[node].tcp.as_mut() else {
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
            self.push(now, Ev::Tun { node, packet });
        }
        for (app, p) in progress {
            self.tcp_progress(app, p, now);
        }
        if let Some(at) = schedule {
            self.push(at, Ev::TcpPoll { node });
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
