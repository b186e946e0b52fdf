//! The control log: every setup, accept, confirm, cookie, reject and close a node sends or
//! receives, every i3 trigger request, answer and probe, and every RON probe, answer and
//! link-state report, one line each. Snapshot tests
//! keep these lines, so a change to a handshake shows up as a diff to review.

use ocala_engine::ocd::i3::wire::{I3Packet, MAGIC};
use ocala_engine::ocd::ron::wire::{self as ron, RonPacket};
use ocala_engine::wire::message::Message;

/// One line for a control datagram; `None` for data (and for i3 or RON data that carries
/// data).
pub fn describe(bytes: &[u8]) -> Option<String> {
    match bytes.first() {
        Some(&MAGIC) => i3(bytes),
        Some(&ron::MAGIC) => ron_line(bytes),
        _ => ocala(bytes),
    }
}

/// A member id, short.
fn member(id: u64) -> String {
    format!("{:08x}", id >> 32)
}

fn ron_line(bytes: &[u8]) -> Option<String> {
    Some(match RonPacket::parse_unverified(bytes).ok()? {
        RonPacket::Data(h, payload) => format!(
            "ron data src={} dst={} tunnels={}->{} metric={} relayed={} | {}",
            member(h.src),
            member(h.dst),
            h.src_tunnel,
            h.dst_tunnel,
            h.metric,
            h.flags & ron::FLAG_RELAYED != 0,
            ocala(payload)?
        ),
        RonPacket::Probe { src, seq } => format!("ron probe src={} seq={seq}", member(src)),
        RonPacket::Ack { src, seq } => format!("ron ack src={} seq={seq}", member(src)),
        RonPacket::Links {
            src,
            version,
            links,
        } => format!(
            "ron links src={} version={version} [{}]",
            member(src),
            links
                .iter()
                .map(|l| format!("{} {}us {}pm", member(l.peer), l.rtt_us, l.loss_pm))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn ocala(bytes: &[u8]) -> Option<String> {
    Some(match Message::parse(bytes) {
        Ok(Message::Setup(s)) => format!(
            "setup  sender_label={:#010x} path_id={:#018x} hops={} options={:#04x} return={} remaining={:?} handshake={}B",
            s.sender_label,
            s.path_id,
            s.hop_count,
            s.options,
            s.return_name,
            s.remaining,
            s.handshake.len()
        ),
        Ok(Message::Accept(a)) => {
            let families = match (a.families.has(false), a.families.has(true)) {
                (true, true) => "",
                (true, false) => " families=v4",
                _ => " families=v6",
            };
            format!(
                "accept sender_label={:#010x} receiver_label={:#010x} path_id={:#018x} handshake={}B{families}",
                a.sender_label,
                a.receiver_label,
                a.path_id,
                a.handshake.len()
            )
        }
        Ok(Message::Confirm(c)) => format!(
            "confirm receiver_label={:#010x} path_id={:#018x} handshake={}B",
            c.receiver_label,
            c.path_id,
            c.handshake.len()
        ),
        Ok(Message::Cookie(c)) => format!(
            "cookie receiver_label={:#010x} path_id={:#018x}",
            c.receiver_label, c.path_id
        ),
        Ok(Message::Grant(g)) => format!(
            "grant  receiver_label={:#010x} path_id={:#018x} sealed={}B",
            g.receiver_label,
            g.path_id,
            g.sealed.len()
        ),
        Ok(Message::Reject(r)) => format!(
            "reject receiver_label={:#010x} path_id={:#018x} reason={} text={:?}",
            r.receiver_label, r.path_id, r.reason, r.text
        ),
        Ok(Message::Close(c)) => format!(
            "close  receiver_label={:#010x} path_id={:#018x} reason={}",
            c.receiver_label, c.path_id, c.reason
        ),
        _ => return None,
    })
}

fn i3(bytes: &[u8]) -> Option<String> {
    Some(match I3Packet::parse(bytes).ok()? {
        I3Packet::Data {
            flags,
            stack,
            return_id,
            payload,
        } => {
            let inner = ocala(payload)?;
            let to: Vec<String> = stack.iter().map(|id| id.to_string()).collect();
            let ret = return_id.map_or("-".into(), |r| r.to_string());
            format!(
                "i3 data flags={flags:#04x} to=[{}] return={ret} | {inner}",
                to.join(",")
            )
        }
        I3Packet::Insert {
            lifetime_secs,
            id,
            target,
            ..
        } => format!(
            "i3 insert id={id} lifetime={lifetime_secs}s target={}",
            if target.is_empty() {
                "sender".to_string()
            } else {
                format!("{} ids", target.len())
            }
        ),
        I3Packet::Ack {
            lifetime_secs,
            id,
            observed,
        } => format!("i3 ack id={id} lifetime={lifetime_secs}s observed={observed}"),
        I3Packet::Remove { id, .. } => format!("i3 remove id={id}"),
        I3Packet::Refused { id, reason } => format!("i3 refused id={id} reason={reason:?}"),
        I3Packet::Shortcut { id, addr } => format!("i3 shortcut id={id} addr={addr}"),
        I3Packet::Probe { id, .. } => format!("i3 probe id={id}"),
        I3Packet::ProbeAck { id, .. } => format!("i3 probe-ack id={id}"),
        I3Packet::Ping { .. } | I3Packet::Pong { .. } => return None,
    })
}
