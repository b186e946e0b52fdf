//! TUN → engine: one read from a TUN with offloads on may be a TCP super-packet of up to
//! 64 KiB (TSO) or a packet whose checksum the kernel left partial. The engine carries IP
//! packets that fit a path, so the daemon cuts super-packets into segments here, each a
//! complete packet with its own headers and checksums — the software half of the offload.

use super::tcp::{self, Layout};
use super::vnet::{self, VnetHdr};
use ocala_engine::wire::checksum;

/// Why a TUN read could not be turned into packets. The kernel writes these headers, so any
/// of them means a kernel this code does not understand; the read is dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The partial checksum's place lies outside the packet.
    ChecksumOutside,
    /// A segmentation type other than TCP (UDP segmentation is never enabled).
    UnknownGso(u8),
    /// A TCP super-packet that is not TCP over IPv4/IPv6 as its header says.
    NotTcp,
    /// Segment size zero, or segments larger than the scratch buffer.
    BadSegmentSize,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::ChecksumOutside => write!(f, "partial checksum outside the packet"),
            SplitError::UnknownGso(t) => write!(f, "unknown segmentation type {t}"),
            SplitError::NotTcp => write!(f, "TCP segmentation of a packet that is not TCP"),
            SplitError::BadSegmentSize => write!(f, "bad segment size"),
        }
    }
}

/// Where the packets of one TUN read are, once [`split`] is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packets {
    /// The read held one packet; it is the read itself.
    Whole,
    /// The read was a super-packet, now `count` segments in the scratch buffer, one every
    /// `stride` bytes; all are `stride` long but the last, which is `last` long.
    Segments {
        stride: usize,
        count: usize,
        last: usize,
    },
}

impl Packets {
    /// How many packets.
    pub fn count(&self) -> usize {
        match self {
            Packets::Whole => 1,
            Packets::Segments { count, .. } => *count,
        }
    }

    /// The packets, from the read (`packet`) or the scratch buffer [`split`] filled.
    pub fn iter<'a>(
        &self,
        packet: &'a [u8],
        scratch: &'a [u8],
    ) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let (stride, count, last, whole) = match *self {
            Packets::Whole => (0, 0, 0, Some(packet)),
            Packets::Segments {
                stride,
                count,
                last,
            } => (stride, count, last, None),
        };
        let segments = (0..count).map(move |i| {
            let len = if i + 1 == count { last } else { stride };
            scratch.get(i * stride..i * stride + len).unwrap_or(&[])
        });
        whole.into_iter().chain(segments)
    }
}

/// Turns one TUN read into packets the engine can carry: completes a partial checksum in
/// place, or cuts a TSO super-packet into segments laid out in `scratch`.
pub fn split(hdr: &VnetHdr, packet: &mut [u8], scratch: &mut [u8]) -> Result<Packets, SplitError> {
    match hdr.gso_type & !vnet::GSO_ECN {
        vnet::GSO_NONE => {
            if hdr.flags & vnet::NEEDS_CSUM != 0 {
                complete_checksum(hdr, packet)?;
            }
            Ok(Packets::Whole)
        }
        t @ (vnet::GSO_TCPV4 | vnet::GSO_TCPV6) => {
            let hint = (hdr.flags & vnet::NEEDS_CSUM != 0).then_some(usize::from(hdr.csum_start));
            let layout = Layout::of(packet, hint).ok_or(SplitError::NotTcp)?;
            if layout.v6 != (t == vnet::GSO_TCPV6) {
                return Err(SplitError::NotTcp);
            }
            segments(&layout, usize::from(hdr.gso_size), packet, scratch)
        }
        other => Err(SplitError::UnknownGso(other)),
    }
}

/// Fills in a checksum the kernel left partial: the field holds the pseudo-header sum, the
/// rest is summed from `csum_start` to the end.
fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), SplitError> {
    let start = usize::from(hdr.csum_start);
    let field = start + usize::from(hdr.csum_offset);
    if field + 2 > packet.len() {
        return Err(SplitError::ChecksumOutside);
    }
    let mut c = checksum::finish(checksum::sum(&packet[start..]));
    // UDP's offset: a zero checksum means "none" there, so an all-ones result is sent.
    if c == 0 && hdr.csum_offset == 6 {
        c = 0xffff;
    }
    tcp::put16(packet, field, c);
    Ok(())
}

/// Cuts the super-packet's payload at `mss` and gives each piece the headers it would have
/// had from the kernel's own TSO: consecutive sequence numbers and IPv4 IDs, FIN and PSH only
/// on the last segment, CWR only on the first.
fn segments(
    layout: &Layout,
    mss: usize,
    packet: &[u8],
    scratch: &mut [u8],
) -> Result<Packets, SplitError> {
    let head = layout.payload;
    let (headers, payload) = packet.split_at(head);
    let count = payload.len().div_ceil(mss.max(1)).max(1);
    let stride = head + mss;
    if mss == 0 || count * stride > scratch.len() {
        return Err(SplitError::BadSegmentSize);
    }
    let seq = tcp::get32(packet, layout.l4 + 4);
    let id = tcp::get16(packet, 4);
    let flags = packet[layout.l4 + 13];
    let mut last = 0;
    for (i, out) in scratch.chunks_mut(stride).take(count).enumerate() {
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let total = head + chunk.len();
        let out = &mut out[..total];
        out[..head].copy_from_slice(headers);
        out[head..].copy_from_slice(chunk);
        layout.set_ip(out, total, (!layout.v6).then(|| id.wrapping_add(i as u16)));
        tcp::put32(out, layout.l4 + 4, seq.wrapping_add((i * mss) as u32));
        let mut f = flags;
        if i > 0 {
            f &= !tcp::CWR;
        }
        if i + 1 < count {
            f &= !(tcp::FIN | tcp::PSH);
        }
        out[layout.l4 + 13] = f;
        layout.set_tcp_checksum(out);
        last = total;
    }
    Ok(Packets::Segments {
        stride,
        count,
        last,
    })
}
