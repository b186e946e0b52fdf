//! `ocala-sim run --faults random`: faults chosen by the seed and added to a scenario, so a
//! failure is reported as scenario + seed and replaying that seed reproduces it exactly.

use crate::scenario::{FaultKind, FaultSpec, LinkSpec, Scenario};
use std::net::{IpAddr, Ipv4Addr};

/// splitmix64: enough for choosing faults, and independent of the network's stream.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next().checked_rem(n).unwrap_or(0)
    }
}

impl Scenario {
    /// Adds four to eight faults at seeded times, each healed a while later where it can be:
    /// a link down, losing, corrupting and duplicating, or reordering; a partition of a
    /// random group of nodes from the rest; a NAT losing its mappings; a node crashing and
    /// restarting from its checkpoint, or moving to another address. The same seed always
    /// adds the same faults.
    pub fn add_random_faults(&mut self, seed: u64) {
        let mut draw = Draw(seed ^ 0x6f63_616c_615f_6661);
        let span = self.duration_ms.max(1);
        let count = 4 + draw.below(5);
        for _ in 0..count {
            let at_ms = draw.below(span);
            let heal_ms = at_ms + 500 + draw.below(3_000);
            let link = self
                .links
                .get(draw.below(self.links.len() as u64) as usize)
                .cloned();
            let node = draw.below(self.nodes.len() as u64) as usize;
            let share = draw.below(60) as f64 / 100.0;
            let (fault, heal) = match (draw.below(8), link) {
                (0..=3, Some(l)) => link_fault(&mut draw, l, share),
                (4, _) => self.partition(&mut draw),
                (5, _) if !self.nats.is_empty() => {
                    // A NAT forgets its mappings: hosts behind it appear from new ports.
                    let nat = &self.nats[draw.below(self.nats.len() as u64) as usize];
                    let rebind = FaultKind::NatRebind {
                        nat: nat.name.clone(),
                    };
                    (rebind, None)
                }
                (6, _) => match self.move_away(&mut draw, node) {
                    Some(pair) => pair,
                    None => continue,
                },
                _ => match self.nodes.get(node) {
                    Some(n) => {
                        let restart = FaultKind::Restart {
                            node: n.name.clone(),
                            forget: false,
                        };
                        (restart, None)
                    }
                    None => continue,
                },
            };
            self.faults.push(FaultSpec { at_ms, kind: fault });
            if let Some(kind) = heal {
                self.faults.push(FaultSpec {
                    at_ms: heal_ms,
                    kind,
                });
            }
        }
    }

    /// A random group of nodes, neither none nor all, cut off from the rest and healed.
    fn partition(&self, draw: &mut Draw) -> (FaultKind, Option<FaultKind>) {
        let mut side: Vec<String> = self
            .nodes
            .iter()
            .filter(|_| draw.below(2) == 0)
            .map(|n| n.name.clone())
            .collect();
        if side.len() == self.nodes.len() {
            side.pop();
        }
        if side.is_empty() {
            side.extend(self.nodes.first().map(|n| n.name.clone()));
        }
        (
            FaultKind::Partition {
                nodes: side.clone(),
            },
            Some(FaultKind::Heal { nodes: side }),
        )
    }

    /// The node moves to a fresh address (behind the same NAT, if any) and later back.
    fn move_away(&self, draw: &mut Draw, node: usize) -> Option<(FaultKind, Option<FaultKind>)> {
        let n = self.nodes.get(node)?;
        let taken = |ip: IpAddr| {
            self.nodes.iter().any(|n| n.ip == ip) || self.nats.iter().any(|n| n.public_ip == ip)
        };
        let ip = (0..16)
            .map(|_| {
                let x = draw.below(1 << 16) as u16;
                IpAddr::V4(Ipv4Addr::new(10, 254, (x >> 8) as u8, x as u8))
            })
            .find(|ip| !taken(*ip))?;
        let behind = self
            .nats
            .iter()
            .find(|nat| nat.inside.contains(&n.name))
            .map(|nat| nat.name.clone());
        let to = |ip| FaultKind::Move {
            node: n.name.clone(),
            ip,
            behind: behind.clone(),
        };
        Some((to(ip), Some(to(n.ip))))
    }
}

/// A link that goes down, loses, corrupts and duplicates, or reorders for a while, and then
/// is as the scenario made it again.
fn link_fault(draw: &mut Draw, l: LinkSpec, share: f64) -> (FaultKind, Option<FaultKind>) {
    let (a, b) = (l.a.clone(), l.b.clone());
    match draw.below(4) {
        0 => (
            FaultKind::LinkDown { a, b },
            Some(FaultKind::LinkUp { a: l.a, b: l.b }),
        ),
        1 => (
            FaultKind::LinkLoss { a, b, loss: share },
            Some(FaultKind::LinkLoss {
                a: l.a,
                b: l.b,
                loss: l.loss,
            }),
        ),
        2 => (
            FaultKind::LinkCorrupt {
                a,
                b,
                corrupt: share / 4.0,
                duplicate: share / 4.0,
            },
            Some(FaultKind::LinkCorrupt {
                a: l.a,
                b: l.b,
                corrupt: l.corrupt,
                duplicate: l.duplicate,
            }),
        ),
        _ => (
            FaultKind::LinkReorder {
                a,
                b,
                share: share / 2.0,
                delay_ms: 5.0 + draw.below(45) as f64,
            },
            Some(FaultKind::LinkReorder {
                a: l.a,
                b: l.b,
                share: l.reorder,
                delay_ms: l.reorder_ms,
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_seeds_bring_every_kind_of_fault_and_the_same_seed_the_same_ones() {
        let text = include_str!("../scenarios/i3-nat.toml");
        let base = Scenario::parse("i3-nat", text).expect("parses");
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 1..=50 {
            let mut sc = base.clone();
            sc.add_random_faults(seed);
            let added = &sc.faults[base.faults.len()..];
            assert!((4..=16).contains(&added.len()), "{}", added.len());
            for f in added {
                let kind = format!("{:?}", f.kind);
                kinds.insert(kind.split([' ', '{']).next().unwrap_or("").to_string());
                assert!(f.at_ms < sc.duration_ms + 3_500, "{f:?}");
            }
            let mut again = base.clone();
            again.add_random_faults(seed);
            assert_eq!(format!("{:?}", again.faults), format!("{:?}", sc.faults));
        }
        let want = [
            "Heal",
            "LinkCorrupt",
            "LinkDown",
            "LinkLoss",
            "LinkReorder",
            "LinkUp",
            "Move",
            "NatRebind",
            "Partition",
            "Restart",
        ];
        for k in want {
            assert!(kinds.contains(k), "{k} never drawn: {kinds:?}");
        }
    }
}
