//! A secure path's end-to-end state: the handshake while it runs, then the keys, the send
//! nonce and the replay window. Gateways never hold one; they relay what it produces.
//!
//! Data on a secure path is `[type][label][nonce u64][body]`: with `encrypt` the body is the
//! IP packet sealed with the negotiated cipher (`cipher`) under the handshake's keys and the
//! explicit nonce (as Noise's stateless transport would, so loss and reordering cost
//! nothing); with `auth`
//! it is the IP packet in the clear followed by a 16-byte keyed BLAKE2b MAC over nonce and
//! packet.
//!
//! Nonces stay below 2⁶⁰, so the nonce's top four bits are flags about the packet, covered
//! by the tag or MAC like the rest of the nonce (a flipped flag is a forgery). The top bit,
//! [`PARTIAL`], says its transport checksum was left partial
//! ([`super::parameters`]): sent only to a peer that said it takes such packets. Each packet's
//! counter is the nonce without its flags, unique and checked against replays as before;
//! unknown flags are forgeries.

use super::cipher::DataCipher;
use super::keycache::{KeyCache, Use};
use super::noise::{aead_nonce, Keys, TAG_LEN};
use super::replay::ReplayWindow;
use crate::api::DropReason;
use crate::config::Protection;
use crate::packet::Packet;
use crate::wire::checksum::PartialChecksum;
use blake2::digest::{FixedOutput, KeyInit, Mac};
use ring::aead::Aad;
use snow::HandshakeState;

/// Bytes of the explicit nonce.
pub const NONCE_LEN: usize = 8;
/// Bytes of the MAC in `auth` mode.
pub const MAC_LEN: usize = 16;
/// A sender stops at this nonce, far below where ChaCha20-Poly1305 would wear out (or at its
/// cipher's [`DataCipher::block_limit`], if sooner); the path then goes down and is set up
/// again with fresh keys.
pub const NONCE_LIMIT: u64 = 1 << 60;
/// Nonce flag: the packet's transport checksum holds only the pseudo-header's sum.
pub const PARTIAL: u64 = 1 << 63;

/// Where the handshake stands.
pub(crate) enum Stage {
    /// Waiting for the peer's next handshake message.
    Handshake(Box<HandshakeState>),
    /// Keys are in place.
    Established(Box<Keys>),
    /// The handshake failed; nothing can be sealed or opened.
    Broken,
}

pub(crate) struct Secure {
    pub(crate) mode: Protection,
    pub(crate) stage: Stage,
    /// The handshake message this end sends and may have to send again (the setup's, the
    /// accept's or the confirm's).
    pub(crate) message: Vec<u8>,
    /// Name the peer's certificate must hold.
    pub(crate) peer_name: String,
    next_nonce: u64,
    /// What this end's key has sealed, against its cipher's block limit.
    sealed_blocks: u64,
    /// The data cipher: ChaCha20-Poly1305 until the handshake agrees on another.
    pub(crate) cipher: DataCipher,
    replay: ReplayWindow,
    /// The initiator has heard from the responder since its confirm: stop resending it.
    pub(crate) confirmed: bool,
    /// Confirm transmissions so far.
    pub(crate) confirms: u32,
    /// Handshake answers that did not decrypt (tampered or corrupted), so a setup that gives
    /// up can say why.
    pub(crate) tampered: u32,
    /// Middleboxes either end certified to read this path (from the checked chains).
    pub(crate) readers: Vec<super::handshake::Reader>,
    /// The peer takes packets with partial checksums (its handshake said so).
    pub(crate) peer_partial: bool,
}

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material stays out of logs.
        write!(f, "Secure({:?}, peer {})", self.mode, self.peer_name)
    }
}

impl Secure {
    pub(crate) fn new(
        mode: Protection,
        hs: HandshakeState,
        message: Vec<u8>,
        peer_name: String,
    ) -> Secure {
        Secure {
            mode,
            stage: Stage::Handshake(Box::new(hs)),
            message,
            peer_name,
            next_nonce: 0,
            sealed_blocks: 0,
            cipher: DataCipher::ChaCha20Poly1305,
            replay: ReplayWindow::new(),
            confirmed: false,
            confirms: 0,
            tampered: 0,
            readers: Vec::new(),
            peer_partial: false,
        }
    }

    pub(crate) fn keys(&self) -> Option<&Keys> {
        match &self.stage {
            Stage::Established(k) => Some(k),
            Stage::Handshake(_) | Stage::Broken => None,
        }
    }

    /// Appends nonce and protected packet to `out` (which holds the data header). A packet
    /// whose checksum is `partial` goes as it is, flagged, where the peer takes that and the
    /// checksum is at `standard`, where the receiver will look for it
    /// ([`PartialChecksum::of`], which the caller found parsing the packet); otherwise its
    /// copy is completed before sealing.
    pub(crate) fn seal(
        &mut self,
        packet: &[u8],
        partial: Option<PartialChecksum>,
        standard: Option<PartialChecksum>,
        out: &mut Vec<u8>,
        cache: &mut KeyCache,
        path: usize,
    ) -> Result<(), DropReason> {
        let counter = self.next_nonce;
        let Stage::Established(keys) = &self.stage else {
            return Err(DropReason::PathNotUp);
        };
        if counter >= NONCE_LIMIT {
            return Err(DropReason::NonceExhausted);
        }
        let pass = partial.filter(|c| self.peer_partial && standard == Some(*c));
        let nonce = counter | if pass.is_some() { PARTIAL } else { 0 };
        if self.mode == Protection::Encrypt {
            // The packet's 16-byte blocks, rounded up, and one for the packet itself.
            let blocks = self
                .sealed_blocks
                .saturating_add(packet.len() as u64 / 16 + 2);
            if blocks > keys.seal.cipher.block_limit() {
                return Err(DropReason::NonceExhausted);
            }
            self.sealed_blocks = blocks;
        }
        out.extend_from_slice(&nonce.to_be_bytes());
        let start = out.len();
        out.extend_from_slice(packet);
        let body = out.get_mut(start..).ok_or(DropReason::Oversized)?;
        if let (Some(c), None) = (partial, pass) {
            c.complete(body);
        }
        match self.mode {
            Protection::Encrypt => {
                let tag = cache
                    .get(path, Use::Seal, &keys.seal)
                    .ok_or(DropReason::Oversized)?
                    .seal_in_place_separate_tag(aead_nonce(nonce), Aad::empty(), body)
                    .map_err(|_| DropReason::Oversized)?;
                out.extend_from_slice(tag.as_ref());
            }
            Protection::Auth | Protection::Plain => {
                let m = keyed(&keys.mac_send, nonce, body).ok_or(DropReason::Oversized)?;
                out.extend_from_slice(&m.finalize_fixed());
            }
        }
        self.next_nonce = counter + 1;
        Ok(())
    }

    /// Checks a data payload (everything after the label) and appends the IP packet to `out`.
    /// Replays and forgeries are refused; the replay window moves only for authentic packets.
    pub(crate) fn open(
        &mut self,
        payload: &[u8],
        out: &mut Vec<u8>,
        cache: &mut KeyCache,
        path: usize,
    ) -> Result<Opened, DropReason> {
        let Some(keys) = self.keys() else {
            return Err(DropReason::PathNotUp);
        };
        let (nonce, body) = payload
            .split_at_checked(NONCE_LEN)
            .ok_or(DropReason::Forged)?;
        let nonce = u64::from_be_bytes(nonce.try_into().map_err(|_| DropReason::Forged)?);
        let counter = nonce & (NONCE_LIMIT - 1);
        if nonce & !(NONCE_LIMIT - 1) & !PARTIAL != 0 {
            return Err(DropReason::Forged);
        }
        if self.replay.check(counter).is_err() {
            return Err(DropReason::Replayed);
        }
        match self.mode {
            Protection::Encrypt => {
                if body.len() < TAG_LEN {
                    return Err(DropReason::Forged);
                }
                let start = out.len();
                out.extend_from_slice(body);
                let key = cache.get(path, Use::Open, &keys.open);
                let opened = out.get_mut(start..).zip(key).and_then(|(b, key)| {
                    key.open_in_place(aead_nonce(nonce), Aad::empty(), b).ok()
                });
                let Some(len) = opened.map(|p| p.len()) else {
                    out.truncate(start);
                    return Err(DropReason::Forged);
                };
                out.truncate(start + len);
            }
            Protection::Auth | Protection::Plain => {
                let len = body.len().checked_sub(MAC_LEN).ok_or(DropReason::Forged)?;
                let (packet, tag) = body.split_at(len);
                let m = keyed(&keys.mac_recv, nonce, packet).ok_or(DropReason::Forged)?;
                m.verify_slice(tag).map_err(|_| DropReason::Forged)?;
                out.extend_from_slice(packet);
            }
        }
        self.replay
            .update(counter)
            .map_err(|_| DropReason::Replayed)?;
        Ok(Opened {
            partial: nonce & PARTIAL != 0,
        })
    }
}

/// What the nonce of an opened packet said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Its transport checksum holds only the pseudo-header's sum.
    pub(crate) partial: bool,
}

/// Opens an `encrypt` data payload (nonce and sealed packet) with a key a middlebox was
/// granted, into `out` (empty, from the pool). No replay window: the middlebox only looks, and
/// the end point, which keeps one, decides what is delivered.
pub(crate) fn peek(payload: &[u8], key: &ring::aead::LessSafeKey, out: &mut Packet) -> Option<()> {
    let (nonce, body) = payload.split_at_checked(NONCE_LEN)?;
    let nonce = u64::from_be_bytes(nonce.try_into().ok()?);
    if body.len() < TAG_LEN {
        return None;
    }
    out.extend_from_slice(body);
    let len = key
        .open_in_place(aead_nonce(nonce), Aad::empty(), &mut out[..])
        .ok()?
        .len();
    out.truncate(len);
    Some(())
}

/// The `auth` MAC: keyed BLAKE2b with a 16-byte output (BLAKE2b rather than BLAKE2s: its
/// 64-bit words make it the faster of the two on the 64-bit machines ocala runs on).
type AuthMac = blake2::Blake2bMac<blake2::digest::consts::U16>;

/// The MAC state over nonce and packet, ready to finish or verify.
fn keyed(key: &[u8; 32], nonce: u64, packet: &[u8]) -> Option<AuthMac> {
    let mut m = <AuthMac as KeyInit>::new_from_slice(key).ok()?;
    Mac::update(&mut m, &nonce.to_be_bytes());
    Mac::update(&mut m, packet);
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::noise;

    fn pair(mode: Protection, cipher: DataCipher) -> (Secure, Secure) {
        let mut i = noise::start(true, &[1; 32], 1, 9, [3; 32]).unwrap();
        let mut r = noise::start(false, &[2; 32], 1, 9, [4; 32]).unwrap();
        let (mut a, mut b) = ([0u8; 512], [0u8; 512]);
        let n = i.write_message(&[], &mut a).unwrap();
        r.read_message(&a[..n], &mut b).unwrap();
        let n = r.write_message(&[], &mut a).unwrap();
        i.read_message(&a[..n], &mut b).unwrap();
        let n = i.write_message(&[], &mut a).unwrap();
        r.read_message(&a[..n], &mut b).unwrap();
        let mk = |hs: HandshakeState| {
            let mut s = Secure::new(
                mode,
                noise::start(true, &[9; 32], 0, 0, [0; 32]).unwrap(),
                Vec::new(),
                String::new(),
            );
            s.stage = Stage::Established(Box::new(noise::finish(hs, cipher).unwrap()));
            s
        };
        (mk(i), mk(r))
    }

    #[test]
    fn both_modes_round_trip_and_refuse_replays_and_tampering() {
        let modes = [
            (Protection::Encrypt, DataCipher::ChaCha20Poly1305),
            (Protection::Encrypt, DataCipher::Aes256Gcm),
            (Protection::Auth, DataCipher::ChaCha20Poly1305),
        ];
        for (mode, cipher) in modes {
            let (mut a, mut b) = pair(mode, cipher);
            // One cache for both ends and one path index: each must still use its own key.
            let c = &mut KeyCache::default();
            let mut wire = Vec::new();
            a.seal(b"inner packet", None, None, &mut wire, c, 0)
                .unwrap();
            let mut out = Vec::new();
            b.open(&wire, &mut out, c, 0).unwrap();
            assert_eq!(out, b"inner packet");
            out.clear();
            assert_eq!(b.open(&wire, &mut out, c, 0), Err(DropReason::Replayed));
            let mut second = Vec::new();
            a.seal(b"inner packet", None, None, &mut second, c, 0)
                .unwrap();
            second[10] ^= 1;
            assert_eq!(b.open(&second, &mut out, c, 0), Err(DropReason::Forged));
            assert!(out.is_empty(), "nothing delivered from a forgery");
            assert_eq!(b.open(&[1, 2, 3], &mut out, c, 0), Err(DropReason::Forged));
            let in_clear = wire.windows(12).any(|w| w == b"inner packet");
            assert_eq!(in_clear, mode == Protection::Auth, "{mode:?}");
        }
    }

    #[test]
    fn a_partial_checksum_goes_flagged_only_to_a_peer_that_takes_it_and_the_flag_is_sealed() {
        use crate::wire::ip::PROTO_TCP;
        use crate::wire::testutil::{build_ip, tcp_segment, with_partial_checksum};
        let (src, dst) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let full = build_ip(
            src,
            dst,
            PROTO_TCP,
            &tcp_segment(40000, 80, 9, 0x18, b"bytes"),
        );
        let (partial, at) = with_partial_checksum(&full);
        assert_ne!(partial, full);
        for mode in [Protection::Encrypt, Protection::Auth] {
            for takes in [false, true] {
                let (mut a, mut b) = pair(mode, DataCipher::ChaCha20Poly1305);
                a.peer_partial = takes;
                let c = &mut KeyCache::default();
                let mut wire = Vec::new();
                a.seal(
                    &partial,
                    Some(at),
                    PartialChecksum::of(&partial),
                    &mut wire,
                    c,
                    0,
                )
                .unwrap();
                assert_eq!(wire[0] & 0x80 != 0, takes, "the nonce's top bit: {mode:?}");
                let mut out = Vec::new();
                let opened = b.open(&wire, &mut out, c, 0).unwrap();
                assert_eq!(opened.partial, takes);
                let want = if takes { &partial } else { &full };
                assert_eq!(
                    &out, want,
                    "passed as it is, or completed: {mode:?} {takes}"
                );
                assert_eq!(b.open(&wire, &mut out, c, 0), Err(DropReason::Replayed));

                // The flag is covered by the tag or MAC, and unknown flags are refused.
                for bit in [0x80, 0x40] {
                    let mut next = Vec::new();
                    a.seal(
                        &partial,
                        Some(at),
                        PartialChecksum::of(&partial),
                        &mut next,
                        c,
                        0,
                    )
                    .unwrap();
                    next[0] ^= bit;
                    out.clear();
                    assert_eq!(b.open(&next, &mut out, c, 0), Err(DropReason::Forged));
                }
            }
        }
    }

    #[test]
    fn an_aes_key_stops_at_its_block_limit_and_chacha_has_none() {
        let c = &mut KeyCache::default();
        let packet = [0u8; 1400]; // 87 whole blocks, one partial, one for the packet
        let (mut a, _) = pair(Protection::Encrypt, DataCipher::Aes256Gcm);
        a.sealed_blocks = DataCipher::Aes256Gcm.block_limit() - 89;
        a.seal(&packet, None, None, &mut Vec::new(), c, 0).unwrap();
        let more = a.seal(&packet, None, None, &mut Vec::new(), c, 0);
        assert_eq!(more, Err(DropReason::NonceExhausted));
        let (mut x, _) = pair(Protection::Encrypt, DataCipher::ChaCha20Poly1305);
        x.sealed_blocks = DataCipher::Aes256Gcm.block_limit();
        x.seal(&packet, None, None, &mut Vec::new(), c, 1).unwrap();
    }
}
