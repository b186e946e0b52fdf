//! The data path (paper §3.1.2, §3.2.1): packets from apps to their handle's path, datagrams
//! from peers to apps or — on a gateway — on to the next hop with the label swapped. Nothing
//! here allocates once the packet pool is warm.

use crate::api::{DropReason, InPlace, OverlayId};
use crate::codel::SIGNALLED_LEN;
use crate::engine::{stage_datagram, Engine};
use crate::ocd::{Peer, Received};
use crate::oci::paths::{Role, State};
use crate::packet::Packet;
use crate::security::noise::TAG_LEN;
use crate::security::session::NONCE_LEN;
use crate::wire::checksum::PartialChecksum;
use crate::wire::ecn::{ecn_of, set_ecn, Ecn};
use crate::wire::ip::{IpView, PROTO_UDP};
use crate::wire::message::{self, Close, CloseReason, Message, DATA_HEADER_LEN};
use crate::wire::rewrite::{rewrite_parsed, write_icmp_too_big};
use crate::wire::transport::UdpView;
use crate::wire::WireError;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

/// Data payloads a responder holds while it waits for the initiator's confirm.
const EARLY_DATA: usize = 8;

/// How a datagram arrived, besides its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// How long it waited in the socket's receive queue.
    pub(crate) queued: Duration,
    /// The ECN field of its IP header.
    pub(crate) ecn: Ecn,
}

/// A data message as it arrived, in the datagram the driver lent.
struct Data<'a> {
    /// The path's label at this node.
    label: u32,
    /// The datagram's payload, lent mutably for a plain path's packet to be delivered from.
    lent: &'a mut [u8],
    /// Which datagram of the batch it is ([`InPlace::datagram`]).
    index: usize,
    /// Where the whole message lies in `lent`, for relaying.
    datagram: Range<usize>,
    /// Where its payload lies: the (sealed, on a secure path) inner packet.
    inner: Range<usize>,
    /// Its outer ECN field.
    ecn: Ecn,
    /// Whether this node's receive queue signals congestion on it.
    congested: bool,
}

impl Engine {
    /// An IP packet written by a local app, its transport checksum `partial` where the
    /// kernel left it so.
    pub(crate) fn on_tun_packet(&mut self, packet: &[u8], partial: Option<PartialChecksum>) {
        self.counters.tun_in += 1;
        if packet.len() > self.cfg.limits.max_packet {
            return self.drop_input(DropReason::Oversized);
        }
        // Read where `parse` wrote it, not moved out of the `Result` first: a wide copy of its
        // fresh narrow stores stalls the CPU.
        let parsed = IpView::parse(packet);
        let ip = match &parsed {
            Ok(ip) => ip,
            Err(e) => return self.drop_input(DropReason::TunMalformed(*e)),
        };
        if partial.is_some_and(|c| !c.fits(packet.len())) {
            return self.drop_input(DropReason::TunMalformed(WireError::Truncated));
        }
        let handle = match ip.dst_v4() {
            Some(v4) if v4 != self.cfg.handles.dns_v4 => self.handles.by_v4(v4),
            _ if self.is_sentinel(ip.dst()) => return self.on_sentinel_packet(ip),
            _ => self.handles.by_addr(ip.dst()),
        };
        let Some(handle) = handle else {
            let reason = if self.handles.in_pool(ip.dst()) {
                DropReason::NoHandle
            } else {
                DropReason::NotOurs
            };
            return self.drop_input(reason);
        };
        let now = self.now;
        let client = self.lan_client(ip.src());
        let (path, legacy) = match self.handles.get_mut(handle) {
            Some(h) => {
                h.last_used = now;
                (h.path_of(client), h.legacy.is_some())
            }
            None => (None, false),
        };
        if path.is_none() && legacy {
            // A legacy host answering a session that is over: only its client could set a
            // path up again.
            return self.drop_input(DropReason::SessionExpired);
        }
        if packet.len() > usize::from(self.cfg.limits.path_mtu) && ip.dont_fragment() {
            return self.too_big(packet, ip.dst());
        }
        let path = match path {
            Some(p) => p,
            // The path was lost (or never set up): the next packet sets it up again, so apps
            // that cached the address never need to ask DNS again.
            None => match self.start_path(handle, client) {
                Ok(p) => p,
                Err(f) => {
                    let name = self
                        .handles
                        .get(handle)
                        .map(|h| h.name.clone())
                        .unwrap_or_default();
                    self.event(crate::api::Event::SetupFailed {
                        name,
                        reason: f.text,
                    });
                    self.release_unused_handle(handle);
                    return self.drop_input(DropReason::PathNotUp);
                }
            },
        };
        let Some(p) = self.paths.get(path) else {
            return;
        };
        if p.state == State::Up {
            // Where the receiver looks for the checksum matters only to a path that leaves
            // it partial or seals the packet.
            let standard = match p.partial.send || p.secure.is_some() {
                true => PartialChecksum::at(ip),
                false => None,
            };
            self.send_on_path(path, packet, partial, standard);
            return;
        }
        if p.pending.len() >= self.cfg.limits.pending_packets {
            return self.drop_input(DropReason::PendingFull);
        }
        let mut buf = self.pool.take();
        buf.extend_from_slice(packet);
        if let Some(c) = partial {
            // Rare (the path is coming up): the copy waits complete.
            c.complete(&mut buf);
        }
        if let Some(p) = self.paths.get_mut(path) {
            p.pending.push_back(buf);
        }
    }

    /// Tells the app its packet was too big, as a router would, from the handle it sent to.
    fn too_big(&mut self, packet: &[u8], handle: IpAddr) {
        self.drop_input(DropReason::TooBig);
        let mut icmp = Vec::with_capacity(600);
        if write_icmp_too_big(&mut icmp, packet, handle, self.cfg.limits.path_mtu).is_ok() {
            self.counters.tun_out += 1;
            self.deliveries.push_back(Packet::from_vec(icmp));
        }
    }

    fn is_sentinel(&self, ip: IpAddr) -> bool {
        let h = &self.cfg.handles;
        ip == IpAddr::V4(h.dns_v4) || ip == IpAddr::V6(h.dns_v6)
    }

    fn on_sentinel_packet(&mut self, ip: &IpView<'_>) {
        if ip.protocol() != PROTO_UDP || ip.is_fragment() {
            return self.drop_input(DropReason::NotOurs);
        }
        let udp = match UdpView::parse(ip.payload()) {
            Ok(u) => u,
            Err(e) => return self.drop_input(DropReason::TunMalformed(e)),
        };
        if udp.dst_port() != 53 {
            return self.drop_input(DropReason::NotOurs);
        }
        let client = SocketAddr::new(ip.src(), udp.src_port());
        let server = SocketAddr::new(ip.dst(), 53);
        self.on_dns_query(client, server, udp.payload());
    }

    /// Wraps an app's packet in a data header — sealed or MACed on a secure path — and
    /// sends it over the path's tunnel, built in its output's buffer
    /// ([`crate::engine::stage_datagram`]). A `partial` checksum is completed on the copy,
    /// or left partial where the peer takes that and it is at `standard`, where the
    /// packet's receiver will look for it ([`PartialChecksum::of`], found where the packet
    /// was parsed; `None` is enough for a plain path that completes checksums).
    pub(crate) fn send_on_path(
        &mut self,
        key: usize,
        packet: &[u8],
        partial: Option<PartialChecksum>,
        standard: Option<PartialChecksum>,
    ) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        let (peer, partial_form) = (p.peer_label, p.partial.send);
        let Some(t) = self.tunnels.get(p.tunnel) else {
            return;
        };
        let (overlay, r) = (t.overlay, t.module_ref);
        // The outer header starts with the inner one's ECN field (RFC 6040's normal mode).
        let ecn = ecn_of(packet).unwrap_or_default();
        let Some(buf) = stage_datagram(&mut self.out, overlay, self.pool.take(), ecn) else {
            return;
        };
        if p.secure.is_some() {
            // The sealed body follows the header and the nonce; the tag follows it.
            let body = DATA_HEADER_LEN + NONCE_LEN;
            buf.align_at(body, body + packet.len() + TAG_LEN);
        }
        let mut header = [0u8; DATA_HEADER_LEN];
        message::write_data_header(&mut header, peer);
        buf.extend_from_slice(&header);
        let sealed = match p.secure.as_mut() {
            None => {
                buf.extend_from_slice(packet);
                let at = buf.len() - packet.len();
                match partial_form {
                    true => in_partial_form(&mut buf[at..], partial, standard),
                    false => {
                        if let Some(c) = partial {
                            c.complete(&mut buf[at..]);
                        }
                        Ok(())
                    }
                }
            }
            Some(s) => {
                let out = buf.tail_vec();
                s.seal(packet, partial, standard, out, &mut self.key_cache, key)
            }
        };
        match sealed {
            Ok(()) => self.send_staged(overlay, r),
            Err(reason) => {
                self.unstage();
                self.drop_input(reason);
                if reason == DropReason::NonceExhausted {
                    self.close_path(
                        key,
                        CloseReason::Idle,
                        "keys used up; the next packet sets up fresh ones",
                    );
                }
            }
        }
    }

    /// Sends what apps wrote while the path was coming up.
    pub(crate) fn flush_pending(&mut self, key: usize) {
        let Some(p) = self.paths.get_mut(key) else {
            return;
        };
        // The queue is not needed again once the path is up, so its room is let go with it.
        let pending = std::mem::take(&mut p.pending);
        for pkt in pending {
            self.send_on_path(key, &pkt, None, PartialChecksum::of(&pkt));
            self.pool.give(pkt);
        }
    }

    /// A datagram from an overlay socket.
    pub(crate) fn on_datagram(
        &mut self,
        overlay: OverlayId,
        from: &SocketAddr,
        payload: &mut [u8],
        arrival: Arrival,
    ) {
        self.counters.datagrams_in += 1;
        let now = self.now;
        let Some(slot) = self.overlays.get_mut(usize::from(overlay.0)) else {
            return self.drop_input(DropReason::UnknownOverlay);
        };
        slot.traffic.datagrams_in += 1;
        slot.traffic.bytes_in += payload.len() as u64;
        let received = slot.module.receive(now, from, payload, &mut self.pool);
        // What a module relays on its own (a rendezvous server, a relaying member) keeps the
        // datagram's ECN field; what else it sends now (replies to control messages) carries
        // it harmlessly, since only data messages' fields are read.
        self.drain_overlay_carrying(overlay, arrival.ecn);
        // Read in place: the module just wrote these, and a wide copy of its narrow stores
        // would stall until they retire.
        let (known, from, bytes) = match &received {
            Received::Consumed => return,
            &Received::Transit { message } => {
                if self.keep_transit_grant(message) {
                    return;
                }
                if self.middlebox_passes(message, None) {
                    let sent = self
                        .overlays
                        .get_mut(usize::from(overlay.0))
                        .map(|s| s.module.transit(now, message, &mut self.pool));
                    // A module relaying keeps the datagram's ECN field.
                    self.drain_overlay_carrying(overlay, arrival.ecn);
                    if let Some(Err(d)) = sent {
                        self.drop_input(DropReason::Overlay(d));
                    }
                }
                return;
            }
            &Received::Dropped(d) => return self.drop_input(DropReason::Overlay(d)),
            &Received::Malformed(e) => return self.drop_input(DropReason::DatagramMalformed(e)),
            Received::Message {
                tunnel,
                peer,
                message,
            } => (*tunnel, peer, *message),
        };
        let tunnel = known.and_then(|r| self.tunnels.by_module(overlay, r));
        match Message::parse(bytes) {
            Err(e) => self.drop_input(DropReason::DatagramMalformed(e)),
            Ok(Message::Data {
                label,
                payload: inner,
            }) => {
                // A module's message is part of the datagram it was given (it borrows it).
                let (Some(datagram), Some(at)) = (within(payload, bytes), within(payload, inner))
                else {
                    return self.drop_input(DropReason::DatagramMalformed(WireError::BadHeader));
                };
                // Only bulk data carries congestion signals (`codel::SIGNALLED_LEN`).
                let congested = inner.len() >= SIGNALLED_LEN
                    && self
                        .overlays
                        .get_mut(usize::from(overlay.0))
                        .is_some_and(|s| s.queue.signal(now, arrival.queued));
                let from = *from;
                let data = Data {
                    label,
                    lent: payload,
                    index: self.datagram_index,
                    datagram,
                    inner: at,
                    ecn: arrival.ecn,
                    congested,
                };
                self.on_data(overlay, &from, tunnel, data)
            }
            Ok(Message::Setup(s)) => self.on_setup(overlay, *from, tunnel, &s),
            Ok(Message::Accept(a)) if self.paths.by_label(a.receiver_label).is_none() => {
                // An accept for a path this node gave up on: tell the sender, so the gateway
                // or responder that kept state for it lets go.
                self.drop_input(DropReason::UnknownLabel);
                let close = Close {
                    receiver_label: a.sender_label,
                    path_id: a.path_id,
                    reason: CloseReason::PeerClosed,
                };
                self.reply_stateless(overlay, *from, &Message::Close(close));
            }
            Ok(Message::Accept(a)) => self.on_accept(tunnel, &a),
            Ok(Message::Reject(r)) => self.on_reject(tunnel, &r),
            Ok(Message::Close(c)) => self.on_close(tunnel, &c),
            Ok(Message::Confirm(c)) => self.on_confirm(tunnel, &c),
            Ok(Message::Cookie(c)) => self.on_cookie(tunnel, &c),
            Ok(Message::Grant(g)) => self.on_grant(tunnel, &g),
            // Keepalives are the module's; one that reaches OC-I came from a stranger.
            Ok(Message::Keepalive(_)) => self.drop_input(DropReason::UnknownLabel),
        }
    }

    fn on_data(&mut self, overlay: OverlayId, from: &Peer, tunnel: Option<usize>, data: Data<'_>) {
        let Data {
            label,
            lent,
            index,
            datagram,
            inner,
            ecn,
            congested,
        } = data;
        let Some(key) = self.paths.by_label(label) else {
            self.drop_input(DropReason::UnknownLabel);
            // Tell the sender, so its path goes down and its next packet sets up a new one.
            let msg = Message::Close(Close {
                receiver_label: label,
                path_id: 0,
                reason: CloseReason::UnknownLabel,
            });
            return self.reply_stateless(overlay, *from, &msg);
        };
        let Some(p) = self.paths.get(key) else { return };
        if Some(p.tunnel) != tunnel {
            return self.drop_input(DropReason::WrongPeer);
        }
        match p.role {
            Role::Relay { twin, .. } => {
                let Some(t) = self.paths.get(twin).filter(|t| t.state == State::Up) else {
                    return self.drop_input(DropReason::PathNotUp);
                };
                let (tt, peer) = (t.tunnel, t.peer_label);
                // The inner packet is sealed to the path's ends: a congestion signal here is
                // a CE mark on the outer header, which the end carries inside, if the sender
                // made the datagram ECN-capable.
                let ecn = match (congested, ecn.congested()) {
                    (false, _) => ecn,
                    (true, Some(marked)) => marked,
                    (true, None) => return self.drop_input(DropReason::Congested),
                };
                // A gateway that is also a middlebox (a sender-imposed hop) judges what it relays.
                let read = p.read.as_deref().map(|k| (key, *k));
                let datagram = lent.get(datagram).unwrap_or_default();
                if self.middlebox.is_some() && !self.middlebox_passes(datagram, read) {
                    return;
                }
                let Some(t) = self.tunnels.get(tt) else {
                    return self.drop_input(DropReason::PathNotUp);
                };
                let (overlay, r) = (t.overlay, t.module_ref);
                let Some(buf) = stage_datagram(&mut self.out, overlay, self.pool.take(), ecn)
                else {
                    return;
                };
                buf.extend_from_slice(datagram);
                if message::set_data_label(buf, peer).is_err() {
                    self.unstage();
                    return self.drop_input(DropReason::PathNotUp);
                }
                self.counters.relayed += 1;
                self.heard_on_path(key);
                self.send_staged(overlay, r);
            }
            Role::Initiator { handle }
            | Role::Responder {
                handle: Some(handle),
            } => {
                if p.state != State::Up {
                    return self.drop_input(DropReason::PathNotUp);
                }
                // The end can open the packet: congestion here marks it like a CE outer.
                let outer = if congested { Ecn::Ce } else { ecn };
                if p.secure.is_some() {
                    let sealed = lent.get(inner).unwrap_or_default();
                    self.open_and_deliver(key, handle, sealed, outer);
                } else if let Some(packet) = lent.get_mut(inner.clone()) {
                    let at = (index, inner);
                    self.deliver_in_place(key, handle, packet, at, outer);
                }
            }
            // Data can overtake the initiator's confirm on the way; hold a little of it until
            // the confirm arrives and the keys to open it exist.
            Role::Responder { handle: None }
                if p.state == State::AwaitConfirm && p.pending.len() < EARLY_DATA =>
            {
                let mut buf = self.pool.take();
                buf.extend_from_slice(lent.get(inner).unwrap_or_default());
                if let Some(p) = self.paths.get_mut(key) {
                    p.pending.push_back(buf);
                }
            }
            Role::Responder { handle: None } => self.drop_input(DropReason::PathNotUp),
        }
    }

    /// Tells the module of a path's tunnel that its peer was heard: the packet carried the
    /// path's label and, on a secure path, opened under its keys.
    fn heard_on_path(&mut self, key: usize) {
        let Some(t) = self.paths.get(key).and_then(|p| self.tunnels.get(p.tunnel)) else {
            return;
        };
        let (overlay, r, now) = (t.overlay, t.module_ref, self.now);
        if self.heard == Some((overlay, r)) {
            return;
        }
        if let Some(m) = self.module(overlay) {
            m.authenticated(now, r);
        }
        self.heard = Some((overlay, r));
    }

    /// Opens a secure path's data payload (checks and decrypts it) into a buffer of the
    /// engine's and hands the packet to local apps, with the ECN field that `outer` makes of
    /// it. A plain path's packets go [`Self::deliver_in_place`] instead.
    pub(crate) fn open_and_deliver(
        &mut self,
        key: usize,
        handle: usize,
        sealed: &[u8],
        outer: Ecn,
    ) {
        let Some(s) = self.paths.get_mut(key).and_then(|p| p.secure.as_mut()) else {
            return self.drop_input(DropReason::PathNotUp);
        };
        let mut buf = self.pool.take();
        let r = s.open(sealed, buf.tail_vec(), &mut self.key_cache, key);
        if r.is_ok() {
            if buf.is_empty() {
                // The responder's acknowledgement of our confirm, which is not sent again.
                s.confirmed = true;
                s.message = Vec::new();
                self.pool.give(buf);
                return self.heard_on_path(key);
            }
            buf.mark_authentic();
        }
        let opened = r.map(|o| match o.partial {
            true => Form::Flagged,
            false => Form::Complete,
        });
        let made = opened.and_then(|form| {
            self.heard_on_path(key);
            self.make_local(key, handle, outer, form, &mut buf)
        });
        match made {
            Ok(partial) => {
                if let Some(c) = partial {
                    buf.mark_partial(c);
                }
                self.deliveries.push_back(buf);
                self.counters.tun_out += 1;
            }
            Err(reason) => {
                self.pool.give(buf);
                self.drop_input(reason);
            }
        }
    }

    /// Hands a plain path's `packet` to local apps where it arrived: bytes `at.1` of the
    /// batch's datagram `at.0`, rewritten there, so that the driver writes it to the TUN from
    /// its own receive buffer and no byte of it is copied.
    fn deliver_in_place(
        &mut self,
        key: usize,
        handle: usize,
        packet: &mut [u8],
        at: (usize, Range<usize>),
        outer: Ecn,
    ) {
        self.heard_on_path(key);
        // Partial where the path carries checksums so.
        let form = match self.paths.get(key).is_some_and(|p| p.partial.receive) {
            true => Form::OfPath,
            false => Form::Complete,
        };
        match self.make_local(key, handle, outer, form, packet) {
            // Counted in `tun_out` once handed out (`Engine::poll_output`).
            Ok(partial) => {
                let (datagram, range) = at;
                self.in_place.push_back(InPlace {
                    datagram,
                    range,
                    partial,
                });
            }
            Err(reason) => self.drop_input(reason),
        }
    }

    /// Rewrites a peer's packet so it comes from the handle and goes to this node's own TUN
    /// address — or to the LAN client the path is for, or, from an egress handle, to its
    /// legacy server — for local apps. The outer header's ECN field combines with the
    /// packet's own as RFC 6040 says: a CE mark is carried in, or the packet dropped if its
    /// sender's transport is not ECN-capable. Its checksum stands as `form` says; the one
    /// left partial for the kernel comes back, or why the packet goes no further.
    fn make_local(
        &mut self,
        key: usize,
        handle: usize,
        outer: Ecn,
        form: Form,
        buf: &mut [u8],
    ) -> Result<Option<PartialChecksum>, DropReason> {
        // Parsed once: the header rewriting below takes as it is, and the checksum's place
        // where it is not complete.
        let (header, standard) = match IpView::parse(buf) {
            Ok(ip) if form == Form::Complete => (ip.header(), None),
            Ok(ip) => (ip.header(), PartialChecksum::at(&ip)),
            Err(e) => return Err(DropReason::InnerMalformed(e)),
        };
        let mut partial = None;
        if form != Form::Complete {
            match standard {
                // What this node's driver cannot hand on partial is completed here.
                Some(c) if self.cfg.security.partial_checksums => partial = Some(c),
                Some(c) => {
                    c.complete(buf);
                }
                // On a plain path in the partial form, what is not TCP or UDP is as it was
                // sent.
                None if form == Form::OfPath => {}
                None => return Err(DropReason::InnerMalformed(WireError::BadHeader)),
            }
        }
        // An outer header without ECN leaves the packet's own as it is.
        if outer != Ecn::NotEct {
            let inner = ecn_of(buf).unwrap_or_default();
            match Ecn::decapsulate(inner, outer) {
                None => return Err(DropReason::Congested),
                Some(e) if e != inner => {
                    // Only the ECN bits of a header just parsed change: this cannot fail.
                    let _ = set_ecn(buf, e);
                    if e == Ecn::Ce {
                        self.counters.ecn_marked += 1;
                    }
                }
                Some(_) => {}
            }
        }
        let now = self.now;
        let client = self.paths.get(key).and_then(|p| p.lan_client);
        let Some(h) = self.handles.get_mut(handle) else {
            return Err(DropReason::NoHandle);
        };
        h.last_used = now;
        let src = header.src;
        let from = h.addr_like(src);
        // A legacy client gateway's path goes to its LAN client (of the family the client
        // wrote in, so of this packet's, unless the peer breaks the path's rules); an egress
        // handle's to its legacy server; anything else to local apps.
        let to = match (client, h.legacy, src) {
            (Some(c), _, _) if c.is_ipv4() == src.is_ipv4() => Some(c),
            (Some(_), _, _) => None,
            (None, Some(end), _) => end.addr_like(src),
            (None, None, IpAddr::V4(_)) => Some(IpAddr::V4(self.cfg.handles.tun_v4)),
            (None, None, IpAddr::V6(_)) => Some(IpAddr::V6(self.cfg.handles.tun_v6)),
        };
        let to = to.ok_or(DropReason::NoLegacyRoute)?;
        rewrite_parsed(buf, header, from, to, partial.is_some())
            .map_err(DropReason::InnerMalformed)?;
        Ok(partial)
    }
}

/// Where `part`, a slice of `whole`, lies in it.
fn within(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// How the transport checksum of a packet that arrived on an end path stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Complete, as ever.
    Complete,
    /// Partial, as the secure path's sender flagged it: it must have a TCP or UDP checksum.
    Flagged,
    /// Partial if it has a TCP or UDP checksum: a plain path in the partial form.
    OfPath,
}

/// `packet`, written by a local app (its checksum `partial` where the kernel left it so, and
/// `standard` where its receiver will look for one), in
/// the partial form a plain path carries to a peer that takes it (`security::parameters`):
/// a TCP or UDP checksum left partial where the receiver will look for it, or checked and
/// left partial; anything else complete. A checksum that does not verify is the app's
/// packet's fault, and the packet goes no further.
fn in_partial_form(
    packet: &mut [u8],
    partial: Option<PartialChecksum>,
    standard: Option<PartialChecksum>,
) -> Result<(), DropReason> {
    if let Some(c) = partial {
        if Some(c) == standard {
            return Ok(());
        }
        c.complete(packet);
    }
    match standard {
        Some(c) => c.leave_partial(packet).map_err(DropReason::TunMalformed),
        None => Ok(()),
    }
}
