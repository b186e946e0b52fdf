//! `[[fleets]]`: many alike hosts from one description, for scenarios of hundreds or
//! thousands of nodes. A fleet `h` of `count` 3 becomes nodes `h1`, `h2`, `h3` at consecutive
//! addresses from `first_ip`, each with the fleet's engine config (every overlay's
//! `local_name` set to the member's name), linked to the same nodes, and running the same
//! apps, where `{next}` in an app's name is the next member (the last one's is the first)
//! and `{i}` the member's number.

use crate::scenario::{AppSpec, LinkSpec, NodeSpec, Scenario};
use ocala_engine::Config;
use serde::Deserialize;
use std::net::IpAddr;

/// One `[[fleets]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSpec {
    /// Members are named this and their number, from 1.
    pub prefix: String,
    pub count: u32,
    /// The first member's address; the others follow it.
    pub first_ip: IpAddr,
    /// The engine config every member gets; without overlays a `udp` one, as for nodes.
    #[serde(default)]
    pub config: Config,
    /// Fill members' address books with every node on the same overlay (off: a member
    /// knows only what `config` says, which keeps a large fleet's configs small).
    #[serde(default)]
    pub auto_address_book: bool,
    /// Nodes every member has a link to, all alike.
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default = "default_latency")]
    pub latency_ms: f64,
    #[serde(default)]
    pub bandwidth_mbps: f64,
    #[serde(default)]
    pub loss: f64,
    /// Apps every member runs, as `[[apps]]` without `node`; member i starts them
    /// `i × stagger_ms` later than `at_ms`. Kept as written until the placeholders in their
    /// names are filled in for each member.
    #[serde(default)]
    pub apps: Vec<toml::Table>,
    #[serde(default)]
    pub stagger_ms: u64,
}

fn default_latency() -> f64 {
    5.0
}

impl FleetSpec {
    /// The fleet's members, links and apps, added to the scenario's own. Errors name the
    /// fleet and the key.
    pub fn expand(&self, index: usize, sc: &mut Scenario) -> Result<(), String> {
        let at = |key: &str| format!("fleets[{index}].{key}");
        let member = |i: u32| format!("{}{}", self.prefix, i);
        let label = format!("{}..{}", member(1), member(self.count));
        for i in 1..=self.count {
            let name = member(i);
            let ip = offset(self.first_ip, u128::from(i - 1)).ok_or_else(|| {
                format!(
                    "{}: {} + {} leaves the family",
                    at("first_ip"),
                    self.first_ip,
                    i - 1
                )
            })?;
            let mut config = self.config.clone();
            for o in config.overlays.iter_mut() {
                o.local_name = name.clone();
            }
            sc.nodes.push(NodeSpec {
                name: name.clone(),
                ip,
                config,
                auto_address_book: self.auto_address_book,
                cert: Default::default(),
                cert_names: Vec::new(),
                delegate: Vec::new(),
                fleet: Some(label.clone()),
            });
            for to in &self.links {
                sc.links.push(LinkSpec {
                    a: name.clone(),
                    b: to.clone(),
                    latency_ms: self.latency_ms,
                    bandwidth_mbps: self.bandwidth_mbps,
                    loss: self.loss,
                    ..LinkSpec::between(&name, to)
                });
            }
            let next = member(i % self.count + 1);
            for (j, app) in self.apps.iter().enumerate() {
                let text = |key: &str| app.get(key).and_then(|v| v.as_str()).unwrap_or_default();
                let template = format!("{label}: {} {}", text("kind"), text("name"));
                let mut app = app.clone();
                if let Some(toml::Value::String(target)) = app.get_mut("name") {
                    *target = target
                        .replace("{next}", &next)
                        .replace("{i}", &i.to_string());
                }
                let mut a = AppSpec::deserialize(toml::Value::Table(app))
                    .map_err(|e| format!("{}: {e}", at(&format!("apps[{j}]"))))?;
                a.fleet = Some(template);
                a.node = name.clone();
                a.at_ms += u64::from(i - 1) * self.stagger_ms;
                sc.apps.push(a);
            }
        }
        Ok(())
    }
}

/// `ip` plus `n`, in the same family.
fn offset(ip: IpAddr, n: u128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => {
            let v = u32::from(a).checked_add(u32::try_from(n).ok()?)?;
            Some(IpAddr::V4(v.into()))
        }
        IpAddr::V6(a) => Some(IpAddr::V6(u128::from(a).checked_add(n)?.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_becomes_named_linked_nodes_with_their_apps() {
        let text = r#"
name = "f"
duration_ms = 1000
[[nodes]]
name = "hub"
ip = "10.0.0.1"
[[fleets]]
prefix = "h"
count = 3
first_ip = "10.1.0.254"
links = ["hub"]
latency_ms = 7
stagger_ms = 5
[[fleets.apps]]
at_ms = 100
kind = "ping"
name = "{next}.udp"
"#;
        let sc = Scenario::parse("f", text).expect("parses");
        let names: Vec<_> = sc
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.ip.to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("hub", "10.0.0.1".to_string()),
                ("h1", "10.1.0.254".into()),
                ("h2", "10.1.0.255".into()),
                ("h3", "10.1.1.0".into())
            ]
        );
        assert_eq!(sc.links.len(), 3);
        assert!(sc.links.iter().all(|l| l.b == "hub" && l.latency_ms == 7.0));
        let apps: Vec<_> = sc
            .apps
            .iter()
            .map(|a| (a.node.as_str(), a.at_ms, a.kind.name().map(String::from)))
            .collect();
        assert_eq!(apps[0], ("h1", 100, Some("h2.udp".into())));
        assert_eq!(apps[2], ("h3", 110, Some("h1.udp".into())));
        let bad = text.replace("10.1.0.254", "255.255.255.254");
        let err = Scenario::parse("f", &bad).expect_err("runs out of addresses");
        assert!(err.contains("fleets[0].first_ip"), "{err}");
        let bad = text.replace("name = \"{next}.udp\"", "name = \"{next}.udp\"\ncuont = 3");
        let err = Scenario::parse("f", &bad).expect_err("an unknown key");
        assert!(
            err.contains("fleets[0].apps[0]") && err.contains("cuont"),
            "{err}"
        );
    }
}
