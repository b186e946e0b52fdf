//! `ocala resolve NAME`: how a name parses and which path it would take, in words, so a user
//! can see why a name does what it does without sending a packet.

use crate::engine::Engine;
use crate::oci::paths::State;
use crate::oci::setup::remaining_hops;
use std::fmt::Write;

impl Engine {
    /// A readable account of what this node would do with `name`.
    pub fn explain(&self, name: &str) -> String {
        let mut out = String::new();
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        let _ = writeln!(out, "name:        {name}");
        let rewritten = self.rules.apply(&lower).into_owned();
        if rewritten != lower {
            let _ = writeln!(out, "after rules: {rewritten}");
        }
        let parsed = match self.parse(&rewritten) {
            Ok(Some(p)) => p,
            Ok(None) => {
                let _ = writeln!(
                    out,
                    "not an overlay name here: relayed to the upstream resolver unchanged"
                );
                return out;
            }
            Err(e) => {
                let _ = writeln!(out, "invalid: {e} (apps get NXDOMAIN saying so)");
                return out;
            }
        };
        let _ = writeln!(out, "hops, destination first:");
        for (i, h) in parsed.hops.iter().enumerate() {
            let role = if i == 0 {
                "destination"
            } else if i + 1 == parsed.hops.len() {
                "first hop"
            } else {
                "gateway"
            };
            let _ = writeln!(
                out,
                "  {:<12} {} over overlay '{}'",
                role, h.prefix, h.overlay
            );
        }
        let first = parsed.first_hop();
        match self
            .overlay_id(&first.overlay)
            .and_then(|o| self.overlays.get(usize::from(o.0)))
        {
            Some(slot) => match slot.module.parse_hop(&first.prefix) {
                Ok(hop) => {
                    let _ = write!(
                        out,
                        "first tunnel: overlay '{}', host '{}'",
                        slot.name, hop.host
                    );
                    if !hop.options.is_empty() {
                        let _ = write!(out, ", options {}", hop.options.join(","));
                    }
                    let _ = writeln!(out);
                }
                Err(e) => {
                    let _ = writeln!(out, "first tunnel: invalid hop '{}': {e}", first.element());
                }
            },
            None => {
                let _ = writeln!(
                    out,
                    "first tunnel: overlay '{}' is not configured",
                    first.overlay
                );
            }
        }
        let rest = remaining_hops(&parsed);
        if !rest.is_empty() {
            let _ = writeln!(out, "the gateway then sets up: {rest}");
        }
        if let Some(s) = parsed.security {
            let _ = writeln!(out, "options:     {}", s.element());
        }
        match self
            .handles
            .by_name(&self.handle_name_of(&parsed))
            .and_then(|k| self.handles.get(k))
        {
            Some(h) => {
                let state = match h.path.and_then(|p| self.paths.get(p)) {
                    Some(p) if p.state == State::Up => format!("path up (label {:#x})", p.label),
                    Some(_) => "path coming up".to_string(),
                    None => "no path; the next packet sets one up".to_string(),
                };
                let _ = writeln!(out, "handle:      {} and {}, {state}", h.v4, h.v6);
            }
            None => {
                let _ = writeln!(out, "handle:      none yet; a lookup binds one");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, OverlayConfig, RuleConfig};
    use crate::{Engine, Instant};

    fn engine() -> Engine {
        let cfg = Config {
            overlays: vec![OverlayConfig {
                name: "east".into(),
                module: "udp".into(),
                local_name: "alice".into(),
                port: 4789,
                keepalive_secs: 25,
                address_book: Default::default(),
                i3: Default::default(),
                ron: Default::default(),
            }],
            rules: vec![RuleConfig {
                pattern: r"^(.*)\.corp$".into(),
                replace: "${1}.west_gw.east".into(),
            }],
            ..Config::default()
        };
        Engine::new(cfg, [0; 32], Instant::ZERO).unwrap()
    }

    #[test]
    fn explains_rules_hops_and_gateways() {
        let text = engine().explain("Bob.corp");
        assert!(text.contains("after rules: bob.west_gw.east"), "{text}");
        assert!(
            text.contains("destination  bob over overlay 'west'"),
            "{text}"
        );
        assert!(
            text.contains("first hop    gw over overlay 'east'"),
            "{text}"
        );
        assert!(
            text.contains("the gateway then sets up: bob.west"),
            "{text}"
        );
        assert!(text.contains("handle:      none yet"), "{text}");
    }

    #[test]
    fn explains_plain_and_invalid_names() {
        assert!(engine()
            .explain("www.example.com")
            .contains("upstream resolver"));
        assert!(engine()
            .explain("bob.east_fast.oci")
            .contains("invalid: unknown option"));
    }
}
