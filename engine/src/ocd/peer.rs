//! Who a datagram came from, in an overlay module's own terms. Over udp a peer is its socket
//! address; over i3 every datagram arrives from a server, and the sender is known only by the
//! trigger it asked to be answered at. OC-I treats the token as opaque: it hands it back to
//! the module for `accept` and `reply`, and binds setup cookies to its bytes, so a cookie
//! proves the sender can receive at what it claims.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An opaque return address chosen by a module (at most [`Peer::MAX`] bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer {
    len: u8,
    bytes: [u8; Peer::MAX],
}

impl Peer {
    /// The longest token: a 256-bit i3 id and a tag byte.
    pub const MAX: usize = 33;

    /// A token from a module's bytes; `None` when longer than [`Peer::MAX`].
    pub fn new(token: &[u8]) -> Option<Peer> {
        let mut bytes = [0u8; Peer::MAX];
        bytes.get_mut(..token.len())?.copy_from_slice(token);
        Some(Peer {
            len: token.len() as u8,
            bytes,
        })
    }

    /// A 256-bit id as a token (always fits).
    pub fn id(id: &[u8; 32]) -> Peer {
        let mut bytes = [0u8; Peer::MAX];
        bytes[..32].copy_from_slice(id);
        Peer { len: 32, bytes }
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A socket address as a token: family tag, address, port.
    pub fn socket(addr: SocketAddr) -> Peer {
        let mut bytes = [0u8; Peer::MAX];
        let len = match addr.ip() {
            IpAddr::V4(a) => {
                bytes[0] = 4;
                bytes[1..5].copy_from_slice(&a.octets());
                bytes[5..7].copy_from_slice(&addr.port().to_be_bytes());
                7
            }
            IpAddr::V6(a) => {
                bytes[0] = 6;
                bytes[1..17].copy_from_slice(&a.octets());
                bytes[17..19].copy_from_slice(&addr.port().to_be_bytes());
                19
            }
        };
        Peer { len, bytes }
    }

    /// The socket address a [`Peer::socket`] token holds.
    pub fn to_socket(&self) -> Option<SocketAddr> {
        let b = self.as_bytes();
        match (b.first(), b.len()) {
            (Some(4), 7) => {
                let ip = Ipv4Addr::new(b[1], b[2], b[3], b[4]);
                Some(SocketAddr::new(ip.into(), u16::from_be_bytes([b[5], b[6]])))
            }
            (Some(6), 19) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[1..17]);
                let port = u16::from_be_bytes([b[17], b[18]]);
                Some(SocketAddr::new(Ipv6Addr::from(o).into(), port))
            }
            _ => None,
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_socket() {
            Some(a) => write!(f, "Peer({a})"),
            None => {
                f.write_str("Peer(")?;
                for b in self.as_bytes().iter().take(8) {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("..)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_tokens_round_trip_and_differ_by_port() {
        for s in ["192.0.2.1:4789", "[2001:db8::7]:53"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(Peer::socket(a).to_socket(), Some(a));
        }
        let a = Peer::socket("192.0.2.1:1".parse().unwrap());
        let b = Peer::socket("192.0.2.1:2".parse().unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn opaque_tokens_keep_their_bytes_and_are_not_sockets() {
        let id = [7u8; 33];
        let p = Peer::new(&id).unwrap();
        assert_eq!(p.as_bytes(), &id);
        assert_eq!(p.to_socket(), None);
        assert!(Peer::new(&[0u8; 34]).is_none());
    }
}
