//! Checkpoints of handle bindings (paper §6.1.1), so a program still holding an address keeps
//! working after ocalad restarts: the restored handle's next packet sets up a new path.

use ocala_engine::HandleBinding;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

/// Writes the bindings atomically and durably: a temporary file, flushed to disk, renamed
/// over the old one, and the directory flushed so the rename survives a power cut. A crash
/// at any point leaves the old checkpoint or the new one, never a torn one.
pub fn save(path: &Path, bindings: &[HandleBinding]) -> io::Result<()> {
    let entries: Vec<Entry> = bindings
        .iter()
        .map(|b| Entry {
            name: b.name.clone(),
            v4: b.v4,
            v6: b.v6,
        })
        .collect();
    let text = serde_json::to_string_pretty(&entries).map_err(io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a checkpoint for a starting daemon. One that cannot be read (torn by a crash of
/// an older version, corrupted, unreadable) is reported and ignored: apps lose their
/// addresses, but the daemon starts.
pub fn load_or_report(path: &Path) -> Vec<HandleBinding> {
    match load(path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("ignoring the handle checkpoint: {e}");
            Vec::new()
        }
    }
}

/// Reads a checkpoint; a missing file is an empty one.
pub fn load(path: &Path) -> io::Result<Vec<HandleBinding>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    Ok(entries
        .into_iter()
        .map(|e| HandleBinding {
            name: e.name,
            v4: e.v4,
            v6: e.v6,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_empty() {
        let dir = std::env::temp_dir().join(format!("ocala-state-{}", std::process::id()));
        let path = dir.join("state.json");
        assert!(load(&path).unwrap().is_empty());
        let b = vec![HandleBinding {
            name: "bob.udp".into(),
            v4: "198.18.0.3".parse().unwrap(),
            v6: "fd6f:6361:6c61::3".parse().unwrap(),
        }];
        save(&path, &b).unwrap();
        assert_eq!(load(&path).unwrap(), b);
        // A torn or corrupt checkpoint is an error to read, but not to start with.
        let whole = std::fs::read_to_string(&path).unwrap();
        for torn in [&whole[..whole.len() / 2], "{ not json", "\u{0}\u{0}"] {
            std::fs::write(&path, torn).unwrap();
            let e = load(&path).unwrap_err();
            assert!(e.to_string().contains("state.json"), "{e}");
            assert!(load_or_report(&path).is_empty());
        }
        assert!(
            !path.with_extension("tmp").exists(),
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
