//! Checkpoints: for each file a tail source knows, its identity and the byte
//! offset before which every line has been handled. One JSON file per
//! source under `<state dir>/tail/`, replaced atomically: written to a
//! temporary file, fsynced, renamed over the old one, and the directory
//! fsynced, so that after a crash the file is the old or the new version,
//! never a mix. A lock file keeps two daemons from following the same
//! files with the same state (each would handle every line).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::identity::{fnv1a, FileId, Fingerprint, LineMark};

pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot create the state directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "{path} is locked: another switchyard is following these files with the same state \
         directory; stop it or give this one another [state] dir"
    )]
    Locked { path: PathBuf },
    #[error("cannot read the checkpoint {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the checkpoint {path} is not valid: {message}; move it away to start over \
         (files are then read as `start_at` says)"
    )]
    Corrupt { path: PathBuf, message: String },
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Followed at `path`.
    Active,
    /// Renamed away or deleted, still being read to its end.
    Rotated,
    /// Read to its end and closed; remembered so that it is recognised
    /// (and not read again) if it shows up under another name.
    Done,
    /// Content that was truncated away (copytruncate) at `offset`, kept to
    /// recognise the copy and read the rest from it.
    Truncated,
}

/// One file in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Where the file was found; events carry it as `tail:<path>`.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btime_ns: Option<u64>,
    /// Length and FNV-1a hash (16 hex digits) of the first bytes.
    pub fp_len: u64,
    pub fp_hash: String,
    /// Every line that ends at or before this byte offset has been handled.
    pub offset: u64,
    /// The file's size at the last look: more than `offset` means lines
    /// were waiting to be read (or handled).
    #[serde(default)]
    pub size: u64,
    /// The line that ends at `offset`, to check a copy really holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line_hash: Option<String>,
    pub state: FileState,
    /// When the record became `done` or `truncated` (ms since the epoch),
    /// for forgetting old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

impl FileRecord {
    pub fn new(
        path: &Path,
        id: FileId,
        fp: Fingerprint,
        offset: u64,
        last_line: Option<LineMark>,
        state: FileState,
    ) -> FileRecord {
        FileRecord {
            path: path.to_path_buf(),
            dev: id.dev,
            ino: id.ino,
            btime_ns: id.btime,
            fp_len: fp.len,
            fp_hash: fp.hex(),
            offset,
            size: offset,
            last_line_len: last_line.map(|m| m.len),
            last_line_hash: last_line.map(|m| format!("{:016x}", m.hash)),
            state,
            since_ms: match state {
                FileState::Done | FileState::Truncated => Some(now_ms()),
                _ => None,
            },
        }
    }

    pub fn id(&self) -> FileId {
        FileId {
            dev: self.dev,
            ino: self.ino,
            btime: self.btime_ns,
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            len: self.fp_len,
            hash: u64::from_str_radix(&self.fp_hash, 16).unwrap_or_default(),
        }
    }

    pub fn last_line(&self) -> Option<LineMark> {
        let len = self.last_line_len?;
        let hash = u64::from_str_radix(self.last_line_hash.as_deref()?, 16).ok()?;
        Some(LineMark { len, hash })
    }

    fn check(&self) -> Result<(), String> {
        let hex = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(&self.fp_hash) {
            return Err(format!(
                "{}: fp_hash {:?} is not 16 hex digits",
                self.path.display(),
                self.fp_hash
            ));
        }
        if self.last_line_len.is_some() != self.last_line_hash.as_deref().is_some_and(hex) {
            return Err(format!(
                "{}: last_line_len and last_line_hash go together",
                self.path.display()
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The `[[source.tail]] path` this checkpoint belongs to, resolved.
    pub pattern: PathBuf,
    /// When the source last began to look at its directories (ms since
    /// the epoch). A file changed after this and unknown to the checkpoint
    /// appeared while the daemon was not looking: it is read from 0.
    pub scanned_at_ms: u64,
    pub files: Vec<FileRecord>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The checkpoint file of one source, locked for this process.
pub struct Store {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    /// Held (and locked) for as long as the source runs.
    _lock: File,
}

impl Store {
    /// Opens (creating `<state_dir>/tail/`) and locks the checkpoint of the
    /// source following `pattern`.
    pub fn open(state_dir: &Path, pattern: &Path) -> Result<Store, CheckpointError> {
        let dir = state_dir.join("tail");
        fs::create_dir_all(&dir).map_err(|source| CheckpointError::Dir {
            path: dir.clone(),
            source,
        })?;
        let name = file_name_for(pattern);
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| CheckpointError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(CheckpointError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(source)) => {
                return Err(CheckpointError::Lock {
                    path: lock_path,
                    source,
                })
            }
        }
        Ok(Store {
            path: dir.join(format!("{name}.json")),
            tmp: dir.join(format!("{name}.json.tmp")),
            dir,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint, or `None` when this source never saved one.
    pub fn load(&self, pattern: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |message: String| CheckpointError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let cp: Checkpoint = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if cp.version != VERSION {
            return Err(corrupt(format!(
                "version {} (this switchyard reads version {VERSION})",
                cp.version
            )));
        }
        if cp.pattern != pattern {
            return Err(corrupt(format!(
                "it belongs to the source {}, not {}",
                cp.pattern.display(),
                pattern.display()
            )));
        }
        for f in &cp.files {
            f.check().map_err(corrupt)?;
        }
        Ok(Some(cp))
    }

    /// Replaces the checkpoint atomically and durably.
    pub fn save(&self, cp: &Checkpoint) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(cp).map_err(io::Error::other)?;
        let mut f = File::create(&self.tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)?.sync_all()
    }
}

/// A file name for a pattern: readable, and unique by a hash of the whole.
fn file_name_for(pattern: &Path) -> String {
    let text = pattern.to_string_lossy();
    let readable: String = text
        .chars()
        .rev()
        .take(48)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{:016x}",
        readable.trim_matches('_'),
        fnv1a(pattern.as_os_str().as_encoded_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: FileState) -> FileRecord {
        FileRecord::new(
            Path::new("/var/log/app.log"),
            FileId {
                dev: 2049,
                ino: 77,
                btime: Some(1_700_000_000_123_456_789),
            },
            Fingerprint::of(b"header\n"),
            4096,
            Some(LineMark::of_line(b"last line")),
            state,
        )
    }

    #[test]
    fn round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = Path::new("/var/log/*.log");
        let store = Store::open(dir.path(), pattern).unwrap();
        assert_eq!(store.load(pattern).unwrap(), None, "nothing saved yet");
        let mut cp = Checkpoint {
            version: VERSION,
            pattern: pattern.to_path_buf(),
            scanned_at_ms: now_ms(),
            files: vec![record(FileState::Active), record(FileState::Done)],
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load(pattern).unwrap().as_ref(), Some(&cp));
        let r = &cp.files[0];
        assert_eq!(r.fingerprint(), Fingerprint::of(b"header\n"));
        assert_eq!(r.last_line(), Some(LineMark::of_line(b"last line")));
        assert_eq!(r.id().btime, Some(1_700_000_000_123_456_789));
        cp.files[0].offset = 8192;
        store.save(&cp).unwrap();
        assert_eq!(store.load(pattern).unwrap().unwrap().files[0].offset, 8192);
        let names: Vec<String> = fs::read_dir(dir.path().join("tail"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "the checkpoint and its lock, no temporary file: {names:?}"
        );
        assert!(names
            .iter()
            .any(|n| n.starts_with("var_log__.log-") && n.ends_with(".json")));
    }

    #[test]
    fn a_second_store_on_the_same_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), Path::new("a.log")).unwrap();
        let err = Store::open(dir.path(), Path::new("a.log")).err().unwrap();
        assert!(err.to_string().contains("is locked: another switchyard"), "{err}");
        Store::open(dir.path(), Path::new("b.log")).unwrap();
    }

    #[test]
    fn corrupt_checkpoints_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Path::new("a.log")).unwrap();
        fs::write(store.path(), "{\"version\": 1, \"pattern\": \"a.log\"").unwrap();
        let err = store.load(Path::new("a.log")).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "the checkpoint {} is not valid: EOF",
                store.path().display()
            )),
            "{err}"
        );
        let mut cp = Checkpoint {
            version: 2,
            pattern: "a.log".into(),
            scanned_at_ms: 0,
            files: vec![],
        };
        fs::write(store.path(), serde_json::to_vec(&cp).unwrap()).unwrap();
        let err = store.load(Path::new("a.log")).unwrap_err().to_string();
        assert!(
            err.contains("version 2 (this switchyard reads version 1)"),
            "{err}"
        );
        cp.version = 1;
        let mut bad = record(FileState::Active);
        bad.fp_hash = "xyz".into();
        cp.files.push(bad);
        fs::write(store.path(), serde_json::to_vec(&cp).unwrap()).unwrap();
        let err = store.load(Path::new("a.log")).unwrap_err().to_string();
        assert!(
            err.contains("/var/log/app.log: fp_hash \"xyz\" is not 16 hex digits"),
            "{err}"
        );
    }
}
