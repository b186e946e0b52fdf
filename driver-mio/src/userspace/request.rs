//! The two proxy handshakes apps speak: SOCKS5 (RFC 1928, no authentication, CONNECT) and
//! HTTP CONNECT. Pure parsing of what the client sent so far, so partial and hostile input
//! is data: `Incomplete` until a whole message is there, `Bad` with a reason otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest handshake a client may send before it is refused.
pub const MAX_HANDSHAKE: usize = 8 * 1024;

/// Where a client wants to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A name to resolve (through the engine, so overlay names work).
    Name(String, u16),
    Addr(SocketAddr),
}

/// What the bytes so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Incomplete,
    /// The message and how many bytes it took.
    Done(T, usize),
    Bad(&'static str),
}

/// SOCKS5 reply codes.
pub const SUCCEEDED: u8 = 0;
pub const GENERAL_FAILURE: u8 = 1;
pub const HOST_UNREACHABLE: u8 = 4;
pub const CONNECTION_REFUSED: u8 = 5;
pub const COMMAND_NOT_SUPPORTED: u8 = 7;
pub const ADDRESS_NOT_SUPPORTED: u8 = 8;

/// The server's choice after a greeting: no authentication, or none acceptable.
pub const NO_AUTH: [u8; 2] = [5, 0];
pub const NO_ACCEPTABLE_METHOD: [u8; 2] = [5, 0xff];

/// A SOCKS5 greeting: whether it offers "no authentication".
pub fn socks_greeting(b: &[u8]) -> Parsed<bool> {
    match b {
        [] | [5] => Parsed::Incomplete,
        [5, n, methods @ ..] => {
            let n = usize::from(*n);
            match methods.get(..n) {
                Some(m) => Parsed::Done(m.contains(&0), 2 + n),
                None => Parsed::Incomplete,
            }
        }
        _ => Parsed::Bad("not SOCKS version 5"),
    }
}

/// A SOCKS5 request. Only CONNECT is served; anything else is refused with its code.
pub fn socks_request(b: &[u8]) -> Result<Parsed<Target>, u8> {
    let (&[ver, cmd, _rsv, atyp], rest) = match b.split_first_chunk::<4>() {
        Some((h, rest)) => (h, rest),
        None => return Ok(Parsed::Incomplete),
    };
    if ver != 5 {
        return Ok(Parsed::Bad("not SOCKS version 5"));
    }
    let (addr_len, skip) = match atyp {
        1 => (4, 0),
        4 => (16, 0),
        3 => match rest.first() {
            Some(n) => (usize::from(*n), 1),
            None => return Ok(Parsed::Incomplete),
        },
        _ => return Err(ADDRESS_NOT_SUPPORTED),
    };
    let total = 4 + skip + addr_len + 2;
    let Some(body) = b.get(4 + skip..total) else {
        return Ok(Parsed::Incomplete);
    };
    if cmd != 1 {
        return Err(COMMAND_NOT_SUPPORTED);
    }
    let (addr, port) = body.split_at(addr_len);
    let port = u16::from_be_bytes([port[0], port[1]]);
    let target = match atyp {
        1 => Target::Addr(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            port,
        )),
        4 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(addr);
            Target::Addr(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => match std::str::from_utf8(addr) {
            Ok(name) if !name.is_empty() => named(name, port),
            _ => return Ok(Parsed::Bad("the name is not UTF-8")),
        },
    };
    Ok(Parsed::Done(target, total))
}

/// A name that may be an address literal.
fn named(host: &str, port: u16) -> Target {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
        Err(_) => Target::Name(host.to_ascii_lowercase(), port),
    }
}

/// A SOCKS5 reply with `code`; the bound address is not meaningful here and is zero.
pub fn socks_reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// An HTTP CONNECT request, headers included (they are read and ignored).
pub fn http_connect(b: &[u8]) -> Parsed<Target> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if b.len() > MAX_HANDSHAKE {
            Parsed::Bad("request too long")
        } else {
            Parsed::Incomplete
        };
    };
    let head = String::from_utf8_lossy(&b[..end]);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    let (Some("CONNECT"), Some(authority)) = (words.next(), words.next()) else {
        return Parsed::Bad("only CONNECT is served");
    };
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Parsed::Bad("CONNECT needs host:port");
    };
    match port.parse::<u16>() {
        Ok(port) if !host.is_empty() => Parsed::Done(named(host, port), end + 4),
        _ => Parsed::Bad("CONNECT needs host:port"),
    }
}

/// The HTTP answer for a CONNECT: established, or the reason it was not.
pub fn http_reply(ok: bool, why: &str) -> String {
    if ok {
        "HTTP/1.1 200 Connection established\r\n\r\n".to_string()
    } else {
        format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{why}",
            why.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks_handshakes_parse_whole_or_wait_for_more() {
        assert_eq!(socks_greeting(&[5]), Parsed::Incomplete);
        assert_eq!(socks_greeting(&[5, 2, 0]), Parsed::Incomplete);
        assert_eq!(socks_greeting(&[5, 2, 2, 0]), Parsed::Done(true, 4));
        assert_eq!(socks_greeting(&[5, 1, 2]), Parsed::Done(false, 3));
        assert!(matches!(socks_greeting(&[4, 1, 0]), Parsed::Bad(_)));

        let mut r = vec![5, 1, 0, 3, 7];
        r.extend_from_slice(b"bob.udp");
        r.extend_from_slice(&8000u16.to_be_bytes());
        for cut in 0..r.len() {
            assert_eq!(
                socks_request(&r[..cut]),
                Ok(Parsed::Incomplete),
                "cut at {cut}"
            );
        }
        let want = Target::Name("bob.udp".into(), 8000);
        assert_eq!(socks_request(&r), Ok(Parsed::Done(want, r.len())));
        let v4 = [5, 1, 0, 1, 198, 18, 0, 3, 0, 80];
        let want = Target::Addr("198.18.0.3:80".parse().unwrap());
        assert_eq!(socks_request(&v4), Ok(Parsed::Done(want, 10)));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"fd6f::3".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0, 22]);
        let want = Target::Addr("[fd6f::3]:22".parse().unwrap());
        assert_eq!(socks_request(&v6), Ok(Parsed::Done(want, 22)));
    }

    #[test]
    fn socks_refusals_carry_their_codes() {
        assert_eq!(
            socks_request(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 80]),
            Err(COMMAND_NOT_SUPPORTED)
        );
        assert_eq!(socks_request(&[5, 1, 0, 9, 0]), Err(ADDRESS_NOT_SUPPORTED));
        assert!(matches!(socks_request(&[4, 1, 0, 1]), Ok(Parsed::Bad(_))));
        assert!(matches!(
            socks_request(&[5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80]),
            Ok(Parsed::Bad(_))
        ));
        let literal = [&[5u8, 1, 0, 3, 8][..], b"10.0.0.1", &[0, 80]].concat();
        let want = Target::Addr("10.0.0.1:80".parse().unwrap());
        assert_eq!(
            socks_request(&literal),
            Ok(Parsed::Done(want, literal.len()))
        );
    }

    #[test]
    fn http_connect_reads_the_whole_head() {
        let req = b"CONNECT Bob.UDP:8000 HTTP/1.1\r\nHost: bob.udp:8000\r\n\r\nextra";
        assert_eq!(http_connect(&req[..20]), Parsed::Incomplete);
        let want = Target::Name("bob.udp".into(), 8000);
        assert_eq!(http_connect(req), Parsed::Done(want, req.len() - 5));
        let v6 = b"CONNECT [fd6f::3]:443 HTTP/1.1\r\n\r\n";
        let want = Target::Addr("[fd6f::3]:443".parse().unwrap());
        assert_eq!(http_connect(v6), Parsed::Done(want, v6.len()));
        assert!(matches!(
            http_connect(b"GET / HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            http_connect(b"CONNECT bob HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            http_connect(&[b'a'; MAX_HANDSHAKE + 1]),
            Parsed::Bad(_)
        ));
        assert!(http_reply(false, "no path").ends_with("\r\n\r\nno path"));
    }
}
