//! Rekeying a secure path before its keys get old: the initiator sets up a successor path
//! for the same handle in the background; when the successor is up it takes the handle over,
//! and the old path stays a few seconds for packets already in flight, then is closed. The
//! app never notices: its address and its connections stay.

use crate::engine::Engine;
use crate::oci::paths::{Role, State};
use crate::timers::Timer;
use crate::wire::message::CloseReason;
use std::time::Duration;

/// How long a replaced path keeps accepting packets in flight.
const RETIRE_AFTER: Duration = Duration::from_secs(5);

impl Engine {
    /// Arms the rekey of a secure path the initiator just brought up.
    pub(crate) fn arm_rekey(&mut self, key: usize) {
        let Some(p) = self.paths.get(key) else { return };
        if p.secure.is_none() || !matches!(p.role, Role::Initiator { .. }) {
            return;
        }
        let gen = p.gen();
        let at = self.now.saturating_add(Duration::from_secs(
            self.cfg.security.rekey_after_secs.max(1),
        ));
        self.timers.schedule(at, Timer::Rekey { path: key, gen });
    }

    pub(crate) fn on_rekey_timer(&mut self, key: usize, gen: u32) {
        let Some(p) = self.paths.get_gen(key, gen) else {
            return;
        };
        let (Role::Initiator { handle }, client) = (p.role, p.lan_client) else {
            return;
        };
        if p.state != State::Up
            || self.handles.get(handle).and_then(|h| h.path_of(client)) != Some(key)
        {
            return;
        }
        let started = self.start_path_for(handle, Some(key), client);
        if started.is_ok() {
            self.counters.rekeys += 1;
        }
        if let Err(f) = started {
            // The old keys stay in use; try again after another period.
            let name = self
                .paths
                .get(key)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            self.event(crate::api::Event::SetupFailed {
                name,
                reason: format!("rekey: {}", f.text),
            });
            self.arm_rekey(key);
        }
    }

    /// A path just came up: if it is a successor, it takes over its handle and the old path
    /// retires; either way its own rekey is armed.
    pub(crate) fn took_over(&mut self, key: usize) {
        self.arm_rekey(key);
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let (replaces, role, client) = (p.replaces.take(), p.role, p.lan_client);
        let (Some(old), Role::Initiator { handle }) =
            (replaces.and_then(|l| self.paths.by_label(l)), role)
        else {
            return;
        };
        if let Some(h) = self.handles.get_mut(handle) {
            h.set_path_of(client, Some(key));
            self.handles.touch();
        }
        let Some(o) = self.paths.get_mut(old) else {
            return;
        };
        o.retiring = true;
        // Packets the app queued on the old path now go on the new one.
        let pending = std::mem::take(&mut o.pending);
        let gen = o.gen();
        if let Some(p) = self.paths.get_mut(key) {
            p.pending.extend(pending);
        }
        self.timers.schedule(
            self.now.saturating_add(RETIRE_AFTER),
            Timer::Retire { path: old, gen },
        );
    }

    pub(crate) fn on_retire_timer(&mut self, key: usize, gen: u32) {
        if self.paths.get_gen(key, gen).is_some_and(|p| p.retiring) {
            self.close_path(key, CloseReason::Idle, "replaced by fresh keys");
        }
    }
}
