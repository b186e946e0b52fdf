//! An overlay's UDP socket, batched: `recvmmsg` with UDP GRO in, `sendmsg` with UDP GSO
//! (`UDP_SEGMENT`) out. One system call then moves up to 64 datagrams each way instead of
//! one. `quinn-udp` receives, sends single datagrams and finds out at start what the kernel
//! offers; trains of datagrams leave through a `sendmsg` of our own ([`OverlaySocket::send_train`]),
//! because quinn-udp sends one contiguous buffer and a train is many: its own `iovec` per
//! datagram spares copying them side by side first.

use mio::net::UdpSocket;
use ocala_engine::Ecn;
use quinn_udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Datagrams a receive batch holds without GRO (`recvmmsg`'s message count).
pub const BATCH: usize = quinn_udp::BATCH_SIZE;
/// Room per message: a GRO train of 64 KiB, or one datagram of the largest size.
const MESSAGE_LEN: usize = 65_536;
/// Socket buffer size asked for each way. The kernel's default (about 200 KiB) holds three
/// GSO trains; a TCP flow at several Gbit/s overflows it whenever the daemon is scheduled
/// out, and each overflow loses a whole train.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Datagrams one train may hold: the kernel's `UDP_MAX_SEGMENTS`.
pub const MAX_TRAIN: usize = 64;

/// A bound overlay socket and what its kernel offers.
pub struct OverlaySocket {
    socket: UdpSocket,
    state: UdpSocketState,
    offload: bool,
    /// The kernel refused a train (`EIO` or `EINVAL`: a device without checksum offload on
    /// the way out, an old kernel): from then on datagrams leave one by one.
    trains_refused: AtomicBool,
}

/// Room for a train's control messages, aligned for `cmsghdr`: the segment size and the
/// ECN field.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Writes one control message of `value` at `cmsg` (nothing when it is null) and returns
/// where the next one goes (null when the buffer is full).
///
/// # Safety
/// `cmsg` is null or came from `CMSG_FIRSTHDR`/`CMSG_NXTHDR` on `msg`, whose control buffer
/// has room for a message of `T`.
unsafe fn push<T>(
    msg: &libc::msghdr,
    cmsg: *mut libc::cmsghdr,
    level: libc::c_int,
    kind: libc::c_int,
    value: T,
) -> *mut libc::cmsghdr {
    if cmsg.is_null() {
        return cmsg;
    }
    let size = size_of::<T>() as libc::c_uint;
    // SAFETY: the caller's promise: cmsg points at room for a header and a T.
    unsafe {
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<T>(), value);
        libc::CMSG_NXTHDR(msg, cmsg)
    }
}

/// Receive buffers, shared by every socket of a daemon.
pub struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl Default for RecvBufs {
    fn default() -> Self {
        RecvBufs {
            bufs: (0..BATCH).map(|_| vec![0; MESSAGE_LEN]).collect(),
            meta: vec![RecvMeta::default(); BATCH],
        }
    }
}

/// Sets an integer socket option.
fn setsockopt(
    socket: &UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: every option set here takes an int, passed by pointer with its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The sender of a message that is not there (fed nothing).
const NOBODY: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::UNSPECIFIED,
    0,
));

impl RecvBufs {
    /// The ECN field message `i` of the last receive came with (quinn-udp asks the kernel
    /// for it: `IP_RECVTOS`, `IPV6_RECVTCLASS`).
    pub fn ecn(&self, i: usize) -> Ecn {
        match self.meta.get(i).and_then(|m| m.ecn) {
            None => Ecn::NotEct,
            Some(EcnCodepoint::Ect0) => Ecn::Ect0,
            Some(EcnCodepoint::Ect1) => Ecn::Ect1,
            Some(EcnCodepoint::Ce) => Ecn::Ce,
        }
    }

    /// How long message `i` of the last receive has waited since it arrived: in the
    /// socket's queue, and behind the messages of its batch fed before it. Read from the
    /// kernel's arrival stamp (`SO_TIMESTAMPNS`, which quinn-udp turns on) against the wall
    /// clock; zero without a stamp, or when the clock stepped back in between.
    pub fn queued(&self, i: usize) -> Duration {
        let Some(arrived) = self.meta.get(i).and_then(|m| m.timestamp) else {
            return Duration::ZERO;
        };
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(arrived)
    }

    /// The datagrams of message `i` of the last receive, a GRO train cut at its stride, lent
    /// mutably: the engine rewrites in place what it delivers from them.
    pub fn datagrams(&mut self, i: usize) -> impl Iterator<Item = (&SocketAddr, &mut [u8])> {
        let (meta, buf) = (self.meta.get(i), self.bufs.get_mut(i));
        let (from, data, stride) = match (meta, buf) {
            (Some(m), Some(b)) => {
                let len = m.len.min(b.len());
                (&m.addr, &mut b[..len], m.stride.max(1))
            }
            _ => (&NOBODY, &mut [][..], 1),
        };
        data.chunks_mut(stride).map(move |d| (from, d))
    }

    /// Where datagram `datagram` of message `i` starts in the message's buffer.
    pub fn datagram_start(&self, i: usize, datagram: usize) -> Option<usize> {
        let m = self.meta.get(i)?;
        datagram.checked_mul(m.stride.max(1)).filter(|&s| s < m.len)
    }

    /// The buffer of message `i`, as received.
    pub fn buffer(&self, i: usize) -> Option<&[u8]> {
        self.bufs.get(i).map(Vec::as_slice)
    }

    /// Takes the buffer of message `i`, which packets delivered in place still lie in, and
    /// puts `spare` (a buffer [`Self::lend`] took before) in its place for the next receive.
    pub fn lend(&mut self, i: usize, spare: Vec<u8>) -> Option<Vec<u8>> {
        let b = self.bufs.get_mut(i)?;
        Some(std::mem::replace(b, spare))
    }

    /// A buffer for [`Self::lend`] to put in place of one it takes.
    pub fn spare() -> Vec<u8> {
        vec![0; MESSAGE_LEN]
    }
}

impl OverlaySocket {
    /// Binds `addr`; with `offload` off the socket still batches but neither joins nor cuts
    /// datagrams in the kernel.
    pub fn bind(addr: SocketAddr, offload: bool) -> io::Result<OverlaySocket> {
        let socket = UdpSocket::bind(addr)?;
        let state = UdpSocketState::new((&socket).into())?;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            // The FORCE form passes rmem_max/wmem_max with CAP_NET_ADMIN; without it the
            // plain form gets what the limit allows.
            if setsockopt(&socket, libc::SOL_SOCKET, force, SOCKET_BUFFER).is_err() {
                let _ = setsockopt(&socket, libc::SOL_SOCKET, plain, SOCKET_BUFFER);
            }
        }
        if !offload {
            // A refusal leaves GRO as it was, which `recv` handles either way.
            let _ = setsockopt(&socket, libc::SOL_UDP, libc::UDP_GRO, 0);
        }
        // quinn-udp asks for each datagram's destination address, which ocalad never reads,
        // and its control buffer (96 bytes) cannot hold that beside the arrival stamp, the GRO
        // segment size and the ECN field: the kernel cuts the last, the ECN field, off every
        // GRO train. Without the address the other three fit (80 bytes).
        let _ = match addr {
            SocketAddr::V4(_) => setsockopt(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 0),
            SocketAddr::V6(_) => setsockopt(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 0),
        };
        Ok(OverlaySocket {
            socket,
            state,
            offload,
            trains_refused: AtomicBool::new(false),
        })
    }

    /// The mio source, to register.
    pub fn source(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Datagrams one send may carry (1 without GSO).
    pub fn gso_segments(&self) -> usize {
        if self.offload && !self.trains_refused.load(Ordering::Relaxed) {
            self.state.max_gso_segments().min(MAX_TRAIN)
        } else {
            1
        }
    }

    /// Whether the kernel joins received datagrams (UDP GRO).
    pub fn gro(&self) -> bool {
        self.offload && self.state.gro_segments() > 1
    }

    /// One `recvmmsg` into `bufs` of no more messages than it takes to bring `datagrams`
    /// (one at least): how many messages arrived (each may be a GRO train; see
    /// [`RecvBufs::datagrams`]); `WouldBlock` when none was waiting.
    pub fn recv(&self, bufs: &mut RecvBufs, datagrams: usize) -> io::Result<usize> {
        let per_message = if self.gro() {
            self.state.gro_segments()
        } else {
            1
        };
        let messages = datagrams.div_ceil(per_message).max(1);
        let mut slices: arrayvec::ArrayVec<IoSliceMut<'_>, BATCH> = bufs
            .bufs
            .iter_mut()
            .take(messages)
            .map(|b| IoSliceMut::new(b.as_mut_slice()))
            .collect();
        self.state
            .recv((&self.socket).into(), &mut slices, &mut bufs.meta)
    }

    /// Sends one datagram to `to` with ECN field `ecn`.
    pub fn send(&self, to: SocketAddr, datagram: &[u8], ecn: Ecn) -> io::Result<()> {
        let t = Transmit {
            destination: to,
            ecn: match ecn {
                Ecn::NotEct => None,
                Ecn::Ect0 => Some(EcnCodepoint::Ect0),
                Ecn::Ect1 => Some(EcnCodepoint::Ect1),
                Ecn::Ce => Some(EcnCodepoint::Ce),
            },
            contents: datagram,
            segment_size: None,
            src_ip: None,
        };
        self.state.try_send((&self.socket).into(), &t)
    }

    /// Sends `datagrams` to `to` with ECN field `ecn`, each straight from its buffer: all
    /// of the first one's size but the last, which may be shorter, and at most
    /// [`Self::gso_segments`] of them. More than one leave as one train (`UDP_SEGMENT`) in
    /// one system call. If the kernel refuses the train, they leave one by one, and so do
    /// later trains.
    pub fn send_train(
        &self,
        to: SocketAddr,
        datagrams: &[IoSlice<'_>],
        ecn: Ecn,
    ) -> io::Result<()> {
        let (first, segment) = match datagrams {
            [] => return Ok(()),
            [one] => return self.send(to, one, ecn),
            [first, ..] => (first, first.len()),
        };
        if self.gso_segments() < datagrams.len() || u16::try_from(segment).is_err() {
            return self.send_each(to, datagrams, ecn);
        }
        match self.sendmsg_train(to, datagrams, segment as u16, ecn) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) => {
                if !self.trains_refused.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "the kernel refused a train of {} datagrams of {} bytes ({e}): \
                         datagrams leave one by one from now on",
                        datagrams.len(),
                        first.len()
                    );
                }
                self.send_each(to, datagrams, ecn)
            }
            r => r,
        }
    }

    fn send_each(&self, to: SocketAddr, datagrams: &[IoSlice<'_>], ecn: Ecn) -> io::Result<()> {
        datagrams.iter().try_for_each(|d| self.send(to, d, ecn))
    }

    /// One `sendmsg`: the datagrams as its `iovec`s, `UDP_SEGMENT` and the ECN field as
    /// control messages.
    fn sendmsg_train(
        &self,
        to: SocketAddr,
        datagrams: &[IoSlice<'_>],
        segment: u16,
        ecn: Ecn,
    ) -> io::Result<()> {
        let addr = socket2::SockAddr::from(to);
        let mut control = Control([0; 64]);
        // SAFETY: an all-zero msghdr is a valid empty one.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = addr.as_ptr().cast_mut().cast();
        msg.msg_namelen = addr.len();
        // IoSlice is guaranteed ABI-compatible with iovec on Unix; sendmsg only reads them.
        msg.msg_iov = datagrams.as_ptr().cast_mut().cast();
        msg.msg_iovlen = datagrams.len();
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        // IPv4 (or IPv4-mapped) destinations take the IPv4 header's TOS byte.
        let v4 = match to.ip() {
            IpAddr::V4(_) => true,
            IpAddr::V6(a) => a.to_ipv4_mapped().is_some(),
        };
        let (level, kind) = if v4 {
            (libc::IPPROTO_IP, libc::IP_TOS)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
        };
        // SAFETY: msg_control points at the 64-byte, cmsghdr-aligned buffer, and msg_controllen
        // says so; `push` writes only where CMSG_NXTHDR (which checks msg_controllen) put it.
        // The two messages (a u16 and an int) take 40 bytes with their headers. Every pointer
        // given to sendmsg lives until it returns, and sendmsg only reads through them.
        unsafe {
            let first = libc::CMSG_FIRSTHDR(&msg);
            let next = push(&msg, first, libc::SOL_UDP, libc::UDP_SEGMENT, segment);
            if next.is_null() {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            push(&msg, next, level, kind, libc::c_int::from(ecn.bits()));
            msg.msg_controllen = (libc::CMSG_SPACE(2) + libc::CMSG_SPACE(4)) as usize;
            loop {
                if libc::sendmsg(self.socket.as_raw_fd(), &msg, 0) >= 0 {
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_in_the_receive_queue_is_read_from_the_kernels_arrival_stamp() {
        let socket = OverlaySocket::bind(([127, 0, 0, 1], 0).into(), true).expect("a socket");
        let to = socket.socket.local_addr().expect("its address");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a sender");
        let mut bufs = RecvBufs::default();
        // The kernel turns arrival stamps on a moment after the first socket asks for them
        // (until then it stamps at the receive): a few tries at most.
        let waits: Vec<Duration> = (0..10)
            .map(|_| {
                sender.send_to(b"waits", to).expect("sent");
                std::thread::sleep(Duration::from_millis(30));
                assert_eq!(socket.recv(&mut bufs, BATCH).expect("received"), 1);
                bufs.queued(0)
            })
            .collect();
        assert!(
            waits
                .iter()
                .skip(3)
                .all(|w| (Duration::from_millis(30)..Duration::from_secs(5)).contains(w)),
            "{waits:?}"
        );
        assert_eq!(bufs.queued(1), Duration::ZERO, "no such message");
    }

    #[test]
    fn a_receive_takes_no_more_messages_than_its_datagrams_need() {
        let local: SocketAddr = ([127, 0, 0, 1], 0).into();
        // Without GRO each datagram is a message of its own.
        let sink = OverlaySocket::bind(local, false).expect("a socket");
        let to = sink.socket.local_addr().expect("its address");
        let sender = std::net::UdpSocket::bind(local).expect("a sender");
        for i in 0..3u8 {
            sender.send_to(&[i; 10], to).expect("sent");
        }
        std::thread::sleep(Duration::from_millis(30));
        let mut bufs = RecvBufs::default();
        assert_eq!(sink.recv(&mut bufs, 2).expect("received"), 2);
        assert_eq!(
            sink.recv(&mut bufs, 0).expect("received"),
            1,
            "one at least"
        );
        let last: Vec<&[u8]> = bufs.datagrams(0).map(|(_, d)| &*d).collect();
        assert_eq!(last, [&[2u8; 10][..]]);
    }

    #[test]
    fn datagrams_leave_and_arrive_with_their_ecn_field() {
        let v4: SocketAddr = ([127, 0, 0, 1], 0).into();
        let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, 0).into();
        for local in [v4, v6] {
            let from = OverlaySocket::bind(local, true).expect("a socket");
            let sink = OverlaySocket::bind(local, true).expect("a socket");
            let to = sink.socket.local_addr().expect("its address");
            let mut bufs = RecvBufs::default();
            for ecn in [Ecn::Ect0, Ecn::NotEct, Ecn::Ce, Ecn::Ect1] {
                // Two datagrams in one GSO send where the kernel offers it, arriving as one
                // GRO train: both carry the field.
                let parts = [IoSlice::new(&[7; 100]), IoSlice::new(&[8; 100])];
                from.send_train(to, &parts, ecn).expect("sent");
                let got = receive(&sink, &mut bufs, 2);
                assert_eq!(
                    got,
                    [(vec![7; 100], ecn), (vec![8; 100], ecn)],
                    "{local}: {ecn:?}"
                );
            }
        }
    }

    /// The next `count` datagrams to arrive at `sink`, with their ECN fields.
    fn receive(sink: &OverlaySocket, bufs: &mut RecvBufs, count: usize) -> Vec<(Vec<u8>, Ecn)> {
        let mut got = Vec::new();
        while got.len() < count {
            match sink.recv(bufs, count - got.len()) {
                Ok(n) => {
                    for m in 0..n {
                        let ecn = bufs.ecn(m);
                        got.extend(bufs.datagrams(m).map(|(_, d)| (d.to_vec(), ecn)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn a_train_leaves_from_many_buffers_and_one_the_kernel_refuses_leaves_one_by_one() {
        let local: SocketAddr = ([127, 0, 0, 1], 0).into();
        let from = OverlaySocket::bind(local, true).expect("a socket");
        let sink = OverlaySocket::bind(local, true).expect("a socket");
        let to = sink.socket.local_addr().expect("its address");
        let mut bufs = RecvBufs::default();
        let sizes = [300, 300, 300, 120];
        let data: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8 + 1; n])
            .collect();
        let parts: Vec<IoSlice<'_>> = data.iter().map(|d| IoSlice::new(d)).collect();
        let want: Vec<(Vec<u8>, Ecn)> = data.iter().map(|d| (d.clone(), Ecn::Ect0)).collect();
        assert!(from.gso_segments() > 1, "loopback takes trains");
        from.send_train(to, &parts, Ecn::Ect0).expect("sent");
        assert_eq!(receive(&sink, &mut bufs, 4), want);

        // UDP GSO needs the UDP checksum: a socket told not to compute one has its trains
        // refused with EINVAL.
        setsockopt(&from.socket, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).expect("SO_NO_CHECK");
        from.send_train(to, &parts, Ecn::Ect0)
            .expect("sent one by one");
        assert_eq!(receive(&sink, &mut bufs, 4), want);
        assert_eq!(from.gso_segments(), 1, "later trains leave one by one too");
    }
}
