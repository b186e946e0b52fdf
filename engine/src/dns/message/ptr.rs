//! Reverse lookups: which address a PTR question asks about, so the engine can answer
//! `dig -x <handle>` with the overlay name behind the handle (DESIGN §5).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address a reverse name stands for: `d.c.b.a.in-addr.arpa` or the 32-nibble
/// `….ip6.arpa` form (case-insensitive, trailing dot allowed). `None` for anything else,
/// including partial names (`c.b.a.in-addr.arpa`) and non-canonical octets (`01`), which
/// then go upstream like any other name.
pub fn ptr_target(name: &str) -> Option<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if let Some(rest) = strip_suffix_ci(name, ".in-addr.arpa") {
        return v4(rest).map(IpAddr::V4);
    }
    if let Some(rest) = strip_suffix_ci(name, ".ip6.arpa") {
        return v6(rest).map(IpAddr::V6);
    }
    None
}

fn strip_suffix_ci<'a>(name: &'a str, suffix: &str) -> Option<&'a str> {
    let split = name.len().checked_sub(suffix.len())?;
    let tail = name.get(split..)?;
    if tail.eq_ignore_ascii_case(suffix) {
        name.get(..split)
    } else {
        None
    }
}

fn v4(rest: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut labels = rest.split('.');
    // Labels are in reverse order: the first is the last octet.
    for slot in octets.iter_mut().rev() {
        let label = labels.next()?;
        let canonical = label == "0" || (!label.starts_with('0') && label.len() <= 3);
        if !canonical || !label.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = label.parse().ok()?;
    }
    labels.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn v6(rest: &str) -> Option<Ipv6Addr> {
    let mut value: u128 = 0;
    let mut count = 0;
    // Nibbles are in reverse order: the first label is the lowest nibble.
    for label in rest.split('.') {
        let &[digit] = label.as_bytes() else {
            return None;
        };
        let nibble = char::from(digit).to_digit(16)?;
        if count == 32 {
            return None;
        }
        value |= u128::from(nibble) << (4 * count);
        count += 1;
    }
    (count == 32).then_some(Ipv6Addr::from(value))
}
