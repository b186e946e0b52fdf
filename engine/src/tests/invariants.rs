//! Random sequences of lookups, packets, time, restarts, corruption and garbage thrown at
//! three engines (alice, a gateway, bob), with the engines' tables checked for consistency
//! after every step: whatever happens, no index points at nothing and no count drifts.

use super::secure::secure;
use super::*;
use std::cell::Cell;
use std::rc::Rc;

const NAMES: [&str; 7] = [
    "bob.udp",
    "gw.udp",
    "bob.udp_gw.udp",
    "alice.udp",
    "bob.udp_plain.oci",
    "nobody.udp",
    "bob.udp_auth.oci",
];

#[derive(Debug, Clone)]
enum Op {
    Lookup { node: usize, name: usize },
    Send { node: usize, to: usize, size: usize },
    Advance { ms: u64 },
    Restart { node: usize },
    Corrupt { every: u32 },
    Garbage { node: usize, bytes: Vec<u8> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 0..NAMES.len()).prop_map(|(node, name)| Op::Lookup { node, name }),
        (0..3usize, 3u8..12, 20..1300usize).prop_map(|(node, to, size)| Op::Send {
            node,
            to: usize::from(to),
            size
        }),
        (1..20_000u64).prop_map(|ms| Op::Advance { ms }),
        (0..3usize).prop_map(|node| Op::Restart { node }),
        (0..6u32).prop_map(|every| Op::Corrupt { every }),
        (0..3usize, prop::collection::vec(any::<u8>(), 0..60))
            .prop_map(|(node, bytes)| Op::Garbage { node, bytes }),
    ]
}

fn configs() -> Vec<Config> {
    let mut alice = secure("alice", &[("gw", 2), ("bob", 3)], &["alice.udp"]);
    let mut gw = secure("gw", &[("alice", 1), ("bob", 3)], &["gw.udp"]);
    let mut bob = secure("bob", &[("alice", 1), ("gw", 2)], &["bob.udp"]);
    gw.gateway = true;
    for c in [&mut alice, &mut gw, &mut bob] {
        c.security.accept_plain = true;
        c.limits.max_half_open = 8;
        c.security.rekey_after_secs = 30;
    }
    vec![alice, gw, bob]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn tables_stay_consistent_whatever_happens(ops in prop::collection::vec(op(), 1..40)) {
        let mut net = Net::new(configs());
        let every = Rc::new(Cell::new(0u32));
        let count = Rc::new(Cell::new(0u32));
        let (e2, c2) = (every.clone(), count.clone());
        net.tamper = Some(Box::new(move |d: &mut Vec<u8>| {
            c2.set(c2.get() + 1);
            if e2.get() > 0 && c2.get() % (e2.get() + 1) == 0 {
                if let Some(b) = d.last_mut() {
                    *b ^= 0x5a;
                }
            }
        }));
        for op in ops {
            match op {
                Op::Lookup { node, name } => {
                    net.lookup(node, NAMES[name]);
                }
                Op::Send { node, to, size } => {
                    let src: IpAddr = net.nodes[node].cfg.handles.tun_v4.into();
                    let dst = IpAddr::from([198, 18, 0, to as u8]);
                    net.input(node, Input::TunPacket(&udp_to(src, dst, &vec![0x33; size])));
                }
                Op::Advance { ms } => net.advance(Duration::from_millis(ms)),
                Op::Restart { node } => {
                    let cfg = net.nodes[node].cfg.clone();
                    net.nodes[node] = Engine::new(cfg, [node as u8 + 100; 32], net.now).unwrap();
                }
                Op::Corrupt { every: n } => every.set(n),
                Op::Garbage { node, mut bytes } => {
                    let from = addr(node as u8 + 1);
                    let target = (node + 1) % 3;
                    net.datagram(target, &from, &mut bytes);
                }
            }
            for (i, e) in net.nodes.iter().enumerate() {
                if let Err(why) = e.check_tables() {
                    return Err(TestCaseError::fail(format!("node {i}: {why}")));
                }
            }
        }
    }
}
