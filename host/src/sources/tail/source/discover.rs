//! Finding files: the first look after a (re)start, new files matching
//! the pattern, followed files renamed or deleted, and rotations that came
//! and went between two looks. (The copies `copytruncate` leaves are told
//! apart in `copies`.)

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::copies::Relation;
use super::{Look, Tail, MTIME_SLACK_MS};
use crate::config::StartAt;
use crate::sources::tail::checkpoint::{self, FileRecord, FileState};
use crate::sources::tail::identity::{read_full_at, read_head, FileId};
use crate::sources::tail::pattern::is_rotation_name;
use crate::telemetry::Stats;

fn mtime_ms(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens a regular file; `None` when it is gone or not a regular file.
pub(super) fn open_regular(path: &Path) -> io::Result<Option<(File, Metadata)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    Ok(meta.is_file().then_some((file, meta)))
}

/// The offset just after the last `\n` before `size`: where "end" starts,
/// so that a partial last line is read whole once it is completed.
fn end_of_last_line(file: &File, size: u64) -> io::Result<u64> {
    let mut end = size;
    let mut buf = vec![0; 64 << 10];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        let got = read_full_at(file, &mut buf[..n], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..got]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether a file (of `size`, starting with `head`) still holds what the
/// record says was read of it: the same first bytes, and the same line
/// ending at the record's offset. Told apart by this, a file is new even
/// when its inode is reused and its birth time unknown.
fn holds(rec: &FileRecord, file: &File, size: u64, head: &[u8]) -> bool {
    size >= rec.offset
        && rec.fingerprint().is_prefix_of(head)
        && rec
            .last_line()
            .is_none_or(|m| m.found_before(file, rec.offset).unwrap_or(false))
}

impl Tail {
    /// Picks up a file the checkpoint was following.
    pub(super) fn resume(&mut self, rec: FileRecord) {
        let id = rec.id();
        let at_path = match open_regular(&rec.path) {
            Ok(Some((file, meta))) if FileId::of(&meta).same_file(&id) => Some((file, meta)),
            _ => None,
        };
        if let Some((file, meta)) = at_path {
            let head = read_head(&file, meta.len()).unwrap_or_default();
            if holds(&rec, &file, meta.len(), &head) {
                self.new_tailer(
                    &rec.path,
                    file,
                    &meta,
                    head,
                    (rec.offset, rec.last_line()),
                    FileState::Active,
                );
            } else {
                // Truncated (copytruncate) while we were away: the rest of
                // what we had not read is in the copy, if there is one.
                Stats::add(&self.stats().tail_truncations, 1);
                tracing::warn!(file = %rec.path.display(), offset = rec.offset, size = meta.len(), "truncated while switchyard was stopped; reading the rest from its copy, if found, and the file again from 0");
                let path = rec.path.clone();
                self.truncated_content(FileRecord {
                    state: FileState::Truncated,
                    since_ms: Some(checkpoint::now_ms()),
                    ..rec
                });
                self.new_tailer(&path, file, &meta, head, (0, None), FileState::Active);
            }
            return;
        }
        // Rotated while we were away: look for it next to its old name.
        match self.find_by_id(&rec) {
            Some((found, file, meta, head)) => {
                tracing::info!(file = %rec.path.display(), now = %found.display(), offset = rec.offset, "found a followed file under its rotated name");
                self.new_tailer(
                    &rec.path,
                    file,
                    &meta,
                    head,
                    (rec.offset, rec.last_line()),
                    FileState::Rotated,
                );
            }
            None if rec.size <= rec.offset => {
                tracing::info!(file = %rec.path.display(), inode = rec.ino, offset = rec.offset, "a followed file that had been read to its end is gone");
            }
            None => {
                Stats::add(&self.stats().tail_files_missing, 1);
                tracing::warn!(file = %rec.path.display(), inode = rec.ino, offset = rec.offset, bytes = rec.size - rec.offset, "a followed file with lines not yet handled is gone (deleted or moved out of its directory while switchyard was stopped); they could not be read");
            }
        }
    }

    /// Whether a file is being followed already.
    pub(super) fn followed(&self, id: &FileId) -> bool {
        self.tailers.iter().any(|t| t.id.same_file(id))
    }

    /// The record of a file read to its end and closed, if any.
    pub(super) fn finished(&self, id: &FileId) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.state == FileState::Done && r.id().same_file(id))
    }

    /// The file `rec` names, wherever it is in its directory now.
    fn find_by_id(&self, rec: &FileRecord) -> Option<(PathBuf, File, Metadata, Vec<u8>)> {
        let dir = rec
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let id = rec.id();
        for entry in fs::read_dir(dir).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !FileId::of(&meta).same_file(&id) {
                continue;
            }
            let path = dir.join(entry.file_name());
            let Ok(Some((file, meta))) = open_regular(&path) else {
                continue;
            };
            let head = read_head(&file, meta.len()).unwrap_or_default();
            if FileId::of(&meta).same_file(&id) && holds(rec, &file, meta.len(), &head) {
                return Some((path, file, meta, head));
            }
        }
        None
    }

    /// Looks at the files: new ones matching the pattern, followed ones
    /// renamed or deleted, rotations that came and went unseen.
    pub(super) fn scan(&mut self, look: Look) {
        let started = checkpoint::now_ms();
        let matches = self.cfg.pattern.expand();
        for path in &matches {
            let Ok(meta) = fs::metadata(path) else { continue };
            let id = FileId::of(&meta);
            if let Some(t) = self
                .tailers
                .iter_mut()
                .find(|t| t.state == FileState::Active && t.path == *path)
            {
                if t.id.same_file(&id) {
                    continue;
                }
                t.state = FileState::Rotated;
                Stats::add(&self.stats.tail_rotations, 1);
                tracing::info!(file = %path.display(), "rotated: reading the old file to its end while following the new one");
                self.dirty = true;
            }
            if let Some(t) = self.tailers.iter_mut().find(|t| t.id.same_file(&id)) {
                // A followed file renamed to another name the pattern matches.
                if t.path != *path || t.state != FileState::Active {
                    tracing::info!(file = %t.path.display(), now = %path.display(), "followed file renamed");
                    t.path_str = path.to_string_lossy().into_owned();
                    t.source = format!("tail:{}", t.path_str);
                    t.path = path.clone();
                    t.state = FileState::Active;
                    self.dirty = true;
                }
                continue;
            }
            self.open_new(path, look);
        }
        for t in &mut self.tailers {
            if t.state == FileState::Active && !matches.contains(&t.path) {
                t.state = FileState::Rotated;
                Stats::add(&self.stats.tail_rotations, 1);
                tracing::info!(file = %t.path.display(), "renamed away or deleted: reading it to its end");
                self.dirty = true;
            }
        }
        // Copies of content the reader has not reached yet are decided on
        // later looks: `since` stays before them until then.
        let undecided = if look != Look::FirstRun {
            self.discover_missed()
        } else {
            None
        };
        self.scanned_at_ms = started;
        // After the very first look, rotations already there are history
        // (as `start_at` says for the files themselves): no slack.
        self.since_ms = match look {
            Look::FirstRun => started,
            _ => started.saturating_sub(MTIME_SLACK_MS),
        };
        if let Some(mtime) = undecided {
            self.since_ms = self.since_ms.min(mtime.saturating_sub(1));
        }
    }

    /// Starts following a file found at a path the pattern matches.
    fn open_new(&mut self, path: &Path, look: Look) {
        let (file, meta) = match open_regular(path) {
            Ok(Some(opened)) => {
                self.warned.remove(path);
                opened
            }
            Ok(None) => return,
            Err(e) => {
                if self.warned.insert(path.to_path_buf()) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot open; retrying at every look");
                }
                return;
            }
        };
        let id = FileId::of(&meta);
        if self.followed(&id) {
            return; // renamed here between the stat and the open
        }
        let head = read_head(&file, meta.len()).unwrap_or_default();
        let known = self.records.iter().position(|r| {
            r.state == FileState::Done && r.id().same_file(&id) && holds(r, &file, meta.len(), &head)
        });
        let (offset, mark) = match known {
            // A file we finished, back under a followed name or grown since.
            Some(i) => {
                let r = self.records.remove(i);
                (r.offset, r.last_line())
            }
            None => {
                // Every file there at the very first start has a record (the
                // first look saves one for each): without one, a file is
                // new, whatever its mtime says (`rsync -a`, `cp -p`, `tar`
                // and `unzip` keep old ones; issue 17).
                let new = match look {
                    Look::Live | Look::Restart => true,
                    Look::FirstRun => false,
                };
                match (new, self.cfg.start_at) {
                    (true, _) | (false, StartAt::Beginning) => (0, None),
                    (false, StartAt::End) => (end_of_last_line(&file, meta.len()).unwrap_or(0), None),
                }
            }
        };
        self.new_tailer(path, file, &meta, head, (offset, mark), FileState::Active);
    }

    /// Files next to followed ones, named like their rotations, changed
    /// since the last look and unknown: they were created and rotated away
    /// between two looks (or while the daemon was stopped). Read from 0.
    /// Returns the oldest change time of those that cannot be told yet.
    fn discover_missed(&mut self) -> Option<u64> {
        let mut undecided: Option<u64> = None;
        let mut dirs: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        let known = self
            .tailers
            .iter()
            .map(|t| &t.path)
            .chain(self.records.iter().map(|r| &r.path));
        for path in known {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let bases = dirs.entry(dir).or_default();
            if !bases.iter().any(|n| n == name) {
                bases.push(name.to_string());
            }
        }
        for (dir, bases) in dirs {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            let mut found: Vec<(u64, PathBuf, PathBuf)> = Vec::new();
            for entry in entries.flatten() {
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let Some(base) = bases.iter().find(|b| is_rotation_name(&name, b)) else {
                    continue;
                };
                let path = dir.join(&name);
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || mtime_ms(&meta) <= self.since_ms || self.cfg.pattern.matches(&path) {
                    continue;
                }
                let id = FileId::of(&meta);
                if self.followed(&id) {
                    continue;
                }
                found.push((mtime_ms(&meta), path, dir.join(base)));
            }
            // Oldest first: the order they were written in.
            found.sort();
            for (mtime, path, origin) in found {
                if self.consider_missed(&path, &origin) {
                    undecided = Some(undecided.map_or(mtime, |u| u.min(mtime)));
                }
            }
        }
        undecided
    }

    /// Returns true when it cannot be told yet (a copy of what a followed
    /// file holds now): looked at again later.
    fn consider_missed(&mut self, path: &Path, origin: &Path) -> bool {
        let Ok(Some((file, meta))) = open_regular(path) else {
            return false;
        };
        let id = FileId::of(&meta);
        if self.followed(&id) {
            return false;
        }
        let head = read_head(&file, meta.len()).unwrap_or_default();
        if let Some(i) = self.finished(&id) {
            let r = &self.records[i];
            if meta.len() > r.offset && holds(r, &file, meta.len(), &head) {
                // Written to after we had finished it: read what was added.
                let r = self.records.remove(i);
                tracing::info!(file = %path.display(), offset = r.offset, "a finished file grew; reading what was added");
                self.new_tailer(
                    &r.path,
                    file,
                    &meta,
                    head,
                    (r.offset, r.last_line()),
                    FileState::Rotated,
                );
            }
            return false;
        }
        if head.is_empty() {
            return false; // nothing in it yet; looked at again when it changes
        }
        match self.relation(&file, meta.len(), &head) {
            Ok(Relation::Unrelated) => {
                tracing::warn!(file = %path.display(), rotated_from = %origin.display(), "found a rotated file that was never followed (it came and went between two looks); reading it from the start");
                self.new_tailer(origin, file, &meta, head, (0, None), FileState::Rotated);
            }
            Ok(Relation::CopyOfTruncated(i)) => {
                let r = self.records.remove(i);
                tracing::info!(file = %r.path.display(), copy = %path.display(), offset = r.offset, "reading the lines not yet read from the copy");
                self.new_tailer(
                    &r.path,
                    file,
                    &meta,
                    head,
                    (r.offset, r.last_line()),
                    FileState::Rotated,
                );
            }
            Ok(Relation::CopyOfTruncatedRead(i)) => {
                self.records.remove(i);
                self.remember_copy(path, &meta, &head);
            }
            Ok(Relation::CopyOfLive) => return true,
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read"),
        }
        false
    }
}
