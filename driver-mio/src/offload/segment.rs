//! TUN → engine: one read from a TUN with offloads on may be a TCP super-packet of up to
//! 64 KiB (TSO), a UDP one (USO: an app sent a train of datagrams with `UDP_SEGMENT`, as
//! QUIC stacks do) or a packet whose checksum the kernel left partial. The engine carries IP
//! packets that fit a path, so the daemon cuts super-packets into segments here, each a
//! packet with its own headers — the software half of the offload. Transport checksums stay
//! partial, as the kernel left them: the engine completes them where it must and leaves them
//! so on secure paths to peers that take them ([`ocala_engine::PartialChecksum`]), which
//! spares summing every payload byte here.

use super::layout::{self, Layout};
use super::vnet::{self, VnetHdr};
use ocala_engine::wire::checksum;
use ocala_engine::PartialChecksum;

/// Why a TUN read could not be turned into packets. The kernel writes these headers, so any
/// of them means a kernel this code does not understand; the read is dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// The partial checksum's place lies outside the packet.
    ChecksumOutside,
    /// A segmentation type other than TCP's and UDP's.
    UnknownGso(u8),
    /// A super-packet that is not the TCP or UDP over IPv4/IPv6 its header says.
    NotAsTyped,
    /// Segment size zero.
    BadSegmentSize,
    /// Headers longer than any TCP or UDP packet's (`MAX_HEADERS`).
    HeadersTooLong,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitError::ChecksumOutside => write!(f, "partial checksum outside the packet"),
            SplitError::UnknownGso(t) => write!(f, "unknown segmentation type {t}"),
            SplitError::NotAsTyped => {
                write!(
                    f,
                    "segmentation of a packet that is not of the type it says"
                )
            }
            SplitError::BadSegmentSize => write!(f, "bad segment size"),
            SplitError::HeadersTooLong => write!(f, "headers longer than {MAX_HEADERS} bytes"),
        }
    }
}

/// Turns one TUN read into packets the engine can carry and hands each to `each`, in order,
/// with where its checksum is partial: the packet itself, or the segments of a TSO or USO
/// super-packet. How many packets `each` got; none when the read is refused.
///
/// Segments are cut in place, without a copy of the payload: segment `i` is built where its
/// payload already lies, its headers written over the last bytes of segment `i - 1`, which
/// `each` has taken (the engine copies what it keeps) by then.
pub fn split(
    hdr: &VnetHdr,
    packet: &mut [u8],
    each: &mut impl FnMut(&[u8], Option<PartialChecksum>),
) -> Result<usize, SplitError> {
    match hdr.gso_type & !vnet::GSO_ECN {
        vnet::GSO_NONE => {
            let partial = (hdr.flags & vnet::NEEDS_CSUM != 0).then_some(PartialChecksum {
                start: hdr.csum_start,
                offset: hdr.csum_offset,
            });
            if partial.is_some_and(|c| !c.fits(packet.len())) {
                return Err(SplitError::ChecksumOutside);
            }
            each(packet, partial);
            Ok(1)
        }
        t @ (vnet::GSO_TCPV4 | vnet::GSO_TCPV6 | vnet::GSO_UDP_L4) => {
            let hint = (hdr.flags & vnet::NEEDS_CSUM != 0).then_some(usize::from(hdr.csum_start));
            let proto = if t == vnet::GSO_UDP_L4 {
                layout::PROTO_UDP
            } else {
                layout::PROTO_TCP
            };
            let layout = Layout::of(packet, proto, hint).ok_or(SplitError::NotAsTyped)?;
            if proto == layout::PROTO_TCP && layout.v6 != (t == vnet::GSO_TCPV6) {
                return Err(SplitError::NotAsTyped);
            }
            segments(&layout, usize::from(hdr.gso_size), packet, each)
        }
        other => Err(SplitError::UnknownGso(other)),
    }
}

/// Longest IP and transport headers a super-packet may have: each segment gets a copy.
const MAX_HEADERS: usize = 256;

/// Cuts the super-packet's payload at `mss` and gives each piece the headers it would have
/// had from the kernel's own segmentation: consecutive IPv4 IDs and a partial transport
/// checksum (its own length's pseudo-header sum); for TCP consecutive sequence numbers, FIN
/// and PSH only on the last segment and CWR only on the first; for UDP its own length.
fn segments(
    layout: &Layout,
    mss: usize,
    packet: &mut [u8],
    each: &mut impl FnMut(&[u8], Option<PartialChecksum>),
) -> Result<usize, SplitError> {
    let head = layout.payload;
    if mss == 0 {
        return Err(SplitError::BadSegmentSize);
    }
    let mut headers = [0u8; MAX_HEADERS];
    let pristine = headers.get_mut(..head).ok_or(SplitError::HeadersTooLong)?;
    pristine.copy_from_slice(&packet[..head]);
    let payload = packet.len() - head;
    let count = payload.div_ceil(mss).max(1);
    let tcp = layout.proto == layout::PROTO_TCP;
    let seq = layout::get32(pristine, layout.l4 + 4);
    let id = layout::get16(pristine, 4);
    let flags = pristine.get(layout.l4 + 13).copied().unwrap_or(0);
    let check = layout.l4 + layout.checksum_offset();
    // Both fit in u16: the headers are at most MAX_HEADERS long.
    let at = PartialChecksum {
        start: layout.l4 as u16,
        offset: layout.checksum_offset() as u16,
    };
    // What every segment's sums share, summed once: the pseudo-header without its length,
    // and the IPv4 header without its length, ID and checksum.
    let pseudo = layout.pseudo(pristine, 0);
    let ip = (!layout.v6).then(|| {
        let mut h = [0u8; MAX_HEADERS];
        let h = &mut h[..layout.l4];
        h.copy_from_slice(&pristine[..layout.l4]);
        h[2..6].fill(0);
        h[10..12].fill(0);
        checksum::sum(h)
    });
    for i in 0..count {
        let start = i * mss;
        let len = mss.min(payload - start.min(payload));
        let total = head + len;
        let out = &mut packet[start..start + total];
        out[..head].copy_from_slice(pristine);
        match ip {
            None => layout::put16(out, 4, (total - 40) as u16),
            Some(ip) => {
                let id = id.wrapping_add(i as u16);
                layout::put16(out, 2, total as u16);
                layout::put16(out, 4, id);
                let sum = checksum::add(ip, total as u64 + u64::from(id));
                layout::put16(out, 10, checksum::finish(sum));
            }
        }
        if tcp {
            layout::put32(out, layout.l4 + 4, seq.wrapping_add(start as u32));
            let mut f = flags;
            if i > 0 {
                f &= !layout::CWR;
            }
            if i + 1 < count {
                f &= !(layout::FIN | layout::PSH);
            }
            out[layout.l4 + 13] = f;
        } else {
            layout::put16(out, layout.l4 + 4, (total - layout.l4) as u16);
        }
        let partial = checksum::fold(checksum::add(pseudo, (total - layout.l4) as u64));
        layout::put16(out, check, partial);
        each(out, Some(at));
    }
    Ok(count)
}
