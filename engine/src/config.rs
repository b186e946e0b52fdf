//! Engine configuration: what a node is called, which overlays it speaks, which names it
//! rewrites, where its handles come from, and the bounds on every table. Drivers read it
//! from TOML (`serde`), so field names are the config file's keys.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Everything an [`crate::Engine`] needs to start.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Overlays this node is attached to, each served by one overlay module (OC-D).
    pub overlays: Vec<OverlayConfig>,
    /// Whether this node relays paths for others (paper §3.2.1). Off by default: a node
    /// relays only where its owner says so.
    pub gateway: bool,
    /// Name rewriting rules applied before parsing (paper §3.3), first match wins.
    pub rules: Vec<RuleConfig>,
    /// Where handles and the node's own TUN addresses come from.
    pub handles: HandleConfig,
    /// Bounds on every table and timer.
    pub limits: Limits,
    /// Who this node is and whom it trusts (paper §3.4).
    pub security: SecurityConfig,
    /// `[middlebox]`: filter and log the paths that pass through this node (as a gateway,
    /// or as the middlebox an i3 host stacks its triggers through).
    pub middlebox: Option<crate::middlebox::FilterConfig>,
    /// `[legacy_server]`: end paths whose last hop is a plain IP host (`web.x.com.ip`) here,
    /// for the clients and destinations its rules allow. Needs `gateway = true`.
    pub legacy_server: Option<crate::legacy::LegacyServerConfig>,
    /// `[legacy_client]`: serve DNS and carry packets for a LAN of hosts that run no
    /// ocala; their lookups of overlay names set up paths from this node.
    pub legacy_client: Option<crate::legacy::LegacyClientConfig>,
}

/// How a path is protected end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Both ends authenticated by certificate; packets encrypted (ChaCha20-Poly1305, or
    /// AES-256-GCM where both ends offer it: [`CipherPolicy`]).
    #[default]
    Encrypt,
    /// Both ends authenticated; packets in the clear with a keyed BLAKE2s MAC.
    Auth,
    /// No authentication and no protection.
    Plain,
}

/// Identity, trust and policy. Keys and certificates are hex strings here; drivers read
/// them from files (the engine never touches a file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Protection for names without an `.oci` option: secure by default.
    pub default: Protection,
    /// Whether peers may open plain (unauthenticated) paths to this node.
    pub accept_plain: bool,
    /// Regular expressions over the certified names that may open paths to this node
    /// (`^alice\.udp$`); empty lets every name with a valid certificate in.
    pub allow: Vec<String>,
    /// This node's X25519 static private key (64 hex digits).
    pub static_key: Option<HexBytes>,
    /// This node's certificate from the CA (hex).
    pub certificate: Option<HexBytes>,
    /// This node's certificate with its delegations to the middleboxes it lets read its
    /// secure paths (hex, from `ocala ca delegate`). Presented in place of the bare
    /// certificate, which it must contain.
    pub chain: Option<HexBytes>,
    /// Whether to take paths whose far end lets middleboxes read them (it presents a chain
    /// with delegations). The far end holds the keys either way; this only refuses such
    /// paths outright.
    pub accept_readers: bool,
    /// Public keys of the CAs whose certificates this node accepts (64 hex digits each;
    /// several, so a CA can be rolled over without downtime).
    pub trust: Vec<HexBytes>,
    /// Unix time, in seconds, at engine instant zero: certificates have wall-clock validity
    /// and the engine has no clock of its own. Drivers set it.
    pub unix_time_at_zero: u64,
    /// Seconds after which a secure path's initiator sets up fresh keys (the old path
    /// carries packets in flight for a few seconds more).
    pub rekey_after_secs: u64,
    /// Which data ciphers this node offers for encrypted paths (`security::cipher`).
    pub cipher: CipherPolicy,
    /// Whether this machine runs AES-GCM in hardware, for [`CipherPolicy::Auto`]. Drivers
    /// set it (the engine never looks at the CPU); config files say `cipher` instead.
    #[serde(skip)]
    pub hardware_aes: bool,
    /// Whether this node's driver writes packets with partial checksums to its TUN (ocalad
    /// with TUN offloads): its peers may then send them so, flagged on secure paths and as
    /// the partial form on plain ones ([`crate::Packet::partial_checksum`]). Drivers set
    /// it; config files cannot.
    #[serde(skip)]
    pub partial_checksums: bool,
}

/// `security.cipher`: the data ciphers a node offers. ChaCha20-Poly1305 is always offered;
/// a path uses AES-256-GCM when both its ends offer that too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum CipherPolicy {
    /// AES-256-GCM too when the CPU runs it in hardware, where it is the faster of the two.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// AES-256-GCM too, whatever the CPU.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305 only.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            default: Protection::Encrypt,
            accept_plain: false,
            allow: Vec::new(),
            static_key: None,
            certificate: None,
            chain: None,
            accept_readers: true,
            trust: Vec::new(),
            unix_time_at_zero: 0,
            rekey_after_secs: 120,
            cipher: CipherPolicy::Auto,
            hardware_aes: false,
            partial_checksums: false,
        }
    }
}

/// Bytes written as hex in a config file.
#[derive(Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material into logs.
        write!(f, "HexBytes({} bytes)", self.0.len())
    }
}

impl std::str::FromStr for HexBytes {
    type Err = String;
    fn from_str(s: &str) -> Result<HexBytes, String> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err("odd number of hex digits".into());
        }
        digits
            .chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
                u8::from_str_radix(text, 16).map_err(|_| format!("'{text}' is not hex"))
            })
            .collect::<Result<Vec<u8>, String>>()
            .map(HexBytes)
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<HexBytes, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl HexBytes {
    /// Hex text of bytes, for drivers that write configs.
    pub fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One overlay this node is attached to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    /// The name suffix that selects this overlay (`udp` in `bob.udp`).
    pub name: String,
    /// Which module serves it (`udp`).
    pub module: String,
    /// This node's own host name in the overlay (`alice` makes it `alice.udp`).
    pub local_name: String,
    /// UDP port of peers whose address comes from a DNS lookup of their host name.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Seconds between keepalives on an otherwise quiet tunnel, so NAT bindings stay open.
    #[serde(default = "default_keepalive")]
    pub keepalive_secs: u64,
    /// Host name to socket address, consulted before DNS.
    #[serde(default)]
    pub address_book: BTreeMap<String, SocketAddr>,
    /// `[overlays.i3]`: servers and the server role, for `module = "i3"`.
    #[serde(default)]
    pub i3: crate::ocd::i3::I3Config,
    /// `[overlays.ron]`: the members' key and the probing, for `module = "ron"` (the members
    /// are this node and the address book).
    #[serde(default)]
    pub ron: crate::ocd::ron::RonConfig,
}

fn default_port() -> u16 {
    4789
}

fn default_keepalive() -> u64 {
    25
}

/// `pattern => replace`, as in `^(.*)\.company1\.com$ => $0_gw1.udp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A regular expression over the whole queried name (case-insensitive).
    pub pattern: String,
    /// Its replacement, with `$0`, `$1`, `${name}` expansion.
    pub replace: String,
}

/// Handle pools and the addresses the node itself answers on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandleConfig {
    /// IPv4 pool; default `198.18.0.0/15` (benchmarking space, never routed publicly).
    pub pool_v4: Prefix,
    /// IPv6 pool; default a ULA /48.
    pub pool_v6: Prefix,
    /// The node's own address on its TUN (destination of packets delivered to local apps).
    pub tun_v4: Ipv4Addr,
    /// The node's own IPv6 address on its TUN.
    pub tun_v6: Ipv6Addr,
    /// Where apps send DNS queries (the sentinel address).
    pub dns_v4: Ipv4Addr,
    /// IPv6 sentinel.
    pub dns_v6: Ipv6Addr,
    /// A handle unused (no DNS query, no packet) for this long is released (paper §6.1.1).
    pub idle_timeout_secs: u64,
    /// Address negotiation (paper §6.1.2): propose this node's TUN addresses (or a LAN
    /// client's own) to the far ends of the paths it opens, so their apps see them
    /// unrewritten where they are free there (FTP's PORT then needs no rewriting). Useful
    /// only when hosts have TUN addresses of their own (`tun_v4`/`tun_v6` inside the pools),
    /// not the default every node shares; off by default, since setups then carry the
    /// addresses in the clear. Far ends always honour a proposal they can.
    pub negotiate: bool,
}

impl Default for HandleConfig {
    fn default() -> Self {
        HandleConfig {
            pool_v4: Prefix::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15),
            pool_v6: Prefix::new(
                IpAddr::V6(Ipv6Addr::new(0xfd6f, 0x6361, 0x6c61, 0, 0, 0, 0, 0)),
                48,
            ),
            tun_v4: Ipv4Addr::new(198, 18, 0, 1),
            tun_v6: Ipv6Addr::new(0xfd6f, 0x6361, 0x6c61, 0, 0, 0, 0, 1),
            dns_v4: Ipv4Addr::new(198, 18, 0, 2),
            dns_v6: Ipv6Addr::new(0xfd6f, 0x6361, 0x6c61, 0, 0, 0, 0, 2),
            idle_timeout_secs: 7200,
            negotiate: false,
        }
    }
}

/// Bounds, so no input can grow a table without limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Paths (end and relay halves together).
    pub max_paths: usize,
    /// Handles bound to names.
    pub max_handles: usize,
    /// Packets held per path while it comes up.
    pub pending_packets: usize,
    /// DNS queries from apps waiting for a path.
    pub pending_queries: usize,
    /// Queries relayed to the upstream resolver at once.
    pub upstream_in_flight: usize,
    /// Seconds before an upstream query is answered SERVFAIL.
    pub upstream_timeout_secs: u64,
    /// Setup transmissions before a path setup fails.
    pub setup_attempts: u32,
    /// First setup retransmission timeout, doubled each attempt.
    pub setup_rto_ms: u64,
    /// Hops a path may have (elements in a name, gateways a setup may cross).
    pub max_hops: u8,
    /// Unanswered keepalive intervals after which a tunnel counts as dead.
    pub keepalive_misses: u32,
    /// Largest IP packet accepted from apps or peers.
    pub max_packet: usize,
    /// Paths holding state for unproven peers (half-open handshakes, relays waiting for the
    /// next hop). From half of this on, setups must echo a stateless cookie; at the bound
    /// the oldest half-open handshake makes room.
    pub max_half_open: usize,
    /// Largest IP packet a path carries: the underlay's MTU less the IP, UDP and OCALA
    /// headers (1500 − 40 − 8 − 5 = 1447 over IPv6), rounded down. An app's packet larger
    /// than this that may not be fragmented gets ICMP "fragmentation needed" / "packet too
    /// big" back, so TCP lowers its segment size instead of stalling. Drivers set their TUN
    /// MTU to at most this.
    pub path_mtu: u16,
    /// Microseconds a datagram may wait in an overlay socket's receive queue before the wait
    /// counts as congestion (CoDel's target); 0 turns congestion signals off.
    pub queue_target_us: u64,
    /// Microseconds the wait must stay above target before the first congestion signal,
    /// and the scale of the ones after (CoDel's interval).
    pub queue_interval_us: u64,
}

impl Limits {
    /// The longest a path may take to come up before it must have failed: every setup
    /// transmission with its doubled timeouts, and as long again for the tunnel to the first
    /// hop and the hops beyond.
    pub fn setup_lifetime(&self) -> std::time::Duration {
        let rto = std::time::Duration::from_millis(self.setup_rto_ms);
        rto.saturating_mul(
            1u32.checked_shl(self.setup_attempts + 1)
                .unwrap_or(u32::MAX),
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_paths: 65_536,
            max_handles: 65_536,
            pending_packets: 32,
            pending_queries: 1024,
            upstream_in_flight: 512,
            upstream_timeout_secs: 5,
            setup_attempts: 5,
            setup_rto_ms: 200,
            max_hops: 8,
            keepalive_misses: 3,
            max_packet: 65_535,
            max_half_open: 1024,
            path_mtu: 1400,
            queue_target_us: 500,
            queue_interval_us: 5000,
        }
    }
}

/// An address prefix such as `198.18.0.0/15`, written as a string in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub len: u8,
}

impl Prefix {
    /// A prefix with host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let len = len.min(if addr.is_ipv4() { 32 } else { 128 });
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len }
    }

    /// Whether `ip` lies inside the prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Prefix::new(ip, self.len).addr == self.addr && ip.is_ipv4() == self.addr.is_ipv4()
    }

    /// Whether the two prefixes share an address (one holds the other's network).
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a prefix like 198.18.0.0/15"))?;
        let addr: IpAddr = addr.parse().map_err(|e| format!("'{addr}': {e}"))?;
        let len: u8 = len.parse().map_err(|e| format!("'{len}': {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix length {len} exceeds {max}"));
        }
        Ok(Prefix::new(addr, len))
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A configuration the engine cannot run with, naming the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key, as a dotted path (`overlays[1].name`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parses_and_never_prints() {
        let h: HexBytes = "00ff 10".parse().unwrap();
        assert_eq!(h.0, vec![0, 255, 16]);
        assert_eq!(format!("{h:?}"), "HexBytes(3 bytes)");
        assert!("abc".parse::<HexBytes>().is_err());
        assert!("zz".parse::<HexBytes>().is_err());
        assert_eq!(HexBytes::to_hex(&[1, 171]), "01ab");
    }

    #[test]
    fn prefixes_parse_and_contain() {
        let p: Prefix = "198.18.5.7/15".parse().unwrap();
        assert_eq!(p.to_string(), "198.18.0.0/15");
        assert!(p.contains("198.19.255.255".parse().unwrap()));
        assert!(!p.contains("198.20.0.0".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense".parse::<Prefix>().is_err());
    }
}
