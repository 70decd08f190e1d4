//! Which dead letters have been replayed: a sidecar file next to the
//! dead-letter log (`dead-letter.ndjson.replayed`), so that a second replay
//! does not send them again.
//!
//! The log is append-only, so a line is identified by its byte offset; the
//! mark also holds the line's length and FNV-1a hash, so a mark can only
//! ever match the very line it was written for: if the log is rotated,
//! truncated or edited, old marks stop matching instead of hiding new lines.
//!
//! Marks are appended, one line per replayed dead letter (`OFFSET LENGTH
//! HASH`), one `write` and one `fsync` per batch, only after the daemon has
//! accepted that batch. A reader trusts only complete lines (newline
//! terminated, well formed): a crash mid-append can lose marks of the last
//! batch (those events are replayed again: at least once), never invent
//! one. An exclusive lock on the sidecar keeps two replays from running at
//! once.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: &str =
    "# switchyard replay marks v1: OFFSET LENGTH FNV1A64 of each replayed line of the dead-letter log\n";

/// Where the marks of a dead-letter log live.
pub fn sidecar(dead_letters: &Path) -> PathBuf {
    let mut name = dead_letters.file_name().unwrap_or_default().to_os_string();
    name.push(".replayed");
    dead_letters.with_file_name(name)
}

/// FNV-1a, 64 bits: stable across versions and platforms (unlike std's hasher).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One line of the dead-letter log, as a mark names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mark {
    pub offset: u64,
    pub len: u64,
    pub hash: u64,
}

impl Mark {
    /// The mark of the line `bytes` (without its newline) at `offset`.
    pub fn of(offset: u64, bytes: &[u8]) -> Mark {
        Mark {
            offset,
            len: bytes.len() as u64,
            hash: fnv1a(bytes),
        }
    }

    fn parse(line: &str) -> Option<Mark> {
        let mut parts = line.split(' ');
        let mark = Mark {
            offset: parts.next()?.parse().ok()?,
            len: parts.next()?.parse().ok()?,
            hash: u64::from_str_radix(parts.next()?, 16).ok()?,
        };
        parts.next().is_none().then_some(mark)
    }
}

/// The marks of one log, and (for a replay) the locked sidecar to add to.
pub struct Marks {
    set: HashSet<Mark>,
    file: Option<File>,
    path: PathBuf,
}

impl Marks {
    /// Reads the marks, without locking (for listing).
    pub fn read(dead_letters: &Path) -> io::Result<Marks> {
        let path = sidecar(dead_letters);
        let set = match File::open(&path) {
            Ok(mut f) => parse_all(&mut f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        Ok(Marks {
            set,
            file: None,
            path,
        })
    }

    /// Opens (creating) and locks the sidecar for adding marks; fails if
    /// another replay holds it.
    pub fn lock(dead_letters: &Path) -> io::Result<Marks> {
        let path = sidecar(dead_letters);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("another replay is running ({} is locked)", path.display()),
                ))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        let set = parse_all(&mut file)?;
        if file.metadata()?.len() == 0 {
            file.write_all(HEADER.as_bytes())?;
        } else {
            // A torn last record (crash mid-append) must not glue onto the
            // next one: start the next record on a fresh line.
            let mut all = Vec::new();
            File::open(&path)?.read_to_end(&mut all)?;
            if !all.ends_with(b"\n") {
                file.write_all(b"\n")?;
            }
        }
        Ok(Marks {
            set,
            file: Some(file),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, mark: &Mark) -> bool {
        self.set.contains(mark)
    }

    /// Appends marks durably: one write, then fsync.
    pub fn add(&mut self, marks: &[Mark]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("marks were opened read-only"))?;
        let mut text = String::with_capacity(marks.len() * 40);
        for m in marks {
            text.push_str(&format!("{} {} {:016x}\n", m.offset, m.len, m.hash));
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        self.set.extend(marks.iter().copied());
        Ok(())
    }
}

fn parse_all(f: &mut File) -> io::Result<HashSet<Mark>> {
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    // Only newline-terminated lines count: a torn last line is ignored.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    Ok(complete
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(Mark::parse)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_and_torn_lines_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("dead.ndjson");
        assert_eq!(sidecar(&log), dir.path().join("dead.ndjson.replayed"));
        let a = Mark::of(0, b"{\"a\":1}");
        let b = Mark::of(8, b"{\"b\":2}");
        {
            let mut m = Marks::lock(&log).unwrap();
            assert!(!m.contains(&a));
            m.add(&[a]).unwrap();
            assert!(m.contains(&a));
            let err = Marks::lock(&log).err().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
        }
        // A crash mid-append: half a record for `b`.
        let mut f = OpenOptions::new().append(true).open(sidecar(&log)).unwrap();
        write!(f, "{} {}", b.offset, b.len).unwrap();
        drop(f);
        let m = Marks::read(&log).unwrap();
        assert!(m.contains(&a));
        assert!(!m.contains(&b), "a torn record marks nothing");
        // The same offset with other content (a rotated log) is not marked.
        assert!(!m.contains(&Mark::of(0, b"{\"c\":3}")));
        let mut m = Marks::lock(&log).unwrap();
        m.add(&[b]).unwrap();
        drop(m);
        let m = Marks::read(&log).unwrap();
        assert!(
            m.contains(&a) && m.contains(&b),
            "the torn line did not swallow the next record"
        );
    }

    #[test]
    fn fnv_is_the_reference_function() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
