//! Underlay changes from the kernel (rtnetlink): links, addresses and routes coming and going
//! on any interface but our own TUN. The daemon tells the engine `Input::NetworkChanged` when a
//! wakeup brings any, so overlays that keep state at others (i3 triggers, direct paths) renew
//! it from the new address at once instead of at their next refresh.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// Route attribute: the output interface.
const RTA_OIF: u16 = 4;
const NLMSG_HDRLEN: usize = 16;
/// `struct rtmsg`, before the route's attributes.
const RTMSG_LEN: usize = 12;

/// The kernel's multicast groups for what we watch.
const GROUPS: u32 = (libc::RTMGRP_LINK
    | libc::RTMGRP_IPV4_IFADDR
    | libc::RTMGRP_IPV6_IFADDR
    | libc::RTMGRP_IPV4_ROUTE
    | libc::RTMGRP_IPV6_ROUTE) as u32;

/// A netlink socket subscribed to link, address and route changes.
pub struct Watcher {
    fd: OwnedFd,
    /// Our TUN's interface index: its own changes are ours, not the underlay's.
    tun_index: u32,
}

impl Watcher {
    /// Opens the socket (non-blocking) and subscribes.
    pub fn open(tun_name: &str) -> io::Result<Watcher> {
        let name = std::ffi::CString::new(tun_name).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
        let tun_index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = GROUPS;
        // SAFETY: `addr` is a properly initialised sockaddr_nl of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watcher { fd, tun_index })
    }

    /// Reads everything queued; whether any of it changed the underlay. A receive buffer
    /// overrun (`ENOBUFS`) lost messages, so it counts as a change.
    pub fn read(&self, buf: &mut [u8]) -> bool {
        let mut changed = false;
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) => changed = true,
                    Some(libc::EINTR) => {}
                    _ => return changed,
                }
                continue;
            }
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                return changed;
            }
            changed |= underlay_change(buf.get(..n).unwrap_or(&[]), self.tun_index);
        }
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Whether a batch of netlink messages holds a change to an interface other than `tun`.
/// Messages the kernel sent are trusted to be well formed, but a short or odd one only ends
/// the walk.
pub fn underlay_change(mut b: &[u8], tun: u32) -> bool {
    while b.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(kind)) = (u32_at(b, 0), u16_at(b, 4)) else {
            return false;
        };
        let len = len as usize;
        let Some(msg) = b.get(..len).filter(|_| len >= NLMSG_HDRLEN) else {
            return false;
        };
        let body = &msg[NLMSG_HDRLEN..];
        let index = match kind {
            // ifinfomsg and ifaddrmsg both keep the interface index at offset 4.
            RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR => u32_at(body, 4),
            RTM_NEWROUTE | RTM_DELROUTE => route_oif(body),
            _ => Some(tun),
        };
        if index != Some(tun) {
            return true;
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        b = b.get(next..).unwrap_or(&[]);
    }
    false
}

/// A route's output interface (`None` when it names none).
fn route_oif(body: &[u8]) -> Option<u32> {
    let mut attrs = body.get(RTMSG_LEN..)?;
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        if len < 4 {
            return None;
        }
        if u16_at(attrs, 2)? == RTA_OIF {
            return u32_at(attrs, 4);
        }
        attrs = attrs.get((len + 3) & !3..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + body.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn addr(index: u32) -> Vec<u8> {
        let mut b = vec![2, 24, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        msg(RTM_NEWADDR, &b)
    }

    fn route(oif: Option<u32>) -> Vec<u8> {
        let mut b = vec![0u8; RTMSG_LEN];
        // RTA_DST (1), 4 bytes, then maybe RTA_OIF.
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&[10, 0, 0, 0]);
        if let Some(i) = oif {
            b.extend_from_slice(&8u16.to_ne_bytes());
            b.extend_from_slice(&RTA_OIF.to_ne_bytes());
            b.extend_from_slice(&i.to_ne_bytes());
        }
        msg(RTM_NEWROUTE, &b)
    }

    #[test]
    fn changes_on_the_tun_are_ours_and_the_rest_is_the_underlay() {
        const TUN: u32 = 7;
        assert!(!underlay_change(&addr(TUN), TUN));
        assert!(underlay_change(&addr(2), TUN));
        assert!(!underlay_change(&route(Some(TUN)), TUN));
        assert!(underlay_change(&route(Some(3)), TUN));
        assert!(
            underlay_change(&route(None), TUN),
            "a route without interface"
        );
        // A batch: the TUN's own address, then an underlay one.
        let batch = [addr(TUN), route(Some(TUN)), addr(4)].concat();
        assert!(underlay_change(&batch, TUN));
        // Other message types and truncated input change nothing.
        assert!(!underlay_change(&msg(3, &[0; 4]), TUN));
        assert!(!underlay_change(&addr(2)[..10], TUN));
        let mut lying = addr(2);
        lying[0] = 200;
        assert!(!underlay_change(&lying, TUN), "a length past the end");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A deterministic sweep instead of a fuzzer dependency: every length up to 64 of a
        // pseudo-random stream, and every single-byte corruption of a valid batch.
        let mut x: u32 = 1;
        let bytes: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for n in 0..64 {
            let _ = underlay_change(&bytes[..n], 7);
        }
        let batch = [addr(7), route(Some(7)), addr(4)].concat();
        assert!(underlay_change(&batch, 7));
        assert!(!underlay_change(&batch[..batch.len() - addr(4).len()], 7));
        for i in 0..batch.len() {
            let mut b = batch.clone();
            b[i] ^= 0xff;
            let _ = underlay_change(&b, 7);
        }
    }
}
