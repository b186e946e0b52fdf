//! Who may use a legacy server gateway, and to reach what. A gateway that leads paths off
//! the overlays into an intranet is a door into it, so nothing passes that a rule does not
//! name: a rule lists clients (by the name their certificate proves) and destinations (by
//! name, name suffix or address range), and a path passes when one rule names both ends.

use crate::config::{ConfigError, Prefix};
use serde::Deserialize;
use std::net::IpAddr;

/// `[[legacy_server.allow]]`: one rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Client names as their certificates prove them (`alice.udp`), `*.corp.i3` for every
    /// name under a suffix, `*` for every authenticated client.
    pub clients: Vec<String>,
    /// Destinations: host names (`web.company1.com`), suffixes (`*.company1.com`), `*`, or
    /// address ranges (`10.1.0.0/16`), checked against the addresses the gateway resolved.
    pub destinations: Vec<String>,
    /// Whether plain paths, whose client name is only claimed, may use the rule too.
    #[serde(default)]
    pub plain: bool,
}

/// A name pattern: everything, every name under a suffix, or one name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    /// `*.company1.com`, kept as `.company1.com`.
    Under(String),
    Exact(String),
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let t = text.trim_end_matches('.').to_ascii_lowercase();
        if t == "*" {
            return Ok(Pattern::Any);
        }
        let (under, name) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, t.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!("'{text}' is not a name, '*.suffix' or '*'"));
        }
        Ok(if under {
            Pattern::Under(format!(".{name}"))
        } else {
            Pattern::Exact(name.to_string())
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Under(suffix) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
            Pattern::Exact(n) => n == name,
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    clients: Vec<Pattern>,
    names: Vec<Pattern>,
    nets: Vec<Prefix>,
    plain: bool,
}

/// The rules of one gateway.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    rules: Vec<Rule>,
}

/// Which of a destination's addresses a client may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// A rule names the destination itself: any address it resolves to.
    Any,
    /// Only addresses in these ranges.
    Within(Vec<Prefix>),
}

impl Scope {
    /// The addresses of `addrs` the scope lets through, in their order.
    pub(crate) fn filter(&self, addrs: &[IpAddr]) -> Vec<IpAddr> {
        addrs
            .iter()
            .copied()
            .filter(|a| match self {
                Scope::Any => true,
                Scope::Within(nets) => nets.iter().any(|n| n.contains(*a)),
            })
            .collect()
    }
}

impl Policy {
    /// Reads the rules, naming the key of the first one that does not parse.
    pub(crate) fn new(rules: &[AllowRule]) -> Result<Policy, ConfigError> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let key = |field: &str, j: usize| format!("legacy_server.allow[{i}].{field}[{j}]");
            let mut clients = Vec::new();
            for (j, c) in r.clients.iter().enumerate() {
                clients
                    .push(Pattern::parse(c).map_err(|e| ConfigError::new(key("clients", j), e))?);
            }
            let (mut names, mut nets) = (Vec::new(), Vec::new());
            for (j, d) in r.destinations.iter().enumerate() {
                if d.contains('/') {
                    nets.push(
                        d.parse::<Prefix>()
                            .map_err(|e| ConfigError::new(key("destinations", j), e))?,
                    );
                } else {
                    names.push(
                        Pattern::parse(d)
                            .map_err(|e| ConfigError::new(key("destinations", j), e))?,
                    );
                }
            }
            if clients.is_empty() || names.len() + nets.len() == 0 {
                return Err(ConfigError::new(
                    format!("legacy_server.allow[{i}]"),
                    "a rule needs at least one client and one destination",
                ));
            }
            out.push(Rule {
                clients,
                names,
                nets,
                plain: r.plain,
            });
        }
        Ok(Policy { rules: out })
    }

    /// Whether `client` (authenticated unless `plain`) may reach `host`, and at which of its
    /// addresses; `Err` says why not, in words the client's app will see.
    pub(crate) fn decide(&self, client: &str, plain: bool, host: &str) -> Result<Scope, String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut theirs = self
            .rules
            .iter()
            .filter(|r| r.clients.iter().any(|p| p.matches(client)))
            .peekable();
        if theirs.peek().is_none() {
            return Err(format!("{client} may not use this gateway"));
        }
        let mut theirs = theirs.filter(|r| r.plain || !plain).peekable();
        if theirs.peek().is_none() {
            return Err(format!(
                "this gateway serves {client} only on authenticated paths"
            ));
        }
        let mut nets = Vec::new();
        for r in theirs {
            if r.names.iter().any(|p| p.matches(&host)) {
                return Ok(Scope::Any);
            }
            nets.extend(r.nets.iter().copied());
        }
        if nets.is_empty() {
            return Err(format!(
                "{client} may not reach {host} through this gateway"
            ));
        }
        Ok(Scope::Within(nets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(clients: &[&str], destinations: &[&str], plain: bool) -> AllowRule {
        AllowRule {
            clients: clients.iter().map(|s| s.to_string()).collect(),
            destinations: destinations.iter().map(|s| s.to_string()).collect(),
            plain,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_passes_without_a_rule() {
        let p = Policy::new(&[]).unwrap();
        let e = p
            .decide("alice.udp", false, "web.company1.com")
            .unwrap_err();
        assert_eq!(e, "alice.udp may not use this gateway");
    }

    #[test]
    fn names_suffixes_and_ranges() {
        let p = Policy::new(&[
            rule(&["alice.udp"], &["*.company1.com"], false),
            rule(&["*.corp.i3"], &["10.1.0.0/16", "ftp.company1.com"], false),
        ])
        .unwrap();
        assert_eq!(
            p.decide("alice.udp", false, "WEB.company1.com."),
            Ok(Scope::Any)
        );
        // A suffix pattern does not match the bare domain, nor a name merely ending alike.
        assert!(p.decide("alice.udp", false, "company1.com").is_err());
        assert!(p.decide("alice.udp", false, "evilcompany1.com").is_err());
        assert_eq!(
            p.decide("alice.udp", false, "cnn.com").unwrap_err(),
            "alice.udp may not reach cnn.com through this gateway"
        );
        assert_eq!(
            p.decide("bob.corp.i3", false, "ftp.company1.com"),
            Ok(Scope::Any)
        );
        let scope = p.decide("bob.corp.i3", false, "db.company1.com").unwrap();
        assert_eq!(
            scope.filter(&[ip("10.2.0.1"), ip("10.1.3.4"), ip("::1")]),
            vec![ip("10.1.3.4")]
        );
        assert!(p.decide("corp.i3", false, "ftp.company1.com").is_err());
    }

    #[test]
    fn plain_paths_need_a_rule_that_says_so() {
        let p = Policy::new(&[
            rule(&["*"], &["*.company1.com"], false),
            rule(&["kiosk.udp"], &["www.company1.com"], true),
        ])
        .unwrap();
        assert_eq!(
            p.decide("anyone.udp", false, "a.company1.com"),
            Ok(Scope::Any)
        );
        assert_eq!(
            p.decide("anyone.udp", true, "a.company1.com").unwrap_err(),
            "this gateway serves anyone.udp only on authenticated paths"
        );
        assert_eq!(
            p.decide("kiosk.udp", true, "www.company1.com"),
            Ok(Scope::Any)
        );
        assert!(p.decide("kiosk.udp", true, "a.company1.com").is_err());
    }

    #[test]
    fn bad_rules_name_their_key() {
        let e = Policy::new(&[rule(&["alice.udp"], &["10.0.0.0/40"], false)]).unwrap_err();
        assert_eq!(e.key, "legacy_server.allow[0].destinations[0]");
        let e = Policy::new(&[rule(&["al ice"], &["*"], false)]).unwrap_err();
        assert_eq!(e.key, "legacy_server.allow[0].clients[0]");
        let e = Policy::new(&[rule(&[], &["*"], false)]).unwrap_err();
        assert_eq!(e.key, "legacy_server.allow[0]");
    }
}
