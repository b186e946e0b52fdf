//! The engine's tables checked against each other, as property tests and fuzz targets do
//! after every step.

use crate::oci::paths::{Role, State};
use crate::Engine;

impl Engine {
    /// Checks that every table agrees with every other and stays within its configured limit:
    /// no index points at nothing and no count drifts. For property tests and fuzzing (which drive engines through arbitrary
    /// inputs and call this after every step); `Err` names the first disagreement.
    pub fn check_tables(&self) -> Result<(), String> {
        let e = self;
        let paths: Vec<(usize, &crate::oci::paths::Path)> = e.paths.iter().collect();
        let limits = &e.cfg.limits;
        if paths.len() > limits.max_paths {
            return Err(format!(
                "{} paths, over the limit of {}",
                paths.len(),
                limits.max_paths
            ));
        }
        let handles = e.handles.iter_by_name().count();
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
        let half_open = paths.iter().filter(|(_, p)| p.half_open()).count();
        if half_open != e.paths.half_open() {
            return Err(format!(
                "half-open count {} but {half_open} half-open paths",
                e.paths.half_open()
            ));
        }
        let waiting: usize = paths.iter().map(|(_, p)| p.queries.len()).sum();
        if waiting != e.waiting_queries {
            return Err(format!(
                "waiting_queries {} but {waiting} queries wait",
                e.waiting_queries
            ));
        }
        let settle = limits.setup_lifetime();
        for (k, p) in &paths {
            // Every setup ends, in a path that is up or in a reported failure, within the
            // time its retransmissions take: none may hang on.
            if p.state != State::Up && e.now.since(p.started) > settle {
                return Err(format!(
                    "path {k} to {} still {:?} after {:?}",
                    p.name,
                    p.state,
                    e.now.since(p.started)
                ));
            }
            let t = e
                .tunnels
                .get(p.tunnel)
                .ok_or(format!("path {k} on a missing tunnel"))?;
            let _ = t;
            if let Role::Relay { twin, .. } = p.role {
                let tw = e
                    .paths
                    .get(twin)
                    .ok_or(format!("relay {k} without its twin"))?;
                if !matches!(tw.role, Role::Relay { twin: back, .. } if back == *k) {
                    return Err(format!("relay {k}'s twin {twin} does not point back"));
                }
            }
            let handle = p.role.handle();
            if let Some(h) = handle {
                e.handles
                    .get(h)
                    .ok_or(format!("path {k} refers to a released handle {h}"))?;
            }
        }
        for (t, tun) in e.tunnels.iter() {
            let on = paths.iter().filter(|(_, p)| p.tunnel == t).count();
            if on != tun.paths {
                return Err(format!(
                    "tunnel {t} counts {} paths but carries {on}",
                    tun.paths
                ));
            }
        }
        for h in e.handles.iter_by_name() {
            if let Some(k) = h.path {
                let p = e
                    .paths
                    .get(k)
                    .ok_or(format!("handle {} points at a missing path", h.name))?;
                let refers = p
                    .role
                    .handle()
                    .and_then(|k| e.handles.get(k))
                    .is_some_and(|x| x.name == h.name);
                if !refers {
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
        Ok(())
    }
}
