//! `ocala ca`: a certificate authority for one's own overlay names. `init` makes a CA key,
//! `issue` a node's static key and the certificate that binds its names to it, `delegate`
//! signs, with the node's own identity key, the chain that lets middleboxes read its secure
//! paths, `show` prints a certificate. Keys are written as hex text, readable only by their
//! owner.

use crate::config::read_hex;
use ocala_engine::config::HexBytes;
use ocala_engine::security::noise::public_key;
use ocala_engine::security::{CaKey, CertSpec, Certificate, Chain, DelegationSpec, IdentityKey};
use rand_core::{OsRng, TryRngCore};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn random32() -> Result<[u8; 32], String> {
    let mut b = [0u8; 32];
    OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| format!("OS random source: {e}"))?;
    Ok(b)
}

/// Writes hex text to a new file; `secret` files are created mode 0600.
fn write_hex(path: &Path, bytes: &[u8], secret: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut f = opts
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{}", HexBytes::to_hex(bytes)).map_err(|e| format!("{}: {e}", path.display()))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key32(bytes: HexBytes, what: &str) -> Result<[u8; 32], String> {
    bytes
        .0
        .as_slice()
        .try_into()
        .map_err(|_| format!("{what}: not a 32-byte key"))
}

/// Makes a new CA in `dir`: `ca.key` (secret) and `ca.pub` (what nodes trust).
pub fn init(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let seed = random32()?;
    let ca = CaKey::from_seed(seed);
    write_hex(&dir.join("ca.key"), &seed, true)?;
    write_hex(&dir.join("ca.pub"), &ca.public(), false)?;
    Ok(format!(
        "CA created in {dir}\n  ca.key  keep secret: it signs certificates\n  ca.pub  give to every node: daemon.trust_files = [\"{dir}/ca.pub\"]\n",
        dir = dir.display()
    ))
}

/// Issues a node's keys and certificate for `names`, valid for `days` from now, into `out`.
pub fn issue(ca_dir: &Path, names: &[String], days: u64, out: &Path) -> Result<String, String> {
    if names.is_empty() {
        return Err("give at least one --name, such as bob.udp".into());
    }
    let seed = key32(
        read_hex("ocala ca issue", "ca.key", &ca_dir.join("ca.key"))?,
        "ca.key",
    )?;
    let ca = CaKey::from_seed(seed);
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let static_private = random32()?;
    let identity_seed = random32()?;
    let serial = u64::from_le_bytes(random32()?[..8].try_into().unwrap_or_default());
    let now = now_unix();
    let spec = CertSpec {
        serial,
        names: names
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        static_key: public_key(&static_private),
        identity_key: IdentityKey::from_seed(identity_seed).public(),
        // A little slack before now, for clocks that run behind.
        not_before: now.saturating_sub(3600),
        not_after: now.saturating_add(days.saturating_mul(86_400)),
    };
    let cert = ca.issue(&spec).map_err(|e| format!("cannot issue: {e}"))?;
    write_hex(&out.join("static.key"), &static_private, true)?;
    write_hex(&out.join("identity.key"), &identity_seed, true)?;
    write_hex(&out.join("cert"), &cert.encode(), false)?;
    Ok(format!(
        "{}issued into {o}; in the node's config:\n  [daemon]\n  static_key_file = \"{o}/static.key\"\n  certificate_file = \"{o}/cert\"\n  trust_files = [\"{c}/ca.pub\"]\n",
        describe(&cert),
        o = out.display(),
        c = ca_dir.display()
    ))
}

/// Signs a chain for the node whose files (`cert`, `identity.key`, from `ocala ca issue`)
/// are in `node_dir`, delegating to each middlebox whose certificate is given: each may
/// read the node's secure paths for `days`. The chain goes to `node_dir/chain`.
pub fn delegate(
    node_dir: &Path,
    middleboxes: &[std::path::PathBuf],
    days: u64,
) -> Result<String, String> {
    if middleboxes.is_empty() {
        return Err("give at least one --middlebox certificate".into());
    }
    let what = "ocala ca delegate";
    let cert_bytes = read_hex(what, "cert", &node_dir.join("cert"))?;
    let cert = Certificate::decode(&cert_bytes.0)
        .map_err(|e| format!("{}: {e}", node_dir.join("cert").display()))?;
    let identity = IdentityKey::from_seed(key32(
        read_hex(what, "identity.key", &node_dir.join("identity.key"))?,
        "identity.key",
    )?);
    let now = now_unix();
    let mut specs = Vec::new();
    for path in middleboxes {
        let bytes = read_hex(what, "--middlebox", path)?;
        let mb = Certificate::decode(&bytes.0).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = mb
            .names()
            .first()
            .cloned()
            .ok_or_else(|| format!("{}: a certificate without names", path.display()))?;
        specs.push(DelegationSpec {
            middlebox_name: name,
            middlebox_static_key: *mb.static_key(),
            not_before: now.saturating_sub(3600),
            // Never past the node's own certificate.
            not_after: now
                .saturating_add(days.saturating_mul(86_400))
                .min(cert.not_after()),
        });
    }
    let names: Vec<String> = specs.iter().map(|s| s.middlebox_name.clone()).collect();
    let chain = Chain::build(cert, &identity, &specs).map_err(|e| format!("cannot sign: {e}"))?;
    let out = node_dir.join("chain");
    write_hex(&out, &chain.encode(), false)?;
    Ok(format!(
        "{o} lets {n} read this node's secure paths; in the node's config:\n  [daemon]\n  chain_file = \"{o}\"\n",
        o = out.display(),
        n = names.join(", ")
    ))
}

/// What a certificate says.
pub fn show(path: &Path) -> Result<String, String> {
    let bytes = read_hex("ocala ca show", "certificate", path)?;
    let cert = Certificate::decode(&bytes.0).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(describe(&cert))
}

fn describe(cert: &Certificate) -> String {
    let now = now_unix();
    let state = if now < cert.not_before() {
        "not yet valid"
    } else if now >= cert.not_after() {
        "EXPIRED"
    } else {
        "valid"
    };
    format!(
        "certificate {serial:#018x} ({state})\n  names       {names}\n  valid       {nb} .. {na} (Unix seconds)\n  static key  {sk}\n  issuer      {is}\n",
        serial = cert.serial(),
        names = cert.names().join(", "),
        nb = cert.not_before(),
        na = cert.not_after(),
        sk = HexBytes::to_hex(cert.static_key()),
        is = HexBytes::to_hex(cert.issuer()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_issue_show_and_the_daemon_accepts_the_result() {
        let dir = std::env::temp_dir().join(format!("ocala-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        init(&dir.join("ca")).unwrap();
        assert!(init(&dir.join("ca")).is_err(), "never overwrites a CA key");
        let text = issue(&dir.join("ca"), &["Bob.udp".into()], 30, &dir.join("bob")).unwrap();
        assert!(
            text.contains("bob.udp") && text.contains("(valid)"),
            "{text}"
        );
        let mode = std::fs::metadata(dir.join("bob/static.key"))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(show(&dir.join("bob/cert"))
            .unwrap()
            .contains("names       bob.udp"));
        let config = format!(
            "[[overlays]]\nname = \"udp\"\nmodule = \"udp\"\nlocal_name = \"bob\"\n[daemon]\nstatic_key_file = \"{d}/bob/static.key\"\ncertificate_file = \"{d}/bob/cert\"\ntrust_files = [\"{d}/ca/ca.pub\"]\n",
            d = dir.display()
        );
        let loaded = crate::config::parse("bob.toml", &config).unwrap();
        assert!(loaded.engine.security.certificate.is_some());
        // bob lets fw read his paths: the chain carries his certificate and a delegation.
        issue(&dir.join("ca"), &["fw.udp".into()], 30, &dir.join("fw")).unwrap();
        let text = delegate(&dir.join("bob"), &[dir.join("fw/cert")], 7).unwrap();
        assert!(text.contains("lets fw.udp read"), "{text}");
        let chained = format!("{config}chain_file = \"{}/bob/chain\"\n", dir.display());
        let loaded = crate::config::parse("bob.toml", &chained).unwrap();
        let chain = Chain::decode(&loaded.engine.security.chain.unwrap().0).unwrap();
        assert_eq!(chain.delegations[0].middlebox_name, "fw.udp");
        assert_eq!(chain.endpoint.names(), ["bob.udp"]);
        assert!(delegate(&dir.join("bob"), &[dir.join("bob/static.key")], 7).is_err());
        let bad = config.replace("bob/cert", "nope/cert");
        let e = crate::config::parse("bob.toml", &bad).unwrap_err();
        assert!(
            e.contains("daemon.certificate_file") && e.contains("nope/cert"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
