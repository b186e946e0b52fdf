//! Nodes' handle checkpoints, kept the way ocalad keeps its state file: written whenever the
//! engine's bindings changed, before the engine's next packet reaches an app. So no address
//! an app has seen can be lost in a crash, and a restarted node's engine, restoring the last
//! checkpoint, never gives it to another name (the `invariants` check that it does not).

use super::{node_seed, Sim};
use ocala_engine::{Engine, HandleBinding};

/// What a node's state file holds.
#[derive(Debug, Default)]
pub(super) struct Checkpoint {
    bindings: Vec<HandleBinding>,
    /// The engine's handle version it was taken at.
    version: u64,
}

impl Sim {
    /// Writes the node's checkpoint if its bindings changed since the last one.
    pub(super) fn persist(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let version = n.engine.handles_version();
        if version != n.checkpoint.version {
            n.checkpoint.bindings = n.engine.handle_bindings();
            n.checkpoint.version = version;
        }
    }

    /// The node crashes and starts again: a fresh engine (new keys for its sessions, no
    /// paths) that restores the handles of its last checkpoint — none if `forget`, as when
    /// the state file is lost too.
    pub(super) fn restart(&mut self, node: usize, forget: bool) {
        let now = self.now;
        let n = &mut self.nodes[node];
        n.incarnation += 1;
        if forget {
            n.checkpoint = Checkpoint::default();
        }
        let seed = node_seed(self.seed, &n.name, n.incarnation);
        match Engine::new(n.cfg.clone(), seed, now) {
            Ok(mut e) => {
                e.restore_handles(&n.checkpoint.bindings);
                n.engine = e;
                // The new engine counts versions from its own start.
                n.checkpoint.version = n.engine.handles_version();
                n.seen_version = u64::MAX;
                n.checked = Default::default();
            }
            Err(e) => self.errors.push(format!("{}: restart failed: {e}", n.name)),
        }
        self.record(node, "fault", b"restart");
        self.drain(node, &[]);
        self.check(node);
    }
}
