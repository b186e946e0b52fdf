//! What the simulator checks after every step, besides each engine's own tables
//! (`Engine::check_tables`: consistent, within the configured limits, no setup left hanging):
//! what the apps and the wire show.
//!
//! - No packet reaches the wrong app or the wrong host: every probe carries a tag naming its
//!   app, so the host that answers it must be the one that answered the app before, and the
//!   reply must reach that app from the address the app sent to.
//! - No plaintext on the wire for an encrypted path: a tag of an app whose name asks for
//!   encryption (by option or by the node's default) must never be seen in a datagram.
//! - Every DNS answer for an overlay name lies in the node's pool (or is what the upstream
//!   resolver holds for the name).
//! - A handle keeps its name: an address an app learned for a name is never bound to another
//!   name while the app may still use it, restarts included.
//!
//! A violation fails the run; the first one per node or app is kept.

use super::{Sim, Stack};
use crate::resolver::Answer;
use ocala_engine::config::{Config, Protection};
use ocala_engine::dns::{parse_name, Rules, Security};
use ocala_engine::Instant;
use std::net::IpAddr;
use std::time::Duration;

/// The start of every tag: bytes no packet header of ours produces by chance.
const MAGIC: [u8; 8] = [0xd1, b'O', b'C', b'A', b'L', b'A', 0xa7, 0x5c];
/// A tag: [`MAGIC`], the app's index and the request's sequence number.
pub(crate) const TAG_LEN: usize = 16;

/// The tag an app's request `seq` carries in its payload.
pub(crate) fn tag(app: usize, seq: u32) -> [u8; TAG_LEN] {
    let mut t = [0u8; TAG_LEN];
    t[..8].copy_from_slice(&MAGIC);
    t[8..12].copy_from_slice(&(app as u32).to_be_bytes());
    t[12..].copy_from_slice(&seq.to_be_bytes());
    t
}

/// The app a tag in `bytes` names, if there is one.
pub(crate) fn find_tag(bytes: &[u8]) -> Option<usize> {
    // Built once: every datagram on every link is searched.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(&MAGIC));
    let at = FINDER.find(bytes)?;
    let app = bytes.get(at + 8..at + 12)?;
    Some(u32::from_be_bytes([app[0], app[1], app[2], app[3]]) as usize)
}

/// Whether an app on a node with `cfg` asks for encryption end to end by looking up `name`:
/// the name's option after the node's rules, else the node's default. Names that are not
/// overlay names ask for nothing.
pub(crate) fn asks_for_encryption(cfg: &Config, name: &str) -> bool {
    let pairs: Vec<(String, String)> = cfg
        .rules
        .iter()
        .map(|r| (r.pattern.clone(), r.replace.clone()))
        .collect();
    let Ok(rules) = Rules::new(&pairs) else {
        return false;
    };
    let name = rules.apply(name);
    let known = |suffix: &str| cfg.overlays.iter().any(|o| o.name == suffix);
    match parse_name(&name, known) {
        Ok(Some(n)) => match n.security {
            Some(s) => s == Security::Encrypt,
            None => cfg.security.default == Protection::Encrypt,
        },
        _ => false,
    }
}

/// An address a node's app learned for a name, and when an app last used it.
#[derive(Debug, Clone)]
pub(crate) struct Learned {
    pub(crate) name: String,
    pub(crate) used: Instant,
}

impl Sim {
    /// Records a broken invariant about `subject` (a node or an app); the first per subject.
    pub(super) fn violate(&mut self, subject: &str, why: String) {
        let prefix = format!("{subject}: ");
        if !self.violations.iter().any(|v| v.starts_with(&prefix)) {
            self.violations
                .push(format!("{prefix}invariant broken at {}: {why}", self.now));
        }
    }

    /// After every step of a node: its tables, and the names its handles are bound to.
    pub(super) fn check(&mut self, node: usize) {
        self.checks += 1;
        let n = &mut self.nodes[node];
        if let Err(why) = n.engine.check_tables_since(&mut n.checked) {
            let name = self.nodes[node].name.clone();
            self.violate(&name, why);
        }
        let version = self.nodes[node].engine.handles_version();
        if self.nodes[node].seen_version != version {
            self.nodes[node].seen_version = version;
            self.check_bindings(node);
        }
    }

    /// No address an app may still use is bound to a name other than the one it learned.
    fn check_bindings(&mut self, node: usize) {
        let n = &self.nodes[node];
        let idle = Duration::from_secs(n.cfg.handles.idle_timeout_secs);
        let mut broken = None;
        for b in n.engine.handle_bindings() {
            for addr in [IpAddr::V4(b.v4), IpAddr::V6(b.v6)] {
                if let Some(l) = n.learned.get(&addr) {
                    if l.name != b.name && self.now.since(l.used) < idle {
                        broken = Some(format!(
                            "{addr}, which apps use for {}, is bound to {}",
                            l.name, b.name
                        ));
                    }
                }
            }
        }
        if let Some(why) = broken {
            let name = n.name.clone();
            self.violate(&name, why);
        }
    }

    /// An app used the address it learned (it sent to it).
    pub(super) fn used(&mut self, app: usize, target: IpAddr) {
        let (node, now) = (self.apps[app].node, self.now);
        if let Some(l) = self.nodes[node].learned.get_mut(&target) {
            l.used = now;
        }
    }

    /// A DNS answer reached an app: its addresses lie in the pool (or are the upstream
    /// resolver's), and each handle address is bound to one name for as long as it is used.
    pub(super) fn check_answer(&mut self, app: usize, answer: &Answer) {
        let node = self.apps[app].node;
        let name = self.apps[app]
            .name()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let handles = &self.nodes[node].cfg.handles;
        let (pool_v4, pool_v6) = (handles.pool_v4, handles.pool_v6);
        let upstream = self.sc.dns.get(&name).copied();
        let subject = format!("app {app} ({name})");
        for &addr in &answer.addrs {
            if !pool_v4.contains(addr) && !pool_v6.contains(addr) {
                if upstream != Some(addr) {
                    self.violate(&subject, format!("answered {addr}, outside the pools"));
                }
                continue;
            }
            let bound = self.nodes[node]
                .engine
                .handle_bindings()
                .into_iter()
                .find(|b| IpAddr::V4(b.v4) == addr || IpAddr::V6(b.v6) == addr);
            let Some(bound) = bound else {
                self.violate(&subject, format!("answered {addr}, bound to no name"));
                continue;
            };
            let now = self.now;
            let learned = self.nodes[node]
                .learned
                .entry(addr)
                .or_insert_with(|| Learned {
                    name: bound.name.clone(),
                    used: now,
                });
            learned.used = now;
            if learned.name != bound.name {
                let why = format!(
                    "answered {addr} for {}, learned for {}",
                    bound.name, learned.name
                );
                learned.name = bound.name;
                self.violate(&subject, why);
            }
        }
    }

    /// A datagram put on a link: it must not carry in clear a request of an app that asked
    /// for encryption.
    pub(super) fn check_wire(&mut self, node: usize, payload: &[u8]) {
        let Some(app) = find_tag(payload) else {
            return;
        };
        if self.apps.get(app).is_some_and(|a| a.secret) {
            let name = self.apps[app].name().unwrap_or_default().to_string();
            let from = self.nodes[node].name.clone();
            self.violate(
                &format!("app {app} ({name})"),
                format!("its request crossed the wire in clear from {from}"),
            );
        }
    }

    /// A host's stack answers an app's request: the same host as every time before.
    pub(super) fn check_answered(&mut self, host: Stack, request: &[u8]) {
        let Some(app) = find_tag(request).filter(|a| *a < self.apps.len()) else {
            return;
        };
        match self.apps[app].answered_by {
            None => self.apps[app].answered_by = Some(host),
            Some(before) if before != host => {
                let (was, now) = (self.host_name(before), self.host_name(host));
                let name = self.apps[app].name().unwrap_or_default().to_string();
                self.violate(
                    &format!("app {app} ({name})"),
                    format!("its request reached {now}; earlier ones reached {was}"),
                );
            }
            Some(_) => {}
        }
    }

    /// A reply reached `app`: it answers that app's request, from the address it sent to.
    pub(super) fn check_reply(&mut self, app: usize, reply: &[u8]) {
        let src = ocala_engine::wire::ip::IpView::parse(reply).map(|ip| ip.src());
        let target = match self.apps[app].phase {
            crate::apps::Phase::Talking { target, .. } => Some(target),
            _ => None,
        };
        let owner = find_tag(reply);
        let why = if owner.is_some_and(|o| o != app) {
            format!("got the reply to app {}'s request", owner.unwrap_or(app))
        } else if target.is_some() && src.ok() != target {
            format!("got a reply from {src:?} after sending to {target:?}")
        } else {
            return;
        };
        let name = self.apps[app].name().unwrap_or_default().to_string();
        self.violate(&format!("app {app} ({name})"), why);
    }

    fn host_name(&self, host: Stack) -> String {
        match host {
            Stack::Node(n) => self.nodes[n].name.clone(),
            Stack::Legacy(h) => self.legacy[h].name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    /// alice pings bob and, later, looks up carol; `extra` adds apps or faults.
    fn sim(extra: &str) -> Sim {
        sim_with(extra, |t| t)
    }

    /// The same, its text changed by `edit`.
    fn sim_with(extra: &str, edit: impl Fn(String) -> String) -> Sim {
        let text = format!(
            r#"
name = "t"
duration_ms = 4000
[[nodes]]
name = "alice"
ip = "10.0.0.1"
[[nodes]]
name = "bob"
ip = "10.0.0.2"
[[nodes]]
name = "carol"
ip = "10.0.0.3"
[[links]]
a = "alice"
b = "bob"
[[links]]
a = "alice"
b = "carol"
[[apps]]
node = "alice"
at_ms = 10
kind = "ping"
name = "bob.udp"
count = 30
interval_ms = 100
[[apps]]
node = "alice"
at_ms = 2000
kind = "ping"
name = "carol.udp"
count = 3
{extra}
"#
        );
        let text = edit(text);
        Sim::new(Scenario::parse("t", &text).expect("parses"), None).expect("builds")
    }

    fn broken(sim: Sim, what: &str) -> bool {
        sim.run().violations.iter().any(|v| v.contains(what))
    }

    #[test]
    fn the_runs_here_keep_every_invariant() {
        assert!(sim("").run().violations.is_empty());
        let restart = "[[faults]]\nat_ms = 1000\nkind = \"restart\"\nnode = \"alice\"\n";
        assert!(sim(restart).run().violations.is_empty());
    }

    #[test]
    fn a_restart_that_forgets_its_handles_gives_an_app_s_address_to_another_name() {
        // bob's address was checkpointed; without the checkpoint carol gets it while the
        // app still pings it.
        let lost =
            "[[faults]]\nat_ms = 1000\nkind = \"restart\"\nnode = \"alice\"\nforget = true\n";
        assert!(broken(
            sim(lost),
            "which apps use for bob.udp, is bound to carol.udp"
        ));
    }

    #[test]
    fn plaintext_of_an_app_that_asked_for_encryption_is_seen_on_the_wire() {
        // Every node plain by default, and taking plain paths.
        let plain = |t: String| {
            t.replace(
                "\"\n[[nodes]]",
                "\"\n[nodes.config.security]\ndefault = \"plain\"\naccept_plain = true\n[[nodes]]",
            )
        };
        let mut s = sim_with("", plain);
        assert_eq!(
            s.apps.iter().filter(|a| a.secret).count(),
            0,
            "nothing secret"
        );
        s.apps[0].secret = true;
        assert!(broken(s, "crossed the wire in clear from alice"));
    }

    #[test]
    fn a_request_at_another_host_or_a_stray_reply_or_a_foreign_answer_is_caught() {
        let mut s = sim("");
        let mut request = vec![0u8; 20];
        request.extend_from_slice(&tag(0, 1));
        s.check_answered(Stack::Node(1), &request);
        s.check_answered(Stack::Node(1), &request);
        assert!(s.violations.is_empty(), "the same host twice is fine");
        s.check_answered(Stack::Node(2), &request);
        assert!(s.violations[0].contains("reached carol; earlier ones reached bob"));

        let mut s = sim("");
        let reply = crate::hoststack::echo(
            "198.18.0.3".parse().unwrap(),
            "198.18.0.1".parse().unwrap(),
            false,
            40001,
            1,
            &tag(0, 1),
        );
        s.check_reply(1, &reply);
        assert!(s.violations[0].contains("got the reply to app 0's request"));

        let mut s = sim("");
        let answer = Answer {
            rcode: "NOERROR".into(),
            addrs: vec!["192.0.2.7".parse().unwrap()],
            names: Vec::new(),
            ede: None,
        };
        s.check_answer(0, &answer);
        assert!(s.violations[0].contains("answered 192.0.2.7, outside the pools"));
    }

    #[test]
    fn a_tag_is_found_anywhere_and_names_its_app() {
        let mut bytes = vec![0x61; 40];
        bytes.extend_from_slice(&tag(7, 3));
        bytes.extend_from_slice(&[0x62; 9]);
        assert_eq!(find_tag(&bytes), Some(7));
        assert_eq!(find_tag(&bytes[..45]), None, "a cut tag names no app");
        assert_eq!(find_tag(&[0x61; 64]), None);
    }

    #[test]
    fn encryption_is_asked_by_option_rule_or_default() {
        let mut cfg = Config::default();
        cfg.overlays
            .push(crate::scenario::udp_overlay("udp", "alice"));
        assert!(asks_for_encryption(&cfg, "bob.udp"));
        assert!(!asks_for_encryption(&cfg, "bob.udp_plain.oci"));
        assert!(!asks_for_encryption(&cfg, "bob.udp_auth.oci"));
        assert!(!asks_for_encryption(&cfg, "example.com"));
        cfg.security.default = Protection::Plain;
        assert!(!asks_for_encryption(&cfg, "bob.udp"));
        assert!(asks_for_encryption(&cfg, "bob.udp_encrypt.oci"));
        cfg.rules.push(ocala_engine::config::RuleConfig {
            pattern: r"^(.*)\.corp$".into(),
            replace: "$1.udp_encrypt.oci".into(),
        });
        assert!(asks_for_encryption(&cfg, "files.corp"));
    }
}
