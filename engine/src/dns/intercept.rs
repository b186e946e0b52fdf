//! DNS interception (paper §3.1, DESIGN.md §5). Apps' queries to the sentinel address arrive
//! as TUN packets. Overlay names get a handle — answered once the path is up, TTL 0 so apps
//! ask again rather than cache — and every other name goes to the real resolver unchanged.

use super::message::{
    answer_addresses, answer_empty, answer_error, answer_ptr, build_address_query,
    error_for_header, parse_address_answer, parse_query, ptr_target, set_id, ErrorCode, Query,
    QueryError, EDE_BLOCKED, EDE_INVALID_DATA, EDE_NETWORK_ERROR, EDE_NOT_READY,
    EDE_NO_REACHABLE_AUTHORITY, EDE_OTHER, EDE_PROHIBITED,
};
use crate::api::{DropReason, Event, Output, OverlayId, QueryId, UpstreamError};
use crate::engine::Engine;
use crate::oci::paths::State;
use crate::oci::setup::Failure;
use crate::packet::Packet;
use crate::timers::Timer;
use crate::wire::message::RejectReason;
use crate::wire::rewrite::write_udp_packet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The canary name browsers check before enabling DNS over HTTPS; NXDOMAIN keeps them on
/// the system resolver, and so on us.
const DOH_CANARY: &str = "use-application-dns.net";
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_PTR: u16 = 12;
/// Queries for one path waiting at once; older ones are answered SERVFAIL by the app's retry.
const WAITING_PER_PATH: usize = 16;

/// An app's query waiting for its path to come up.
#[derive(Debug, Clone)]
pub(crate) struct WaitingQuery {
    client: SocketAddr,
    server: SocketAddr,
    query: Query,
}

/// Who is waiting for an upstream answer.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// An app's query for a non-overlay name.
    App {
        client: SocketAddr,
        server: SocketAddr,
        query: Box<Query>,
    },
    /// A host name the engine itself needs the addresses of.
    Lookup { asker: LookupFor, id16: u16 },
}

/// Who asked for a host's addresses, and gets the answer.
#[derive(Debug, Clone)]
pub(crate) enum LookupFor {
    /// An overlay module (a peer's host name), with its token.
    Overlay { overlay: OverlayId, token: u64 },
    /// The legacy server gateway (a path's destination), for one family of its addresses.
    Legacy { host: String, v6: bool },
}

impl Engine {
    /// A DNS message from an app to the sentinel.
    pub(crate) fn on_dns_query(&mut self, client: SocketAddr, server: SocketAddr, bytes: &[u8]) {
        let q = match parse_query(bytes) {
            Ok(q) => q,
            Err(e) => {
                // Only the header was readable: answer with it alone.
                let (id, rd, code) = match e {
                    QueryError::FormErr {
                        id,
                        recursion_desired,
                    } => (id, recursion_desired, ErrorCode::FormErr),
                    QueryError::NotImplemented {
                        id,
                        recursion_desired,
                    } => (id, recursion_desired, ErrorCode::NotImp),
                    QueryError::Unreadable | QueryError::NotQuery => {
                        return self.drop_input(DropReason::DnsUnreadable)
                    }
                };
                return self.reply_dns(client, server, &error_for_header(id, rd, code));
            }
        };
        let lower = q.name.trim_end_matches('.').to_ascii_lowercase();
        if lower == DOH_CANARY {
            let msg = answer_error(
                &q,
                ErrorCode::NxDomain,
                Some((EDE_BLOCKED, "ocala answers DNS here; DNS over HTTPS is off")),
            );
            return self.reply_dns(client, server, &msg);
        }
        if q.qtype == TYPE_PTR {
            if let Some(ip) = ptr_target(&lower) {
                return self.answer_reverse(client, server, &q, bytes, ip);
            }
        }
        let rewritten = self.rules.apply(&lower).into_owned();
        let name = match self.parse(&rewritten) {
            Ok(Some(n)) => n,
            Ok(None) => return self.forward_upstream(client, server, q, bytes),
            Err(e) => {
                let msg = answer_error(
                    &q,
                    ErrorCode::NxDomain,
                    Some((EDE_INVALID_DATA, &e.to_string())),
                );
                return self.reply_dns(client, server, &msg);
            }
        };
        if name.hops.len() > usize::from(self.cfg.limits.max_hops) {
            let text = format!(
                "too many hops: {} > {}",
                name.hops.len(),
                self.cfg.limits.max_hops
            );
            return self.reply_dns(
                client,
                server,
                &answer_error(&q, ErrorCode::NxDomain, Some((EDE_INVALID_DATA, &text))),
            );
        }
        let first = name.first_hop();
        let hop_ok = self
            .overlay_id(&first.overlay)
            .and_then(|o| self.overlays.get(usize::from(o.0)))
            .map(|s| s.module.parse_hop(&first.prefix));
        if let Some(Err(e)) = hop_ok {
            let text = format!("'{}': {e}", first.element());
            return self.reply_dns(
                client,
                server,
                &answer_error(&q, ErrorCode::NxDomain, Some((EDE_INVALID_DATA, &text))),
            );
        }
        if q.qtype != TYPE_A && q.qtype != TYPE_AAAA {
            self.counters.dns_answered += 1;
            return self.reply_dns(client, server, &answer_empty(&q));
        }
        let canonical = self.handle_name_of(&name);
        let Some(handle) = self.bind_handle(&canonical) else {
            self.event(Event::PoolExhausted {
                name: canonical.clone(),
            });
            let msg = answer_error(
                &q,
                ErrorCode::ServFail,
                Some((EDE_OTHER, "handle pool exhausted")),
            );
            return self.reply_dns(client, server, &msg);
        };
        let lan = self.lan_client(client.ip());
        let path = self.handles.get(handle).and_then(|h| h.path_of(lan));
        if let Some(p) = path.filter(|p| self.paths.get(*p).is_some_and(|p| p.state == State::Up)) {
            return self.answer_handle(client, server, &q, handle, p);
        }
        let path = match path {
            Some(p) => p,
            None => match self.start_path(handle, lan) {
                Ok(p) => p,
                Err(f) => {
                    self.release_unused_handle(handle);
                    self.event(Event::SetupFailed {
                        name: canonical.clone(),
                        reason: f.text.clone(),
                    });
                    let msg = failure_answer(&q, &canonical, &f);
                    return self.reply_dns(client, server, &msg);
                }
            },
        };
        if self.waiting_queries >= self.cfg.limits.pending_queries {
            return self.drop_input(DropReason::DnsBusy);
        }
        if let Some(p) = self.paths.get_mut(path) {
            if p.queries.len() >= WAITING_PER_PATH {
                p.queries.remove(0);
                self.waiting_queries -= 1;
            }
            p.queries.push(WaitingQuery {
                client,
                server,
                query: q,
            });
            self.waiting_queries += 1;
        }
    }

    /// PTR for a handle names its overlay name; other pool addresses do not exist; anything
    /// else is the real resolver's business.
    fn answer_reverse(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        q: &Query,
        bytes: &[u8],
        ip: IpAddr,
    ) {
        if let Some(h) = self.handles.by_addr(ip).and_then(|k| self.handles.get(k)) {
            let msg = answer_ptr(q, &h.name, 0);
            self.counters.dns_answered += 1;
            return self.reply_dns(client, server, &msg);
        }
        if self.handles.in_pool(ip) {
            let msg = answer_error(
                q,
                ErrorCode::NxDomain,
                Some((EDE_OTHER, "no overlay name holds this handle")),
            );
            return self.reply_dns(client, server, &msg);
        }
        self.forward_upstream(client, server, q.clone(), bytes);
    }

    /// Answers with a handle once `path` is up for the app (or LAN client) that asked.
    fn answer_handle(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        q: &Query,
        handle: usize,
        path: usize,
    ) {
        let families = self.paths.get(path).map(|p| p.families);
        let Some(h) = self.handles.get_mut(handle) else {
            return;
        };
        h.handed_out = true;
        let v6 = q.qtype == TYPE_AAAA;
        // A far end that takes no packets of this family (a legacy server with IPv4 only):
        // no address, so apps use the family that works instead of one that goes nowhere.
        if families.is_some_and(|f| !f.has(v6)) {
            self.counters.dns_answered += 1;
            return self.reply_dns(client, server, &answer_empty(q));
        }
        let addr = if v6 {
            IpAddr::V6(h.v6)
        } else {
            IpAddr::V4(h.v4)
        };
        let msg = answer_addresses(q, &[addr], 0);
        self.counters.dns_answered += 1;
        self.reply_dns(client, server, &msg);
    }

    /// Answers every query that waited for a path now up.
    pub(crate) fn answer_waiting(&mut self, key: usize) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let queries = std::mem::take(&mut p.queries);
        let handle = match p.role {
            crate::oci::paths::Role::Initiator { handle } => handle,
            _ => return,
        };
        self.waiting_queries -= queries.len().min(self.waiting_queries);
        for w in queries {
            self.answer_handle(w.client, w.server, &w.query, handle, key);
        }
    }

    /// Answers every query that waited for a path that failed: SERVFAIL saying why.
    pub(crate) fn answer_waiting_failed(&mut self, key: usize, failure: &Failure) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let queries = std::mem::take(&mut p.queries);
        let name = p.name.clone();
        self.waiting_queries -= queries.len().min(self.waiting_queries);
        for w in queries {
            let msg = failure_answer(&w.query, &name, failure);
            self.reply_dns(w.client, w.server, &msg);
        }
    }

    fn forward_upstream(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        query: Query,
        bytes: &[u8],
    ) {
        if self.upstream.len() >= self.cfg.limits.upstream_in_flight {
            let msg = answer_error(
                &query,
                ErrorCode::ServFail,
                Some((EDE_OTHER, "too many queries in flight upstream")),
            );
            return self.reply_dns(client, server, &msg);
        }
        let id = self.new_query_id();
        self.upstream.insert(
            id,
            Upstream::App {
                client,
                server,
                query: Box::new(query),
            },
        );
        self.out.push_back(Output::UpstreamDns {
            id,
            query: Packet::from_slice(bytes),
        });
    }

    fn new_query_id(&mut self) -> QueryId {
        let id = QueryId(self.next_query);
        self.next_query += 1;
        let timeout = Duration::from_secs(self.cfg.limits.upstream_timeout_secs);
        self.timers
            .schedule(self.now.saturating_add(timeout), Timer::Upstream(id));
        id
    }

    /// An overlay module wants a host name's addresses.
    /// Looks a host's IPv4 addresses (IPv6 when the asker says so) up through the driver's
    /// resolver, for `asker`.
    pub(crate) fn lookup(&mut self, host: &str, asker: LookupFor) {
        let v6 = matches!(asker, LookupFor::Legacy { v6: true, .. });
        if self.upstream.len() >= self.cfg.limits.upstream_in_flight {
            return self.lookup_done(asker, Err("too many lookups in flight".into()));
        }
        let id16 = self.rng.next_u64() as u16;
        match build_address_query(id16, host, v6) {
            Ok(query) => {
                let id = self.new_query_id();
                self.upstream.insert(id, Upstream::Lookup { asker, id16 });
                self.out.push_back(Output::UpstreamDns {
                    id,
                    query: Packet::from_slice(&query),
                });
            }
            Err(e) => self.lookup_done(asker, Err(format!("cannot look up '{host}': {e}"))),
        }
    }

    fn lookup_done(&mut self, asker: LookupFor, result: Result<Vec<std::net::IpAddr>, String>) {
        match asker {
            LookupFor::Overlay { overlay, token } => {
                let now = self.now;
                if let Some(m) = self.module(overlay) {
                    m.resolved(now, token, result);
                }
                self.drain_overlay(overlay);
            }
            LookupFor::Legacy { host, .. } => self.on_legacy_resolved(&host, result),
        }
    }

    pub(crate) fn on_resolved(&mut self, id: QueryId, result: Result<&[u8], UpstreamError>) {
        let Some(waiting) = self.upstream.remove(&id) else {
            return self.drop_input(DropReason::UnknownQuery);
        };
        match (waiting, result) {
            (
                Upstream::App {
                    client,
                    server,
                    query,
                },
                Ok(answer),
            ) => {
                let mut answer = answer.to_vec();
                if !set_id(&mut answer, query.id) {
                    let msg = answer_error(
                        &query,
                        ErrorCode::ServFail,
                        Some((EDE_NETWORK_ERROR, "upstream answer unreadable")),
                    );
                    return self.reply_dns(client, server, &msg);
                }
                self.reply_dns(client, server, &answer);
            }
            (
                Upstream::App {
                    client,
                    server,
                    query,
                },
                Err(e),
            ) => {
                let text = match e {
                    UpstreamError::Timeout => "upstream resolver did not answer",
                    UpstreamError::Unreachable => "no upstream resolver reachable",
                };
                let msg = answer_error(
                    &query,
                    ErrorCode::ServFail,
                    Some((EDE_NO_REACHABLE_AUTHORITY, text)),
                );
                self.reply_dns(client, server, &msg);
            }
            (Upstream::Lookup { asker, id16 }, result) => {
                let result = match result {
                    Ok(answer) => parse_address_answer(answer, id16).map_err(|e| e.to_string()),
                    Err(_) => Err("upstream resolver did not answer".to_string()),
                };
                self.lookup_done(asker, result);
            }
        }
    }

    pub(crate) fn on_upstream_timeout(&mut self, id: QueryId) {
        if self.upstream.contains_key(&id) {
            self.on_resolved(id, Err(UpstreamError::Timeout));
        }
    }

    /// Sends a DNS message back to an app, from the sentinel it asked.
    fn reply_dns(&mut self, client: SocketAddr, server: SocketAddr, msg: &[u8]) {
        let mut packet = Vec::with_capacity(msg.len() + 48);
        if write_udp_packet(&mut packet, server, client, msg).is_ok() {
            self.counters.tun_out += 1;
            self.deliveries.push_back(Packet::from_vec(packet));
        }
    }
}

/// SERVFAIL with an Extended DNS Error that says why the path could not be set up.
fn failure_answer(q: &Query, name: &str, f: &Failure) -> Vec<u8> {
    let code = match f.reason {
        RejectReason::NotAGateway | RejectReason::Refused => EDE_PROHIBITED,
        RejectReason::NoResources => EDE_NOT_READY,
        RejectReason::Unreachable | RejectReason::UnknownHost => EDE_NO_REACHABLE_AUTHORITY,
        RejectReason::BadName | RejectReason::HopLimit | RejectReason::Loop => EDE_INVALID_DATA,
        _ => EDE_OTHER,
    };
    let text = format!("path to {name} failed: {}", f.text);
    answer_error(q, ErrorCode::ServFail, Some((code, &text)))
}
