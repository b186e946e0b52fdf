//! The server role's packet handling: DATA matched against the trigger table and passed on,
//! and the insert, remove and ping requests hosts send. The table itself is `server.rs`.

use super::id::Id;
use super::server::Target;
use super::wire::{self, I3Packet, Stack, FLAG_DELIVERED, FLAG_SHORTCUT};
use super::I3Overlay;
use crate::ocd::{OverlayDrop, Received};
use crate::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

impl I3Overlay {
    /// The server side of a DATA packet from `from`: match its top id and pass it on.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        from: SocketAddr,
        flags: u8,
        mut stack: Stack,
        return_id: Option<Id>,
        payload: &[u8],
    ) -> Received<'static> {
        let Some(me) = self.serving.as_ref().map(|(me, _)| *me) else {
            return Received::Dropped(OverlayDrop::NotAServer);
        };
        for round in 0..wire::MAX_STACK {
            let hit = stack.first().and_then(|top| {
                let (_, triggers) = self.serving.as_ref()?;
                let (matched, target) = triggers.matching(now, top)?;
                Some((*top, matched, target.clone()))
            });
            let Some((asked, matched, target)) = hit else {
                return Received::Dropped(OverlayDrop::NoTrigger);
            };
            match target {
                Target::Addr(to) => {
                    // Shortcut information goes only to the host that sent to this very
                    // trigger: never past a trigger that imposes an id stack (a middlebox the
                    // receiver requires), and never to another server.
                    if flags & FLAG_SHORTCUT != 0 && round == 0 && !self.servers.contains(&from) {
                        self.transmit(
                            from,
                            &I3Packet::Shortcut {
                                id: asked,
                                addr: to,
                            },
                        );
                    }
                    stack[0] = matched;
                    let p = I3Packet::Data {
                        flags: flags | FLAG_DELIVERED,
                        stack,
                        return_id,
                        payload,
                    };
                    self.transmit(to, &p);
                    return Received::Consumed;
                }
                Target::Stack(ids) => {
                    let rest = stack.get(1..).unwrap_or(&[]);
                    if ids.len() + rest.len() > wire::MAX_STACK {
                        return Received::Dropped(OverlayDrop::StackTooDeep);
                    }
                    let next: Stack = ids.iter().chain(rest).copied().collect();
                    let Some(to) = next.first().and_then(|id| self.servers.responsible(id)) else {
                        return Received::Dropped(OverlayDrop::NoServer);
                    };
                    stack = next;
                    if to != me {
                        let p = I3Packet::Data {
                            flags,
                            stack,
                            return_id,
                            payload,
                        };
                        self.transmit(to, &p);
                        return Received::Consumed;
                    }
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
