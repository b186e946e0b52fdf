//! What `ocala trace NAME` needs from the engine: the names to probe, one per hop from the
//! first hop outward (`gw.east`, then `bob.west_gw.east`), each a real path an app could ask
//! for, and what the engine holds for each once it is up — the traceroute of overlay names.
//! The probing itself (asking the DNS sentinel, timing the answers) is the driver's.

use crate::Engine;

/// A probed name's path as the engine holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSummary {
    /// `up`, `connecting (attempt N)`, ...
    pub state: String,
    /// `encrypt`, `auth` or `plain`.
    pub protection: String,
    /// The tunnel the path's first hop is reached over, as its overlay describes it.
    pub tunnel: String,
}

impl Engine {
    /// The names to probe for `name`, first hop first: each adds the next hop towards the
    /// destination, with the name's path-wide option kept. `Err` says why there is nothing
    /// to trace (not an overlay name here, or not a valid one).
    pub fn trace_plan(&self, name: &str) -> Result<Vec<String>, String> {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let rewritten = self.rules.apply(&lower).into_owned();
        let parsed = match self.parse(&rewritten) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(format!("{name} is not an overlay name here")),
            Err(e) => return Err(format!("{name}: {e}")),
        };
        let n = parsed.hops.len();
        Ok((1..=n)
            .map(|k| {
                let mut elements: Vec<String> =
                    parsed.hops[n - k..].iter().map(|h| h.element()).collect();
                if let Some(s) = parsed.security {
                    elements.push(s.element().to_string());
                }
                elements.join("_")
            })
            .collect())
    }

    /// The path this node holds for `name` (as an app would ask for it), if any.
    pub fn path_summary(&self, name: &str) -> Option<PathSummary> {
        let parsed = self.parse(&name.to_ascii_lowercase()).ok()??;
        let h = self.handles.by_name(&self.handle_name_of(&parsed))?;
        let p = self.paths.get(self.handles.get(h)?.path?)?;
        let tunnel = self
            .tunnels
            .get(p.tunnel)
            .and_then(|t| {
                let slot = self.overlays.get(usize::from(t.overlay.0))?;
                Some(format!(
                    "{}: {}",
                    slot.name,
                    slot.module.describe(t.module_ref)
                ))
            })
            .unwrap_or_default();
        Some(PathSummary {
            state: crate::status::state_text(p),
            protection: crate::status::protection_text(p),
            tunnel,
        })
    }
}
