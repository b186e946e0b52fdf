//! Faults as they happen: links that go down, lose, corrupt, duplicate or reorder for a
//! while; partitions that cut a group of nodes off from the rest and heal; nodes that crash
//! and restart from their checkpoints, move to another address, or lose their NAT's mappings.

use super::{nat_index, Sim};
use crate::scenario::FaultKind;
use ocala_engine::Input;
use std::time::Duration;

impl Sim {
    pub(super) fn fault(&mut self, index: usize) {
        let f = self.sc.faults[index].clone();
        let position = |sim: &Sim, name: &str| sim.nodes.iter().position(|n| n.name == name);
        if let Some((a, b)) = f.kind.link() {
            let x = position(self, a).unwrap_or(0);
            let y = position(self, b).unwrap_or(0);
            if let Some(l) = self.links.get_mut(&(x.min(y), x.max(y))) {
                match f.kind {
                    FaultKind::LinkLoss { loss, .. } => l.loss = loss.clamp(0.0, 1.0),
                    FaultKind::LinkCorrupt {
                        corrupt, duplicate, ..
                    } => {
                        l.corrupt = corrupt.clamp(0.0, 1.0);
                        l.duplicate = duplicate.clamp(0.0, 1.0);
                    }
                    FaultKind::LinkReorder {
                        share, delay_ms, ..
                    } => {
                        l.reorder = share.clamp(0.0, 1.0);
                        l.reorder_delay = Duration::from_secs_f64(delay_ms.max(0.0) / 1000.0);
                    }
                    _ => l.up = matches!(f.kind, FaultKind::LinkUp { .. }),
                }
            }
            self.record(x, "fault", format!("{:?}", f.kind).as_bytes());
            return;
        }
        match &f.kind {
            FaultKind::Partition { nodes } | FaultKind::Heal { nodes } => {
                let side: Vec<bool> = self.nodes.iter().map(|n| nodes.contains(&n.name)).collect();
                let cut = matches!(f.kind, FaultKind::Partition { .. });
                for (&(x, y), l) in self.links.iter_mut() {
                    if side[x] != side[y] {
                        l.cuts = if cut {
                            l.cuts + 1
                        } else {
                            l.cuts.saturating_sub(1)
                        };
                    }
                }
                self.record(0, "fault", format!("{:?}", f.kind).as_bytes());
            }
            FaultKind::Restart { node, forget } => {
                if let Some(i) = position(self, node) {
                    self.restart(i, *forget);
                }
            }
            FaultKind::Move { node, ip, behind } => {
                let Some(i) = position(self, node) else {
                    return;
                };
                let old = std::mem::replace(&mut self.nodes[i].ip, *ip);
                if self.by_ip.get(&old) == Some(&i) {
                    self.by_ip.remove(&old);
                }
                self.by_ip.insert(*ip, i);
                self.nodes[i].nat = behind.as_deref().and_then(|b| nat_index(&self.nats, b));
                self.record(i, "fault", format!("{:?}", f.kind).as_bytes());
                self.input(i, Input::NetworkChanged);
            }
            FaultKind::NatRebind { nat } => {
                if let Some(n) = nat_index(&self.nats, nat) {
                    self.nats[n].rebind();
                }
                self.record(0, "fault", format!("{:?}", f.kind).as_bytes());
            }
            // Link faults were carried out above.
            _ => {}
        }
    }
}
