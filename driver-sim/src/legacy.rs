//! Legacy hosts: machines on a gateway's LAN that run no ocala, only an ordinary IP stack
//! (ping, UDP echo, and TCP with a discard and a request service: `sim/stacks.rs`); and the
//! masquerade in front of them that turns a path's egress address into the gateway's own,
//! as ocalad's nftables rule does on Linux. So a legacy host sees ordinary traffic from its
//! gateway, and two intranets behind two gateways may use the same addresses.

use crate::hoststack;
use ocala_engine::wire::rewrite::rewrite_addresses;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `[[legacy_hosts]]`: a host without ocala behind a gateway node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacySpec {
    pub name: String,
    /// Its address on the gateway's LAN (intranets may reuse each other's).
    pub ip: IpAddr,
    /// The gateway node whose LAN it is on.
    pub behind: String,
    /// One-way latency between the gateway and the host.
    #[serde(default = "default_latency")]
    pub latency_ms: f64,
}

fn default_latency() -> f64 {
    1.0
}

/// The connection-tracking key of a packet between a gateway and a legacy host: the host,
/// the protocol, and the gateway side's port (or ICMP echo identifier).
type Flow = (IpAddr, u8, u16);

/// A gateway's masquerade: which egress address each flow to its legacy hosts came from.
#[derive(Debug, Default)]
pub struct Masquerade {
    flows: BTreeMap<Flow, IpAddr>,
}

impl Masquerade {
    /// A packet from an egress address to legacy host `to`: now from `lan` (the gateway's
    /// own address), remembered so the answer finds its way back. `Err` for packets a
    /// masquerade cannot track, or a flow that another egress address already holds (the
    /// simulator's apps use distinct ports, so that would be a bug worth seeing).
    pub fn outbound(&mut self, packet: &mut [u8], lan: IpAddr) -> Result<(), String> {
        let (src, dst, flow) = hoststack::flow(packet, true).ok_or("untrackable packet")?;
        let key = (dst, flow.0, flow.1);
        match self.flows.get(&key) {
            Some(held) if *held != src => {
                return Err(format!("flow {key:?} of {held} reused by {src}"));
            }
            _ => {
                self.flows.insert(key, src);
            }
        }
        rewrite_addresses(packet, lan, dst).map_err(|e| e.to_string())
    }

    /// A legacy host's answer to the gateway: back to the egress address it belongs to.
    pub fn inbound(&self, packet: &mut [u8]) -> Option<()> {
        let (src, _, flow) = hoststack::flow(packet, false)?;
        let egress = *self.flows.get(&(src, flow.0, flow.1))?;
        rewrite_addresses(packet, src, egress).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::AppKind;
    use crate::tcp::TcpHost;
    use ocala_engine::Instant;
    use std::net::SocketAddr;

    #[test]
    fn the_masquerade_carries_a_tcp_connection_both_ways_and_keeps_its_flow() {
        let egress = IpAddr::from([198, 18, 0, 9]);
        let server = IpAddr::from([10, 0, 0, 80]);
        let gateway = IpAddr::from([192, 0, 2, 10]);
        let bulk = AppKind::TcpBulk {
            name: "web".into(),
            bytes: 1000,
            expect_goodput_mbps: None,
        };
        let mut client = TcpHost::new(&[(egress, 15)], 1400, 1, Instant::ZERO);
        let local = SocketAddr::new(egress, 40000);
        client
            .connect(0, &bulk, local, server, Instant::ZERO)
            .unwrap();
        let syn = client.poll(Instant::ZERO).packets.remove(0);

        let mut m = Masquerade::default();
        let mut out = syn.clone();
        m.outbound(&mut out, gateway).unwrap();
        assert_eq!(
            hoststack::flow(&out, true),
            Some((gateway, server, (6, 40000)))
        );
        assert!(hoststack::checksums_ok(&out));

        let mut web = TcpHost::new(&[(server, 32)], 1400, 2, Instant::ZERO);
        web.receive(&out);
        let mut answer = web.poll(Instant::ZERO).packets.remove(0);
        m.inbound(&mut answer).unwrap();
        assert_eq!(
            hoststack::flow(&answer, false),
            Some((server, egress, (6, 40000)))
        );
        assert!(hoststack::checksums_ok(&answer));

        // The same flow from another egress address is not this connection's.
        let mut other = syn;
        rewrite_addresses(&mut other, IpAddr::from([198, 18, 0, 10]), server).unwrap();
        assert!(m.outbound(&mut other, gateway).is_err());
    }
}
