//! The server role's packet handling: DATA matched against the trigger table and passed on,
//! and the insert, remove and ping requests hosts send. The table itself is `server.rs`.

use super::server::Target;
use super::wire::{self, DataView, I3Packet, Stack, FLAG_DELIVERED, FLAG_SHORTCUT};
use super::I3Overlay;
use crate::ocd::{OverlayDrop, Received};
use crate::packet::PacketPool;
use crate::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

impl I3Overlay {
    /// The server side of a DATA packet from `from`: match its top id and pass it on. The
    /// common case, a trigger that points at an address, copies the datagram into a pooled
    /// buffer and rewrites its flags and top id there; a trigger that replaces the top id by
    /// a stack re-encodes the packet.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        from: SocketAddr,
        v: &DataView<'_>,
        pool: &mut PacketPool,
    ) -> Received<'static> {
        let Some(me) = self.serving.as_ref().map(|(me, _)| *me) else {
            return Received::Dropped(OverlayDrop::NotAServer);
        };
        // `None` while the packet's own stack is untouched.
        let mut stack: Option<Stack> = None;
        for round in 0..wire::MAX_STACK {
            let asked = match &stack {
                None => v.top,
                Some(s) => match s.first() {
                    Some(top) => *top,
                    None => return Received::Dropped(OverlayDrop::NoTrigger),
                },
            };
            let hit = self.serving.as_ref().and_then(|(_, triggers)| {
                let (matched, target) = triggers.matching(now, &asked)?;
                Some((matched, target.clone()))
            });
            let Some((matched, target)) = hit else {
                return Received::Dropped(OverlayDrop::NoTrigger);
            };
            match target {
                Target::Addr(to) => {
                    // Shortcut information goes only to the host that sent to this very
                    // trigger: never past a trigger that imposes an id stack (a middlebox the
                    // receiver requires), and never to another server.
                    if v.flags & FLAG_SHORTCUT != 0 && round == 0 && !self.servers.contains(&from) {
                        let shortcut = I3Packet::Shortcut {
                            id: asked,
                            addr: to,
                        };
                        self.transmit(from, &shortcut);
                    }
                    let mut buf = pool.take();
                    let flags = v.flags | FLAG_DELIVERED;
                    match stack {
                        None => {
                            buf.extend_from_slice(v.raw);
                            wire::rewrite_top(&mut buf, flags, &matched);
                            self.transmit_buf(to, buf);
                        }
                        Some(mut s) => {
                            s[0] = matched;
                            let p = I3Packet::Data {
                                flags,
                                stack: s,
                                return_id: v.return_id,
                                payload: v.payload,
                            };
                            self.transmit_in(to, &p, buf);
                        }
                    }
                    return Received::Consumed;
                }
                Target::Stack(ids) => {
                    let next: Stack = match stack.take() {
                        None if ids.len() + v.below().count() <= wire::MAX_STACK => {
                            ids.iter().copied().chain(v.below()).collect()
                        }
                        Some(s) if ids.len() + s.len() - 1 <= wire::MAX_STACK => {
                            ids.iter().chain(s.iter().skip(1)).copied().collect()
                        }
                        _ => return Received::Dropped(OverlayDrop::StackTooDeep),
                    };
                    let Some(to) = next.first().and_then(|id| self.servers.responsible(id)) else {
                        return Received::Dropped(OverlayDrop::NoServer);
                    };
                    if to != me {
                        let p = I3Packet::Data {
                            flags: v.flags,
                            stack: next,
                            return_id: v.return_id,
                            payload: v.payload,
                        };
                        self.transmit_in(to, &p, pool.take());
                        return Received::Consumed;
                    }
                    stack = Some(next);
                }
            }
        }
        Received::Dropped(OverlayDrop::StackTooDeep)
    }

    /// Insert, remove and ping requests to the server role.
    pub(super) fn serve(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: I3Packet<'_>,
    ) -> Received<'static> {
        let Some((_, triggers)) = self.serving.as_mut() else {
            return Received::Dropped(OverlayDrop::NotAServer);
        };
        let reply = match p {
            I3Packet::Insert {
                lifetime_secs,
                key,
                id,
                target,
            } => {
                let target = if target.is_empty() {
                    Target::Addr(from)
                } else {
                    Target::Stack(target)
                };
                let asked = Duration::from_secs(u64::from(lifetime_secs));
                match triggers.insert(now, id, key, target, asked) {
                    Ok(granted) => I3Packet::Ack {
                        lifetime_secs: granted.as_secs() as u16,
                        id,
                        observed: from,
                    },
                    Err(reason) => I3Packet::Refused { id, reason },
                }
            }
            I3Packet::Remove { key, id } => {
                triggers.remove(&id, &key);
                return Received::Consumed;
            }
            I3Packet::Ping { nonce } => I3Packet::Pong {
                nonce,
                observed: from,
            },
            _ => return Received::Dropped(OverlayDrop::NotAServer),
        };
        self.transmit(from, &reply);
        Received::Consumed
    }
}
