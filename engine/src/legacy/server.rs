//! The legacy server gateway in the engine: the setup of a path that ends here, the lookup
//! of its destination, and the two rewrites of its packets (see the module docs).

use super::{egress_name, LegacyEnd, WaitingSetup};
use crate::api::{DropReason, OverlayId};
use crate::config::Protection;
use crate::engine::Engine;
use crate::ocd::Peer;
use crate::oci::setup::Failure;
use crate::security::handshake::protection_of;
use crate::wire::message::{Message, RejectReason, Setup};
use std::net::IpAddr;

type Refusal = (DropReason, Failure);

fn refused(text: String) -> Refusal {
    (
        DropReason::Refused,
        Failure::new(RejectReason::Refused, text),
    )
}

impl Engine {
    /// A setup whose last hop leaves the overlays here (`host.ip`): the policy decides
    /// whether the client may go there; the destination is resolved here (the first setup
    /// for a host waits for the lookup and is replayed when it returns); then this node
    /// answers as the path's far end.
    pub(crate) fn legacy_setup(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        known: Option<usize>,
        s: &Setup<'_>,
        handshake: &[u8],
        host: &str,
    ) -> Result<(), Refusal> {
        if !self.cfg.gateway {
            return Err((
                DropReason::NotAGateway,
                Failure::new(RejectReason::NotAGateway, "this node does not relay"),
            ));
        }
        let host = host.to_ascii_lowercase();
        let client = self.initiator_identity(s.return_name);
        let plain = protection_of(s.options) == Protection::Plain;
        let now = self.now;
        let Some(gw) = self.legacy.as_mut() else {
            return Err((
                DropReason::UnknownOverlay,
                Failure::new(
                    RejectReason::UnknownOverlay,
                    "this gateway leads to no legacy hosts",
                ),
            ));
        };
        let scope = gw.policy.decide(&client, plain, &host).map_err(refused)?;
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match gw.cached(&host, now) {
                Some(Ok(addrs)) => addrs.clone(),
                Some(Err(why)) => {
                    return Err((
                        DropReason::Refused,
                        Failure::new(RejectReason::UnknownHost, why.clone()),
                    ))
                }
                None => return self.wait_for_lookup(overlay, from, s, &host),
            },
        };
        let allowed = scope.filter(&addrs);
        if allowed.is_empty() {
            let shown = addrs
                .first()
                .filter(|a| a.to_string() != host)
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            return Err(refused(format!(
                "{host}{shown} is not an address {client} may reach through this gateway"
            )));
        }
        let egress = Egress {
            host: &host,
            end: LegacyEnd::of(&allowed),
        };
        self.accept_setup(overlay, from, known, s, handshake, Some(egress))
    }

    /// The first setup for a host not yet resolved waits (bounded) for the lookup.
    fn wait_for_lookup(
        &mut self,
        overlay: OverlayId,
        from: Peer,
        s: &Setup<'_>,
        host: &str,
    ) -> Result<(), Refusal> {
        let mut message = Vec::new();
        if Message::Setup(*s).encode(&mut message).is_err() {
            return Err((
                DropReason::DatagramMalformed(crate::wire::WireError::BadLength),
                Failure::new(RejectReason::BadName, "setup too long to hold"),
            ));
        }
        let waiting = WaitingSetup {
            overlay,
            from,
            path_id: s.path_id,
            message,
        };
        let Some(gw) = self.legacy.as_mut() else {
            return Ok(());
        };
        match gw.wait(host, waiting) {
            Some(true) => {
                for v6 in [false, true] {
                    let asker = crate::dns::intercept::LookupFor::Legacy {
                        host: host.to_string(),
                        v6,
                    };
                    self.lookup(host, asker);
                }
                Ok(())
            }
            Some(false) => Ok(()),
            // A retransmission of a setup already waiting: the first one will be answered.
            None if gw
                .waiting
                .get(host)
                .is_some_and(|q| q.iter().any(|w| w.path_id == s.path_id)) =>
            {
                Ok(())
            }
            None => Err((
                DropReason::NoResources,
                Failure::new(
                    RejectReason::NoResources,
                    "too many setups wait for lookups at this gateway",
                ),
            )),
        }
    }

    /// One family of a destination's lookup returned; once both have, remember the
    /// addresses and replay the setups that waited.
    pub(crate) fn on_legacy_resolved(&mut self, host: &str, result: Result<Vec<IpAddr>, String>) {
        let now = self.now;
        let Some(gw) = self.legacy.as_mut() else {
            return;
        };
        let Some(result) = gw.half_resolved(host, result) else {
            return;
        };
        let result = result.map_err(|e| format!("{host} does not resolve at the gateway: {e}"));
        gw.remember(host, result, now);
        let waiting = gw.waiting.remove(host).unwrap_or_default();
        for w in waiting {
            let Ok(Message::Setup(s)) = Message::parse(&w.message) else {
                continue;
            };
            // The tunnel it came over may have gone while it waited (and its slot been
            // reused): the module finds the sender's tunnel again, or makes a new one.
            self.on_setup(w.overlay, w.from, None, &s);
        }
    }
}

/// Where a path that ends at a legacy server gateway leads on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Egress<'a> {
    pub(crate) host: &'a str,
    pub(crate) end: LegacyEnd,
}

impl Egress<'_> {
    /// The egress handle's name for a client's handle name.
    pub(crate) fn handle_name(&self, client_name: &str) -> String {
        egress_name(self.host, client_name)
    }
}
