//! Checkpoints of handle bindings (paper §6.1.1), so a program still holding an address keeps
//! working after ocalad restarts: the restored handle's next packet sets up a new path.
//!
//! The state is a snapshot of every binding (`state.json`) and a journal of the bindings
//! made since (`state.json.journal`, a line each). A new name costs one short line appended
//! and flushed, not a rewrite of every binding: ocalad saves before the address reaches an
//! app, so a crash never loses one an app has seen. Each line carries a sequence number and
//! the snapshot the last number it covers, so a crash between writing a new snapshot and
//! removing the old journal loses nothing and resurrects nothing; reading them back, newer
//! bindings come first and win any conflict over a name or an address.

use ocala_engine::HandleBinding;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// Lines the journal may grow to before the next binding writes a whole snapshot instead.
const JOURNAL_MAX: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl Entry {
    fn of(b: &HandleBinding) -> Entry {
        Entry {
            name: b.name.clone(),
            v4: b.v4,
            v6: b.v6,
        }
    }

    fn binding(self) -> HandleBinding {
        HandleBinding {
            name: self.name,
            v4: self.v4,
            v6: self.v6,
        }
    }
}

/// `state.json`: every binding, and the last journal line it covers. (A plain list is the
/// format of earlier releases: it covers none.)
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Snapshot {
    Current { seq: u64, handles: Vec<Entry> },
    Earlier(Vec<Entry>),
}

/// A journal line.
#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    #[serde(flatten)]
    entry: Entry,
}

/// The state file and its journal.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    journal: PathBuf,
    /// The last sequence number written.
    seq: u64,
    /// Lines in the journal now.
    lines: usize,
}

impl Store {
    /// The store at `path` (its journal beside it) and the bindings it holds, newest first.
    /// A snapshot that cannot be read (torn by a crash of an older version, corrupted) is an
    /// error; a journal's torn last line is where it ends.
    pub fn open(path: &Path) -> io::Result<(Store, Vec<HandleBinding>)> {
        let journal = journal_of(path);
        let (covered, snapshot) = match read_missing_empty(path)? {
            None => (0, Vec::new()),
            Some(text) => match serde_json::from_str(&text).map_err(|e| invalid(path, e))? {
                Snapshot::Current { seq, handles } => (seq, handles),
                Snapshot::Earlier(handles) => (0, handles),
            },
        };
        let mut newer = Vec::new();
        let mut seq = covered;
        if let Some(text) = read_missing_empty(&journal)? {
            for line in text.lines() {
                let Ok(l) = serde_json::from_str::<Line>(line) else {
                    break;
                };
                seq = seq.max(l.seq);
                if l.seq > covered {
                    newer.push(l.entry);
                }
            }
        }
        let lines = newer.len();
        let bindings = newer
            .into_iter()
            .rev()
            .chain(snapshot)
            .map(Entry::binding)
            .collect();
        let store = Store {
            path: path.to_path_buf(),
            journal,
            seq,
            lines,
        };
        Ok((store, bindings))
    }

    /// Saves bindings made since the last save: appended to the journal, or, once the
    /// journal is long, with `all` (every binding now) as a new snapshot.
    pub fn save_new(
        &mut self,
        new: &[HandleBinding],
        all: impl FnOnce() -> Vec<HandleBinding>,
    ) -> io::Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        if self.lines + new.len() > JOURNAL_MAX {
            return self.snapshot(&all());
        }
        let mut text = String::new();
        for b in new {
            self.seq += 1;
            let line = Line {
                seq: self.seq,
                entry: Entry::of(b),
            };
            text.push_str(&serde_json::to_string(&line).map_err(io::Error::other)?);
            text.push('\n');
        }
        std::fs::create_dir_all(self.dir())?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        self.lines += new.len();
        Ok(())
    }

    /// Writes every binding as the snapshot, atomically and durably (a temporary file,
    /// flushed, renamed over the old one, the directory flushed), then empties the journal.
    pub fn snapshot(&mut self, all: &[HandleBinding]) -> io::Result<()> {
        let snapshot = Snapshot::Current {
            seq: self.seq,
            handles: all.iter().map(Entry::of).collect(),
        };
        let text = serde_json::to_string_pretty(&snapshot).map_err(io::Error::other)?;
        let dir = self.dir();
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()?;
        // A crash before this leaves journal lines the snapshot covers: they are skipped.
        match std::fs::remove_file(&self.journal) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.lines = 0;
        Ok(())
    }

    /// The folder the state lives in.
    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

/// Opens the store for a starting daemon. One whose snapshot cannot be read is reported and
/// started afresh: apps lose their addresses, but the daemon starts.
pub fn open_or_report(path: &Path) -> (Store, Vec<HandleBinding>) {
    match Store::open(path) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!("ignoring the handle checkpoint: {e}");
            let store = Store {
                path: path.to_path_buf(),
                journal: journal_of(path),
                seq: 0,
                lines: 0,
            };
            (store, Vec::new())
        }
    }
}

fn journal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".journal");
    PathBuf::from(name)
}

/// A file's text; `None` when there is no such file.
fn read_missing_empty(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn invalid(path: &Path, e: serde_json::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str, last: u8) -> HandleBinding {
        HandleBinding {
            name: name.into(),
            v4: Ipv4Addr::new(198, 18, 0, last),
            v6: format!("fd6f:6361:6c61::{last}").parse().unwrap(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ocala-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("state.json")
    }

    fn names(bindings: &[HandleBinding]) -> Vec<&str> {
        bindings.iter().map(|b| b.name.as_str()).collect()
    }

    #[test]
    fn new_names_are_appended_and_come_back_newest_first() {
        let path = temp("journal");
        let (mut store, none) = Store::open(&path).unwrap();
        assert!(none.is_empty(), "missing files are an empty store");
        store.snapshot(&[b("old.udp", 3)]).unwrap();
        store.save_new(&[b("a.udp", 4)], Vec::new).unwrap();
        store
            .save_new(&[b("b.udp", 5), b("c.udp", 6)], Vec::new)
            .unwrap();
        let snapshot_text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !snapshot_text.contains("a.udp"),
            "appending leaves the snapshot alone"
        );
        let (_, got) = Store::open(&path).unwrap();
        assert_eq!(names(&got), ["c.udp", "b.udp", "a.udp", "old.udp"]);
        // A crash in the middle of an append leaves a torn last line: it is where the
        // journal ends.
        let journal = journal_of(&path);
        let mut text = std::fs::read_to_string(&journal).unwrap();
        text.push_str("{\"seq\":9,\"name\":\"torn");
        std::fs::write(&journal, text).unwrap();
        let (_, got) = Store::open(&path).unwrap();
        assert_eq!(names(&got), ["c.udp", "b.udp", "a.udp", "old.udp"]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_snapshot_covers_the_journal_even_when_a_crash_left_it_behind() {
        let path = temp("covered");
        let (mut store, _) = Store::open(&path).unwrap();
        store.save_new(&[b("gone.udp", 4)], Vec::new).unwrap();
        let journal = journal_of(&path);
        let left_behind = std::fs::read(&journal).unwrap();
        // gone.udp was released and its address given to new.udp; the snapshot says so.
        store.snapshot(&[b("new.udp", 4)]).unwrap();
        assert!(!journal.exists(), "a snapshot empties the journal");
        std::fs::write(&journal, left_behind).unwrap();
        let (mut store, got) = Store::open(&path).unwrap();
        assert_eq!(names(&got), ["new.udp"], "covered lines are skipped");
        // Numbering goes on past what the old journal used.
        store.save_new(&[b("next.udp", 5)], Vec::new).unwrap();
        let (_, got) = Store::open(&path).unwrap();
        assert_eq!(names(&got), ["next.udp", "new.udp"]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_long_journal_becomes_a_snapshot() {
        let path = temp("compact");
        let (mut store, _) = Store::open(&path).unwrap();
        let many: Vec<HandleBinding> = (0..JOURNAL_MAX)
            .map(|i| b(&format!("h{i}.udp"), 7))
            .collect();
        store.save_new(&many, Vec::new).unwrap();
        assert_eq!(store.lines, JOURNAL_MAX);
        store
            .save_new(&[b("one.udp", 8)], || vec![b("all.udp", 9)])
            .unwrap();
        assert_eq!(store.lines, 0);
        assert!(!journal_of(&path).exists());
        let (_, got) = Store::open(&path).unwrap();
        assert_eq!(names(&got), ["all.udp"]);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn earlier_snapshots_load_and_torn_ones_are_reported() {
        let path = temp("earlier");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let earlier = r#"[{"name":"bob.udp","v4":"198.18.0.3","v6":"fd6f:6361:6c61::3"}]"#;
        std::fs::write(&path, earlier).unwrap();
        let (_, got) = Store::open(&path).unwrap();
        assert_eq!(got, [b("bob.udp", 3)]);
        for torn in [&earlier[..earlier.len() / 2], "{ not json", "\u{0}\u{0}"] {
            std::fs::write(&path, torn).unwrap();
            let e = Store::open(&path).unwrap_err();
            assert!(e.to_string().contains("state.json"), "{e}");
            assert!(open_or_report(&path).1.is_empty());
        }
        assert!(
            !path.with_extension("tmp").exists(),
            "no temporary file left"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
