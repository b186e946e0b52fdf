//! Keys and certificates for simulated nodes, minted from the scenario seed: one CA per
//! scenario, one static key per node, and a certificate naming the node in each of its
//! overlays — unless the scenario asks for a broken one, to show what users then see.

use blake2::{Blake2b512, Digest};
use ocala_engine::config::HexBytes;
use ocala_engine::security::noise::public_key;
use ocala_engine::security::{CaKey, CertSpec, Chain, DelegationSpec, IdentityKey};
use ocala_engine::Config;
use serde::Deserialize;

/// Wall-clock time at the start of every simulation (2027-01-15T08:00:00Z): certificates
/// need one, and a fixed one keeps runs identical.
pub const UNIX_TIME_AT_START: u64 = 1_800_000_000;
const DAY: u64 = 86_400;

/// What kind of certificate a node gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    /// From the scenario's CA, valid for a year around the start.
    #[default]
    Valid,
    /// Expired the day before the simulation starts.
    Expired,
    /// Valid only from a month after the start.
    NotYetValid,
    /// From a CA nobody trusts.
    RogueCa,
    /// Issued for other names than the node's.
    WrongName,
    /// No key and no certificate at all.
    None,
}

fn derive(seed: u64, label: &str) -> [u8; 32] {
    let mut h = Blake2b512::new();
    h.update(seed.to_le_bytes());
    h.update(label.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize()[..32]);
    out
}

/// The static public key a node gets from the scenario seed.
pub fn static_public(seed: u64, node: &str) -> [u8; 32] {
    public_key(&derive(seed, &format!("static {node}")))
}

/// Fills in a node's security section: its static key and certificate (as a chain with a
/// delegation to each of `delegates`, by name and static key, when there are any), and the
/// scenario's CA as the one trusted. Settings the scenario wrote itself (default mode, allow
/// list) stay.
pub fn provision(
    cfg: &mut Config,
    node: &str,
    kind: CertKind,
    names: &[String],
    delegates: &[(String, [u8; 32])],
    seed: u64,
) -> Result<(), String> {
    let sec = &mut cfg.security;
    sec.unix_time_at_zero = UNIX_TIME_AT_START;
    let ca = CaKey::from_seed(derive(seed, "ca"));
    if sec.trust.is_empty() {
        sec.trust.push(HexBytes(ca.public().to_vec()));
    }
    if kind == CertKind::None || sec.certificate.is_some() {
        return Ok(());
    }
    let static_private = derive(seed, &format!("static {node}"));
    let identity = IdentityKey::from_seed(derive(seed, &format!("identity {node}")));
    let mut names: Vec<String> = if names.is_empty() {
        cfg.overlays
            .iter()
            .map(|o| format!("{}.{}", o.local_name, o.name).to_ascii_lowercase())
            .collect()
    } else {
        names.to_vec()
    };
    if kind == CertKind::WrongName {
        names = vec![format!("not-{node}.nowhere")];
    }
    let (not_before, not_after) = match kind {
        CertKind::Expired => (UNIX_TIME_AT_START - 30 * DAY, UNIX_TIME_AT_START - DAY),
        CertKind::NotYetValid => (
            UNIX_TIME_AT_START + 30 * DAY,
            UNIX_TIME_AT_START + 365 * DAY,
        ),
        _ => (UNIX_TIME_AT_START - DAY, UNIX_TIME_AT_START + 365 * DAY),
    };
    let issuer = match kind {
        CertKind::RogueCa => CaKey::from_seed(derive(seed, "rogue ca")),
        _ => ca,
    };
    let spec = CertSpec {
        serial: u64::from_le_bytes(
            derive(seed, &format!("serial {node}"))[..8]
                .try_into()
                .unwrap_or_default(),
        ),
        names,
        static_key: public_key(&static_private),
        identity_key: identity.public(),
        not_before,
        not_after,
    };
    let cert = issuer
        .issue(&spec)
        .map_err(|e| format!("node {node}: cannot mint a certificate: {e}"))?;
    sec.static_key = Some(HexBytes(static_private.to_vec()));
    sec.certificate = Some(HexBytes(cert.encode()));
    if !delegates.is_empty() {
        let specs: Vec<DelegationSpec> = delegates
            .iter()
            .map(|(name, key)| DelegationSpec {
                middlebox_name: name.clone(),
                middlebox_static_key: *key,
                not_before,
                not_after,
            })
            .collect();
        let chain = Chain::build(cert, &identity, &specs)
            .map_err(|e| format!("node {node}: cannot sign its delegations: {e}"))?;
        sec.chain = Some(HexBytes(chain.encode()));
    }
    Ok(())
}
