//! Path descriptors (paper §3.1.1, §3.2.1). Each path end — and each half of a path relayed
//! by a gateway — is a slot in a slab. The label a peer puts in data packets is the slot index
//! in its low bits and a generation in its high bits, so a label that outlived its path is
//! recognised as stale instead of reaching the path that reused the slot.

use crate::packet::Packet;
use crate::time::Instant;
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};

/// Bits of a label that index the slab; the rest carry the generation.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;
/// The most paths a node can hold, given the label layout.
pub(crate) const MAX_PATHS: usize = 1 << INDEX_BITS;

/// What this path is to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Started here for a handle.
    Initiator { handle: usize },
    /// Opened by a peer; packets go to local apps under `handle`, bound once the peer is
    /// authenticated (at once for plain paths).
    Responder { handle: Option<usize> },
    /// One half of a path this gateway relays; data continues on `twin`.
    Relay { twin: usize, downstream: bool },
}

impl Role {
    /// The handle a path end delivers to and sends for: none for relay halves, nor for a
    /// responder whose peer has not yet proven who it is.
    pub(crate) fn handle(self) -> Option<usize> {
        match self {
            Role::Initiator { handle }
            | Role::Responder {
                handle: Some(handle),
            } => Some(handle),
            _ => None,
        }
    }
}

/// Where the path's setup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for the tunnel to the first hop.
    AwaitTunnel,
    /// Setup sent `attempts` times; the last at `sent_at`.
    Connecting { attempts: u32 },
    /// A relay's upstream half, waiting for the downstream half to be accepted.
    AwaitDownstream,
    /// A responder that sent its handshake answer and waits for the initiator's confirm.
    AwaitConfirm,
    /// Carrying data.
    Up,
}

/// The setup message a path (re)transmits.
#[derive(Debug, Clone)]
pub(crate) struct SetupSpec {
    pub(crate) remaining: String,
    pub(crate) return_name: String,
    pub(crate) hop_count: u8,
    pub(crate) options: u8,
    /// The initiator's first handshake message, relayed unchanged by gateways.
    pub(crate) handshake: Vec<u8>,
    /// A busy next hop's cookie, echoed in setups from now on.
    pub(crate) cookie: Option<[u8; crate::wire::message::COOKIE_LEN]>,
    /// The initiator's proposed sources, relayed unchanged by gateways.
    pub(crate) sources: crate::wire::message::Sources,
}

#[derive(Debug)]
pub(crate) struct Path {
    /// This path's label (what peers send to reach it).
    pub(crate) label: u32,
    /// End-to-end identity of the path, chosen by its initiator.
    pub(crate) path_id: u64,
    /// OC-I tunnel index.
    pub(crate) tunnel: usize,
    /// The label the next node expects; 0 until accepted.
    pub(crate) peer_label: u32,
    pub(crate) role: Role,
    pub(crate) state: State,
    /// Human name of the far end, for events.
    pub(crate) name: String,
    /// What to send while connecting (initiators and relays' downstream halves). Boxed: it
    /// goes once the path is up, and inline it would make every path's slot 112 bytes larger.
    pub(crate) setup: Option<Box<SetupSpec>>,
    pub(crate) started: Instant,
    /// When the latest retransmission timer is due; earlier timers for the path are stale.
    pub(crate) retransmit_at: Instant,
    /// The label of the path this one takes over from once it is up (a rekey): a label, not a
    /// slot, so a slot freed and reused meanwhile is not mistaken for it.
    pub(crate) replaces: Option<u32>,
    /// The handshake bytes of the Accept this node sent (as responder, or relayed as a
    /// gateway), sent again unchanged if the setup is retransmitted.
    pub(crate) answer: Vec<u8>,
    /// The initiator's confirm came (to this end, or through this relay half): it had the
    /// Accept, which is not repeated any more and whose bytes are gone.
    pub(crate) confirmed: bool,
    /// Superseded by a rekeyed successor: kept briefly for packets in flight, then closed
    /// without telling anyone it went down.
    pub(crate) retiring: bool,
    /// Packets from apps held while the path comes up (bounded).
    pub(crate) pending: VecDeque<Packet>,
    /// DNS answers waiting for the path: (app's address, sentinel it asked, raw query).
    pub(crate) queries: Vec<crate::dns::intercept::WaitingQuery>,
    /// End-to-end protection; `None` on plain paths and on relay halves.
    pub(crate) secure: Option<Box<crate::security::session::Secure>>,
    /// A path that ends at this legacy server gateway: the server it leads to, given to its
    /// egress handle once the client is proven.
    pub(crate) legacy: Option<crate::legacy::LegacyEnd>,
    /// The address families the far end takes (from its accept; ours, as responder).
    pub(crate) families: crate::wire::message::Families,
    /// On a legacy client gateway, the LAN client this path carries packets for.
    pub(crate) lan_client: Option<std::net::IpAddr>,
    /// As responder, the addresses the initiator proposed for its handle, kept until the
    /// handle is bound (at confirm, on a secure path).
    pub(crate) sources: crate::wire::message::Sources,
    /// On a relay half at a middlebox the path's initiator granted: the key that opens the
    /// data arriving on this half, so the middlebox can judge the packet inside.
    pub(crate) read: Option<Box<crate::security::cipher::DataKey>>,
    /// On a plain path's end, which directions carry TCP and UDP packets in the partial form.
    pub(crate) partial: PartialForm,
}

/// Which directions of a plain path carry TCP and UDP packets with their checksums in the
/// partial form, as the ends agreed at setup (`security::parameters`, plain paths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartialForm {
    /// The peer takes it: this end leaves or puts its packets so.
    pub(crate) send: bool,
    /// This end takes it: the peer's packets arrive so.
    pub(crate) receive: bool,
}

impl Path {
    /// Whether the path holds state for a peer not yet proven (what cookies bound).
    pub(crate) fn half_open(&self) -> bool {
        matches!(self.state, State::AwaitConfirm | State::AwaitDownstream)
    }

    /// The slot's generation, for timers.
    pub(crate) fn gen(&self) -> u32 {
        self.label >> INDEX_BITS
    }
}

#[derive(Debug, Default)]
pub(crate) struct Paths {
    slab: Slab<Path>,
    /// (tunnel, the peer's label) → path: finds a duplicate setup, and the path a peer's
    /// "unknown label" close refers to.
    by_peer: BTreeMap<(usize, u32), usize>,
    /// Relayed path ids, to refuse a setup that loops back through this gateway.
    relayed: BTreeMap<u64, usize>,
    /// Ids of paths this node started, to spot its own setups reflected back at it.
    initiated: BTreeMap<u64, usize>,
    last_gen: u32,
    /// Paths in a half-open state, kept as a count so a flood is noticed in O(1).
    half_open: usize,
    /// Bumped by every change to the table's shape (`Engine::check_tables_since`).
    version: u64,
}

impl Paths {
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// Stores a new path and gives it a label. The generation bits come from `random` (the
    /// engine's seeded generator), so a stranger cannot predict a label to forge messages
    /// with, and a stale label rarely matches the slot's next path.
    pub(crate) fn insert(&mut self, mut path: Path, random: u32) -> usize {
        let entry = self.slab.vacant_entry();
        let key = entry.key();
        let mut gen = random >> INDEX_BITS;
        if gen == 0 || gen == self.last_gen {
            gen = (gen % ((u32::MAX >> INDEX_BITS) - 1)) + 1;
        }
        self.last_gen = gen;
        path.label = (gen << INDEX_BITS) | (key as u32 & INDEX_MASK);
        self.half_open += usize::from(path.half_open());
        self.version += 1;
        if matches!(path.role, Role::Initiator { .. }) {
            self.initiated.insert(path.path_id, key);
        }
        entry.insert(path);
        key
    }

    /// Whether this node started a path with this id.
    pub(crate) fn initiated(&self, path_id: u64) -> bool {
        self.initiated.contains_key(&path_id)
    }

    /// Moves a path to another state, keeping the half-open count.
    pub(crate) fn set_state(&mut self, key: usize, state: State) {
        self.version += 1;
        if let Some(p) = self.slab.get_mut(key) {
            self.half_open -= usize::from(p.half_open());
            p.state = state;
            self.half_open += usize::from(p.half_open());
        }
    }

    /// Notes a change made through `get_mut` to what `Engine::check_tables` looks at (a
    /// path's role).
    pub(crate) fn touch(&mut self) {
        self.version += 1;
    }

    /// Changes with every insertion, removal, state, peer, tunnel or role change.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Paths holding state for peers not yet proven.
    pub(crate) fn half_open(&self) -> usize {
        self.half_open
    }

    /// The path a label names, if it is still the same path.
    pub(crate) fn by_label(&self, label: u32) -> Option<usize> {
        let key = (label & INDEX_MASK) as usize;
        (self.slab.get(key)?.label == label).then_some(key)
    }

    pub(crate) fn get(&self, key: usize) -> Option<&Path> {
        self.slab.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut Path> {
        self.slab.get_mut(key)
    }

    /// Checks a timer's generation against the slot.
    pub(crate) fn get_gen(&self, key: usize, gen: u32) -> Option<&Path> {
        self.slab.get(key).filter(|p| p.gen() == gen)
    }

    /// Records the peer's label once known.
    pub(crate) fn set_peer(&mut self, key: usize, peer_label: u32) {
        self.version += 1;
        if let Some(p) = self.slab.get_mut(key) {
            p.peer_label = peer_label;
            self.by_peer.insert((p.tunnel, peer_label), key);
        }
    }

    /// Moves a path to another tunnel (two tunnels turned out to lead to one peer).
    pub(crate) fn move_tunnel(&mut self, key: usize, tunnel: usize) {
        self.version += 1;
        let Some(p) = self.slab.get_mut(key) else {
            return;
        };
        if p.peer_label != 0 && self.by_peer.get(&(p.tunnel, p.peer_label)) == Some(&key) {
            self.by_peer.remove(&(p.tunnel, p.peer_label));
            self.by_peer.insert((tunnel, p.peer_label), key);
        }
        p.tunnel = tunnel;
    }

    pub(crate) fn by_peer(&self, tunnel: usize, peer_label: u32) -> Option<usize> {
        self.by_peer.get(&(tunnel, peer_label)).copied()
    }

    pub(crate) fn mark_relayed(&mut self, path_id: u64, key: usize) {
        self.relayed.insert(path_id, key);
    }

    pub(crate) fn relayed(&self, path_id: u64) -> Option<usize> {
        self.relayed.get(&path_id).copied()
    }

    /// Frees a path and its index entries.
    pub(crate) fn remove(&mut self, key: usize) -> Option<Path> {
        let p = self.slab.try_remove(key)?;
        self.version += 1;
        self.half_open -= usize::from(p.half_open());
        if p.peer_label != 0 && self.by_peer.get(&(p.tunnel, p.peer_label)) == Some(&key) {
            self.by_peer.remove(&(p.tunnel, p.peer_label));
        }
        if self.relayed.get(&p.path_id) == Some(&key) {
            self.relayed.remove(&p.path_id);
        }
        if self.initiated.get(&p.path_id) == Some(&key) {
            self.initiated.remove(&p.path_id);
        }
        Some(p)
    }

    /// Paths over a tunnel, in slot order.
    pub(crate) fn on_tunnel(&self, tunnel: usize) -> Vec<usize> {
        self.slab
            .iter()
            .filter(|(_, p)| p.tunnel == tunnel)
            .map(|(k, _)| k)
            .collect()
    }

    /// The index entries, for consistency checks (`Engine::check_tables`).
    pub(crate) fn peer_index(&self) -> impl Iterator<Item = (&(usize, u32), &usize)> {
        self.by_peer.iter()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Path)> {
        self.slab.iter()
    }
}
