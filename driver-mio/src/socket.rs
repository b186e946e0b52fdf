//! An overlay's UDP socket, batched: `recvmmsg` with UDP GRO in, `sendmsg` with UDP GSO
//! (`UDP_SEGMENT`) out, through `quinn-udp`, which also finds out at start (and again on the
//! first refusal) what the kernel offers. One system call then moves up to 64 datagrams each
//! way instead of one.

use mio::net::UdpSocket;
use ocala_engine::Ecn;
use quinn_udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Datagrams a receive batch holds without GRO (`recvmmsg`'s message count).
pub const BATCH: usize = quinn_udp::BATCH_SIZE;
/// Room per message: a GRO train of 64 KiB, or one datagram of the largest size.
const MESSAGE_LEN: usize = 65_536;
/// Socket buffer size asked for each way. The kernel's default (about 200 KiB) holds three
/// GSO trains; a TCP flow at several Gbit/s overflows it whenever the daemon is scheduled
/// out, and each overflow loses a whole train.
const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// A bound overlay socket and what its kernel offers.
pub struct OverlaySocket {
    socket: UdpSocket,
    state: UdpSocketState,
    offload: bool,
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

    /// The datagrams of message `i` of the last receive: a GRO train cut at its stride.
    pub fn datagrams(&self, i: usize) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let (meta, buf) = (self.meta.get(i), self.bufs.get(i));
        let (from, data, stride) = match (meta, buf) {
            (Some(m), Some(b)) => (m.addr, b.get(..m.len).unwrap_or(b), m.stride.max(1)),
            _ => (SocketAddr::from(([0, 0, 0, 0], 0)), &[][..], 1),
        };
        data.chunks(stride).map(move |d| (from, d))
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
        })
    }

    /// The mio source, to register.
    pub fn source(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Datagrams one send may carry (1 without GSO).
    pub fn gso_segments(&self) -> usize {
        if self.offload {
            self.state.max_gso_segments()
        } else {
            1
        }
    }

    /// Whether the kernel joins received datagrams (UDP GRO).
    pub fn gro(&self) -> bool {
        self.offload && self.state.gro_segments() > 1
    }

    /// One `recvmmsg` into `bufs`: how many messages arrived (each may be a GRO train; see
    /// [`RecvBufs::datagrams`]); `WouldBlock` when none was waiting.
    pub fn recv(&self, bufs: &mut RecvBufs) -> io::Result<usize> {
        let mut slices: arrayvec::ArrayVec<IoSliceMut<'_>, BATCH> = bufs
            .bufs
            .iter_mut()
            .map(|b| IoSliceMut::new(b.as_mut_slice()))
            .collect();
        self.state
            .recv((&self.socket).into(), &mut slices, &mut bufs.meta)
    }

    /// Sends `contents` to `to` with ECN field `ecn`; with `segment` set, as datagrams of
    /// that size (the last may be shorter) in one system call.
    pub fn send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
        ecn: Ecn,
    ) -> io::Result<()> {
        let t = Transmit {
            destination: to,
            ecn: match ecn {
                Ecn::NotEct => None,
                Ecn::Ect0 => Some(EcnCodepoint::Ect0),
                Ecn::Ect1 => Some(EcnCodepoint::Ect1),
                Ecn::Ce => Some(EcnCodepoint::Ce),
            },
            contents,
            segment_size: segment,
            src_ip: None,
        };
        self.state.try_send((&self.socket).into(), &t)
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
                assert_eq!(socket.recv(&mut bufs).expect("received"), 1);
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
                let segment = (from.gso_segments() > 1).then_some(100);
                from.send(to, &[7; 200], segment, ecn).expect("sent");
                let want = match segment {
                    Some(_) => vec![(100, ecn); 2],
                    None => vec![(200, ecn)],
                };
                let mut got = Vec::new();
                while got.len() < want.len() {
                    match sink.recv(&mut bufs) {
                        Ok(n) => got.extend((0..n).flat_map(|m| {
                            let ecn = bufs.ecn(m);
                            bufs.datagrams(m)
                                .map(move |(_, d)| (d.len(), ecn))
                                .collect::<Vec<_>>()
                        })),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                assert_eq!(got, want, "{local}: {ecn:?}");
            }
        }
    }
}
