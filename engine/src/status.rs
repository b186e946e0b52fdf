//! The operator's view of an engine: handles, paths, tunnels, drops and counters, as plain
//! data for `ocala status` to print or serialise.

use crate::api::{HandleStatus, PathStatus, Status, TunnelStatus};
use crate::engine::Engine;
use crate::oci::paths::{Path, Role, State};

pub(crate) fn state_text(p: &Path) -> String {
    match p.state {
        State::Up if p.retiring => "up, retiring after a rekey".into(),
        State::Up => "up".into(),
        State::AwaitTunnel => "waiting for tunnel".into(),
        State::Connecting { attempts } => format!("connecting (attempt {attempts})"),
        State::AwaitDownstream => "waiting for next hop".into(),
        State::AwaitConfirm => "waiting for the peer's confirm".into(),
    }
}

/// The path's protection, and who besides its ends may read it: `encrypt, read by fw.i3`
/// at an end, `opened here` at a relay half of a middlebox that was granted its keys.
pub(crate) fn protection_text(p: &Path) -> String {
    let Some(s) = p.secure.as_ref() else {
        return match p.read {
            Some(_) => "opened here".into(),
            None => "plain".into(),
        };
    };
    let mode = format!("{:?}", s.mode).to_lowercase();
    if s.readers.is_empty() {
        return mode;
    }
    let names: Vec<&str> = s.readers.iter().map(|r| r.name.as_str()).collect();
    format!("{mode}, read by {}", names.join(", "))
}

/// The data cipher of the path's keys, for encrypted paths and granted relay halves.
fn cipher_of(p: &Path) -> Option<&'static str> {
    let key = match p.secure.as_ref() {
        Some(s) if s.mode == crate::config::Protection::Encrypt => s.keys().map(|k| &k.seal),
        Some(_) => None,
        None => p.read.as_deref(),
    };
    key.map(|k| k.cipher.name())
}

impl Engine {
    /// A snapshot of the tables for the operator.
    pub fn status(&self) -> Status {
        let handles = self
            .handles
            .iter_by_name()
            .map(|h| HandleStatus {
                name: h.name.clone(),
                v4: h.v4.into(),
                v6: h.v6.into(),
                path: match h.path.and_then(|p| self.paths.get(p)) {
                    None => "none".into(),
                    Some(p) => format!(
                        "{}, {} (label {:#x})",
                        state_text(p),
                        protection_text(p),
                        p.label
                    ),
                },
            })
            .collect();
        let paths = self
            .paths
            .iter()
            .map(|(_, p)| PathStatus {
                name: p.name.clone(),
                role: match p.role {
                    Role::Initiator { .. } => "initiator",
                    Role::Responder { .. } => "responder",
                    Role::Relay {
                        downstream: false, ..
                    } => "relay (upstream)",
                    Role::Relay {
                        downstream: true, ..
                    } => "relay (downstream)",
                }
                .into(),
                state: state_text(p),
                protection: protection_text(p),
                cipher: cipher_of(p),
                partial_checksums: p.partial.send
                    || p.secure.as_ref().is_some_and(|s| s.peer_partial),
                label: p.label,
                peer_label: p.peer_label,
            })
            .collect();
        let tunnels = self
            .tunnels
            .iter()
            .map(|(_, t)| {
                let slot = self.overlays.get(usize::from(t.overlay.0));
                TunnelStatus {
                    overlay: slot.map_or(String::new(), |s| s.name.clone()),
                    remote: slot.map_or(String::new(), |s| s.module.describe(t.module_ref)),
                    paths: t.paths,
                }
            })
            .collect();
        let relayed = self
            .paths
            .iter()
            .filter(|(_, p)| {
                matches!(
                    p.role,
                    Role::Relay {
                        downstream: false,
                        ..
                    }
                )
            })
            .count();
        Status {
            handles,
            paths,
            tunnels,
            relayed,
            drops: self.drops.iter().map(|(r, n)| (*r, *n)).collect(),
            counters: self.counters,
            overlays: self.overlays.iter().map(|o| o.traffic.clone()).collect(),
            middlebox: self.middlebox.as_ref().map(|m| m.stats().clone()),
        }
    }
}
