//! The engine's side of end-to-end security: starting, answering and finishing the Noise
//! handshake that rides in path setup, and checking the peer's certificate (or chain of
//! delegations) against the trust bundle, its name and this node's policy; then granting
//! the path's keys to the middleboxes either end certified. Gateways take no part; they relay.

use super::chain::CHAIN_MAGIC;
use super::grant::{self, ReadKeys};
use super::noise::{self, MAX_HANDSHAKE};
use super::parameters::{Answer, Offer};
use super::session::{Secure, Stage};
use super::{Certificate, Chain, TrustBundle};
use crate::config::{ConfigError, Protection, SecurityConfig};
use crate::engine::Engine;
use crate::oci::setup::Failure;
use crate::wire::message::{Grant, Message, RejectReason, Setup};
use regex::Regex;

/// Option bits of a setup that say how the path is protected (the Noise prologue covers them).
pub(crate) const SECURITY_BITS: u8 = 0x07;
/// Option bit: the setup's handshake field starts with the responder's cookie.
pub(crate) const COOKIE_BIT: u8 = 0x80;

/// Why a peer's handshake message was not taken.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// It did not decrypt: altered on the way, or forged. For the accept (Noise XX message
    /// 2, which starts with a plaintext ephemeral and re-keys from it) snow's restored state
    /// reads the genuine message, which retransmission brings; the confirm (message 3)
    /// cannot be read again.
    Tampered,
    /// It was read and refused (certificate, name, policy): the path fails.
    Refused(Failure),
}

impl From<Failure> for HandshakeError {
    fn from(f: Failure) -> HandshakeError {
        HandshakeError::Refused(f)
    }
}

/// Who this node is: its static key and the certificate that binds its names to it.
pub(crate) struct Identity {
    pub(crate) static_private: [u8; 32],
    /// What the handshake presents: the certificate, or the chain that carries it with
    /// delegations.
    pub(crate) certificate: Vec<u8>,
    /// The middleboxes this node's chain certifies to read its paths.
    pub(crate) readers: Vec<Reader>,
}

/// A middlebox an end point certified to read its secure paths (a checked delegation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reader {
    pub(crate) name: String,
    pub(crate) static_key: [u8; 32],
}

fn readers_of(chain: &Chain) -> Vec<Reader> {
    chain
        .delegations
        .iter()
        .map(|d| Reader {
            name: d.middlebox_name.clone(),
            static_key: d.middlebox_static_key,
        })
        .collect()
}

/// Identity, trust and policy, checked once at start.
pub(crate) struct Credentials {
    pub(crate) identity: Option<Identity>,
    /// `None` when no CA is configured: secure paths then cannot authenticate anyone.
    pub(crate) trust: Option<TrustBundle>,
    pub(crate) allow: Vec<Regex>,
}

impl Credentials {
    pub(crate) fn from_config(cfg: &SecurityConfig) -> Result<Credentials, ConfigError> {
        let identity = match (&cfg.static_key, &cfg.certificate) {
            (None, None) if cfg.chain.is_some() => {
                return Err(ConfigError::new(
                    "security.chain",
                    "a chain needs security.static_key and security.certificate",
                ))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "security.certificate",
                    "a static key needs its certificate",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "security.static_key",
                    "a certificate needs its static key",
                ))
            }
            (Some(k), Some(c)) => {
                let static_private: [u8; 32] = k.0.as_slice().try_into().map_err(|_| {
                    ConfigError::new("security.static_key", "must be 32 bytes (64 hex digits)")
                })?;
                let cert = Certificate::decode(&c.0)
                    .map_err(|e| ConfigError::new("security.certificate", e.to_string()))?;
                if cert.static_key() != &noise::public_key(&static_private) {
                    return Err(ConfigError::new(
                        "security.certificate",
                        "certifies another key than security.static_key",
                    ));
                }
                let (certificate, readers) = match &cfg.chain {
                    None => (c.0.clone(), Vec::new()),
                    Some(bytes) => {
                        let chain = Chain::decode(&bytes.0)
                            .map_err(|e| ConfigError::new("security.chain", e.to_string()))?;
                        if chain.endpoint != cert {
                            return Err(ConfigError::new(
                                "security.chain",
                                "carries another certificate than security.certificate",
                            ));
                        }
                        (bytes.0.clone(), readers_of(&chain))
                    }
                };
                Some(Identity {
                    static_private,
                    certificate,
                    readers,
                })
            }
        };
        let mut cas = Vec::new();
        for (i, t) in cfg.trust.iter().enumerate() {
            let key: [u8; 32] = t.0.as_slice().try_into().map_err(|_| {
                ConfigError::new(
                    format!("security.trust[{i}]"),
                    "must be 32 bytes (64 hex digits)",
                )
            })?;
            cas.push(key);
        }
        let trust = match cas.is_empty() {
            true => None,
            false => Some(
                TrustBundle::new(&cas)
                    .map_err(|e| ConfigError::new("security.trust", e.to_string()))?,
            ),
        };
        let mut allow = Vec::new();
        for (i, p) in cfg.allow.iter().enumerate() {
            allow
                .push(Regex::new(&format!("(?i){p}")).map_err(|e| {
                    ConfigError::new(format!("security.allow[{i}]"), e.to_string())
                })?);
        }
        Ok(Credentials {
            identity,
            trust,
            allow,
        })
    }
}

/// The protection a setup's option bits ask for.
pub(crate) fn protection_of(options: u8) -> Protection {
    match options & SECURITY_BITS {
        1 => Protection::Encrypt,
        2 => Protection::Auth,
        _ => Protection::Plain,
    }
}

/// The option bits for a protection.
pub(crate) fn bits_of(p: Protection) -> u8 {
    match p {
        Protection::Encrypt => 1,
        Protection::Auth => 2,
        Protection::Plain => 4,
    }
}

fn refused(text: impl Into<String>) -> Failure {
    Failure {
        reason: RejectReason::Refused,
        text: text.into(),
    }
}

impl Engine {
    /// Wall-clock seconds now, for certificate validity.
    fn unix_now(&self) -> u64 {
        self.cfg
            .security
            .unix_time_at_zero
            .saturating_add(self.now.as_nanos() / 1_000_000_000)
    }

    fn handshake_seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        seed
    }

    /// The data ciphers this node offers, and whether it takes partial checksums.
    fn offer(&self) -> Offer {
        let s = &self.cfg.security;
        Offer::of(s.cipher, s.hardware_aes, s.partial_checksums)
    }

    /// Initiator: the handshake state and the first message, which rides in the setup with
    /// this node's offer of data ciphers.
    pub(crate) fn begin_handshake(
        &mut self,
        mode: Protection,
        path_id: u64,
        peer_name: &str,
    ) -> Result<Box<Secure>, Failure> {
        let seed = self.handshake_seed();
        let id = self.credentials.identity.as_ref().ok_or_else(|| {
            refused("this node has no certificate (security.certificate) for secure paths")
        })?;
        let mut hs = noise::start(true, &id.static_private, bits_of(mode), path_id, seed)
            .map_err(|e| refused(e.to_string()))?;
        let mut msg = vec![0u8; MAX_HANDSHAKE];
        let n = hs
            .write_message(&self.offer().payload(), &mut msg)
            .map_err(|e| refused(e.to_string()))?;
        msg.truncate(n);
        Ok(Box::new(Secure::new(mode, hs, msg, peer_name.to_string())))
    }

    /// The name an initiator must be certified for: the destination element of the name
    /// that leads back, as its module names the host (`alice.mindelay.ron` is certified as
    /// `alice.ron`) — or, for a LAN client behind a legacy client gateway
    /// (`10.1.0.10.ip_gw.udp`), the gateway, which speaks for it.
    pub(crate) fn initiator_identity(&mut self, return_name: &str) -> String {
        let destination = match self.parse(return_name) {
            Ok(Some(n)) => crate::legacy::end_hop(&n.hops).cloned(),
            _ => None,
        };
        match destination {
            Some(hop) => self.identity_of(&hop),
            None => return_name.split('_').next().unwrap_or(return_name).into(),
        }
        .to_ascii_lowercase()
    }

    /// Responder: reads the setup's first message (and the initiator's offer of data ciphers)
    /// and answers with the second, which carries the cipher chosen, if offered one, and this
    /// node's certificate.
    pub(crate) fn answer_handshake(
        &mut self,
        s: &Setup<'_>,
        handshake: &[u8],
    ) -> Result<Box<Secure>, Failure> {
        let mode = protection_of(s.options);
        let peer = self.initiator_identity(s.return_name);
        let seed = self.handshake_seed();
        let id = self
            .credentials
            .identity
            .as_ref()
            .ok_or_else(|| refused("no certificate here for secure paths"))?;
        let mut hs = noise::start(
            false,
            &id.static_private,
            s.options & SECURITY_BITS,
            s.path_id,
            seed,
        )
        .map_err(|e| refused(e.to_string()))?;
        let mut scratch = [0u8; MAX_HANDSHAKE];
        let n = hs
            .read_message(handshake, &mut scratch)
            .map_err(|_| refused("malformed handshake"))?;
        let theirs = Offer::read(scratch.get(..n).unwrap_or(&[])).map_err(refused)?;
        let answer = theirs.map(|theirs| self.offer().answer(theirs));
        let payload = match answer {
            Some(a) => a.with_certificate(&id.certificate),
            None => id.certificate.clone(),
        };
        let mut msg = vec![0u8; MAX_HANDSHAKE];
        let n = hs
            .write_message(&payload, &mut msg)
            .map_err(|e| refused(e.to_string()))?;
        msg.truncate(n);
        let mut secure = Secure::new(mode, hs, msg, peer);
        if let (Some(a), Some(theirs)) = (answer, theirs) {
            secure.cipher = a.cipher;
            secure.peer_partial = theirs.partial;
        }
        Ok(Box::new(secure))
    }

    /// Initiator: checks the accept's handshake message and the responder's certificate,
    /// and prepares the third message. After this the path can carry data.
    pub(crate) fn finish_initiator(
        &mut self,
        secure: &mut Secure,
        handshake: &[u8],
    ) -> Result<(), HandshakeError> {
        if handshake.is_empty() {
            return Err(
                refused("the peer answered without a handshake (a downgrade to plain?)").into(),
            );
        }
        self.read_peer(secure, handshake, false)?;
        let Stage::Handshake(hs) = &mut secure.stage else {
            return Err(refused("handshake already finished").into());
        };
        let id = self
            .credentials
            .identity
            .as_ref()
            .ok_or_else(|| refused("no certificate"))?;
        let mut msg = vec![0u8; MAX_HANDSHAKE];
        let n = hs
            .write_message(&id.certificate, &mut msg)
            .map_err(|e| refused(e.to_string()))?;
        msg.truncate(n);
        secure.message = msg;
        add_readers(&mut secure.readers, id.readers.clone());
        Ok(self.establish(secure)?)
    }

    /// Responder: checks the confirm's handshake message and the initiator's certificate.
    pub(crate) fn finish_responder(
        &mut self,
        secure: &mut Secure,
        handshake: &[u8],
    ) -> Result<(), HandshakeError> {
        self.read_peer(secure, handshake, true)?;
        Ok(self.establish(secure)?)
    }

    /// Reads the peer's handshake message, whose payload is its certificate, and checks the
    /// certificate. As the responder (`policy`: reading the confirm) the allow list applies
    /// too; as the initiator (reading the accept) the payload starts with the data cipher
    /// the responder chose, if it did.
    fn read_peer(
        &self,
        secure: &mut Secure,
        handshake: &[u8],
        policy: bool,
    ) -> Result<(), HandshakeError> {
        let Stage::Handshake(hs) = &mut secure.stage else {
            return Err(refused("handshake already finished").into());
        };
        let mut payload = vec![0u8; MAX_HANDSHAKE];
        let n = hs
            .read_message(handshake, &mut payload)
            .map_err(|_| HandshakeError::Tampered)?;
        let remote = hs.get_remote_static().unwrap_or(&[]).to_vec();
        let mut presented = payload.get(..n).unwrap_or(&[]);
        if !policy {
            let (answer, rest) = Answer::read(self.offer(), presented).map_err(refused)?;
            secure.cipher = answer.cipher;
            secure.peer_partial = answer.partial;
            presented = rest;
        }
        let readers = self.check_peer(presented, &remote, &secure.peer_name, policy)?;
        add_readers(&mut secure.readers, readers);
        Ok(())
    }

    fn establish(&self, secure: &mut Secure) -> Result<(), Failure> {
        let Stage::Handshake(hs) = std::mem::replace(&mut secure.stage, Stage::Broken) else {
            return Err(refused("handshake already finished"));
        };
        let keys = noise::finish(*hs, secure.cipher).map_err(|e| refused(e.to_string()))?;
        secure.stage = Stage::Established(Box::new(keys));
        Ok(())
    }

    /// The certificate must come from a trusted CA, be valid now, name `name`, certify the
    /// key the handshake proved, and (for initiators reaching us) pass the allow list. It may
    /// come in a chain: then every delegation must verify too, and the middleboxes it
    /// certifies are returned, to be granted the path's keys.
    fn check_peer(
        &self,
        presented: &[u8],
        remote_static: &[u8],
        name: &str,
        policy: bool,
    ) -> Result<Vec<Reader>, Failure> {
        let trust = self
            .credentials
            .trust
            .as_ref()
            .ok_or_else(|| refused("no CA is trusted here (security.trust)"))?;
        let failed = |e: super::CertError| refused(format!("authentication failed: {e}"));
        let (cert, readers) = if presented.starts_with(&CHAIN_MAGIC) {
            let chain = Chain::decode(presented).map_err(failed)?;
            trust
                .verify_chain(&chain, name, self.unix_now())
                .map_err(failed)?;
            let readers = readers_of(&chain);
            (chain.endpoint, readers)
        } else {
            let cert = Certificate::decode(presented).map_err(failed)?;
            trust.verify(&cert, name, self.unix_now()).map_err(failed)?;
            (cert, Vec::new())
        };
        if cert.static_key().as_slice() != remote_static {
            return Err(refused(format!(
                "authentication failed: the certificate for {name} is for another key"
            )));
        }
        if !readers.is_empty() && !self.cfg.security.accept_readers {
            let names: Vec<&str> = readers.iter().map(|r| r.name.as_str()).collect();
            return Err(refused(format!(
                "{name} lets {} read its paths, and security.accept_readers is off here",
                names.join(", ")
            )));
        }
        if policy
            && !self.credentials.allow.is_empty()
            && !self.credentials.allow.iter().any(|r| r.is_match(name))
        {
            return Err(refused(format!("{name} may not open paths to this node")));
        }
        Ok(readers)
    }

    /// The initiator, beside each confirm: the path's keys, sealed to each middlebox either
    /// end certified. Only encrypted paths need them; the confirm's route passes every
    /// middlebox that can see the path (`security::grant`).
    pub(crate) fn send_grants(&mut self, key: usize) {
        let Some(p) = self.paths.get(key) else { return };
        let Some(s) = p.secure.as_ref().filter(|s| s.mode == Protection::Encrypt) else {
            return;
        };
        let Some(k) = s.keys() else { return };
        if s.readers.is_empty() {
            return;
        }
        let keys = ReadKeys {
            responder_label: p.peer_label,
            initiator_label: p.label,
            to_responder: k.seal,
            to_initiator: k.open,
        };
        let (tunnel, path_id) = (p.tunnel, p.path_id);
        let readers: Vec<[u8; 32]> = s.readers.iter().map(|r| r.static_key).collect();
        for reader in readers {
            let seed = self.handshake_seed();
            let Ok(sealed) = grant::seal(&reader, path_id, &keys, seed) else {
                continue;
            };
            let msg = Message::Grant(Grant {
                receiver_label: keys.responder_label,
                path_id,
                sealed: &sealed,
            });
            self.send_control(tunnel, &msg);
        }
    }
}

/// Adds readers not yet listed (both ends may certify the same middlebox).
fn add_readers(list: &mut Vec<Reader>, more: Vec<Reader>) {
    for r in more {
        if !list.iter().any(|l| l.static_key == r.static_key) {
            list.push(r);
        }
    }
}
