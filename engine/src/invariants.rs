//! The engine's tables checked against each other, as property tests and fuzz targets do
//! after every step.

use crate::oci::paths::{Role, State};
use crate::time::Instant;
use crate::Engine;

/// What [`Engine::check_tables_since`] remembers between two checks: the tables' shape at
/// the last full check, when the oldest setup then pending must have ended, and how many
/// checks since were skipped.
#[derive(Debug, Default, Clone)]
pub struct TablesChecked {
    shape: Option<Shape>,
    settles_by: Option<Instant>,
    skipped: u32,
}

/// Counters that move with every change to what `check_tables` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    paths: u64,
    handles: u64,
    tunnels: u64,
    waiting: usize,
    granted: usize,
}

/// Full checks skipped at most in a row, however still the tables: a change some future
/// code makes without moving the shape is caught within this many steps.
pub(crate) const MAX_SKIPPED: u32 = 255;

impl Engine {
    /// [`Engine::check_tables`] when the tables changed shape since `last` (a path, handle
    /// or tunnel came or went, or changed state, peer, tunnel, role or link; queries or
    /// grants came or went), else only whether a pending setup outlived its time — so a
    /// simulator can check after every step of a node that relays thousands of paths
    /// without walking them for every packet.
    pub fn check_tables_since(&self, last: &mut TablesChecked) -> Result<(), String> {
        let shape = Shape {
            paths: self.paths.version(),
            handles: self.handles.shape(),
            tunnels: self.tunnels.version(),
            waiting: self.waiting_queries,
            granted: self.granted.len(),
        };
        let settled = last.settles_by.is_none_or(|by| self.now < by);
        if last.shape == Some(shape) && settled && last.skipped < MAX_SKIPPED {
            last.skipped += 1;
            return Ok(());
        }
        let settles_by = self.check_all()?;
        *last = TablesChecked {
            shape: Some(shape),
            settles_by,
            skipped: 0,
        };
        Ok(())
    }

    /// Checks that every table agrees with every other and stays within its configured limit:
    /// no index points at nothing and no count drifts. For property tests and fuzzing (which drive engines through arbitrary
    /// inputs and call this after every step); `Err` names the first disagreement.
    pub fn check_tables(&self) -> Result<(), String> {
        self.check_all().map(|_| ())
    }

    /// `check_tables`, and when the oldest setup now pending must have ended by.
    fn check_all(&self) -> Result<Option<Instant>, String> {
        let e = self;
        let limits = &e.cfg.limits;
        if e.paths.len() > limits.max_paths {
            return Err(format!(
                "{} paths, over the limit of {}",
                e.paths.len(),
                limits.max_paths
            ));
        }
        let handles = e.handles.slab.len();
        if handles > limits.max_handles {
            return Err(format!(
                "{handles} handles, over the limit of {}",
                limits.max_handles
            ));
        }
        if e.granted.len() > e.granted.capacity() {
            return Err(format!(
                "{} transit grants, over the limit of {}",
                e.granted.len(),
                e.granted.capacity()
            ));
        }
        // One pass over the paths (the simulator checks after every step, and a gateway
        // holds many): each path on its own, and the counts the tables keep.
        let settle = limits.setup_lifetime();
        let (mut half_open, mut waiting) = (0, 0);
        let mut settles_by: Option<Instant> = None;
        let mut carried = Vec::<usize>::new();
        for (k, p) in e.paths.iter() {
            half_open += usize::from(p.half_open());
            waiting += p.queries.len();
            if carried.len() <= p.tunnel {
                carried.resize(p.tunnel + 1, 0);
            }
            carried[p.tunnel] += 1;
            // Every setup ends, in a path that is up or in a reported failure: one that
            // (re)transmits has its next retransmission or its end pending, a relay's half
            // waits on one that does, and one that waits on a tunnel gets it (or fails)
            // within the time retransmissions take.
            let by = match p.state {
                State::Up => None,
                State::Connecting { .. } | State::AwaitConfirm => {
                    if p.retransmit_at <= e.now {
                        return Err(format!(
                            "path {k} to {} {:?} with no retransmission pending",
                            p.name, p.state
                        ));
                    }
                    Some(p.retransmit_at)
                }
                // A relay's upstream half ends with its downstream half, which retransmits.
                State::AwaitDownstream => match p.role {
                    Role::Relay { twin, .. }
                        if e.paths
                            .get(twin)
                            .is_some_and(|t| t.state != State::AwaitDownstream) =>
                    {
                        None
                    }
                    _ => {
                        return Err(format!(
                            "path {k} to {} waits for a downstream half that does not move",
                            p.name
                        ))
                    }
                },
                State::AwaitTunnel => {
                    if e.now.since(p.started) > settle {
                        return Err(format!(
                            "path {k} to {} still {:?} after {:?}",
                            p.name,
                            p.state,
                            e.now.since(p.started)
                        ));
                    }
                    Some(p.started.saturating_add(settle))
                }
            };
            if let Some(by) = by {
                settles_by = Some(settles_by.map_or(by, |s| s.min(by)));
            }
            if e.tunnels.get(p.tunnel).is_none() {
                return Err(format!("path {k} on a missing tunnel"));
            }
            if let Role::Relay { twin, .. } = p.role {
                let tw = e
                    .paths
                    .get(twin)
                    .ok_or_else(|| format!("relay {k} without its twin"))?;
                if !matches!(tw.role, Role::Relay { twin: back, .. } if back == k) {
                    return Err(format!("relay {k}'s twin {twin} does not point back"));
                }
            }
            if let Some(h) = p.role.handle() {
                e.handles
                    .get(h)
                    .ok_or_else(|| format!("path {k} refers to a released handle {h}"))?;
            }
        }
        if half_open != e.paths.half_open() {
            return Err(format!(
                "half-open count {} but {half_open} half-open paths",
                e.paths.half_open()
            ));
        }
        if waiting != e.waiting_queries {
            return Err(format!(
                "waiting_queries {} but {waiting} queries wait",
                e.waiting_queries
            ));
        }
        for (t, tun) in e.tunnels.iter() {
            let on = carried.get(t).copied().unwrap_or(0);
            if on != tun.paths {
                return Err(format!(
                    "tunnel {t} counts {} paths but carries {on}",
                    tun.paths
                ));
            }
        }
        for (key, h) in e.handles.slab.iter() {
            if e.handles.by_name(&h.name) != Some(key) {
                return Err(format!("handle {} is not indexed by its name", h.name));
            }
            if let Some(k) = h.path {
                let p = e
                    .paths
                    .get(k)
                    .ok_or_else(|| format!("handle {} points at a missing path", h.name))?;
                if p.role.handle() != Some(key) {
                    return Err(format!(
                        "handle {} points at a path of another name",
                        h.name
                    ));
                }
            }
        }
        for ((t, label), k) in e.paths.peer_index() {
            let p = e
                .paths
                .get(*k)
                .ok_or("peer index points at a missing path")?;
            if (p.tunnel, p.peer_label) != (*t, *label) {
                return Err(format!(
                    "peer index ({t}, {label:#x}) disagrees with path {k}"
                ));
            }
        }
        Ok(settles_by)
    }
}
