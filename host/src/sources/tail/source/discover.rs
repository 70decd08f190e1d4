//! Finding files: the first look after a (re)start, new files matching
//! the pattern, followed files renamed or deleted, rotations that came and
//! went between two looks, and the copies `copytruncate` leaves.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Look, Source, MTIME_SLACK_MS};
use crate::config::StartAt;
use crate::sources::tail::checkpoint::{self, FileRecord, FileState};
use crate::sources::tail::identity::{read_full_at, read_head, FileId, Fingerprint};
use crate::sources::tail::pattern::is_rotation_name;
use crate::telemetry::Stats;

fn mtime_ms(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens a regular file; `None` when it is gone or not a regular file.
fn open_regular(path: &Path) -> io::Result<Option<(File, Metadata)>> {
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

/// Whether `a` and `b` hold the same bytes just before `end` (`b` no longer
/// having them counts as the same: it cannot be told).
fn same_bytes_before(a: &File, b: &File, end: u64) -> io::Result<bool> {
    let n = end.min(256) as usize;
    let start = end - n as u64;
    let (mut x, mut y) = (vec![0; n], vec![0; n]);
    let got_a = read_full_at(a, &mut x, start)?;
    let got_b = read_full_at(b, &mut y, start)?;
    Ok(got_b < n || (got_a == n && x == y))
}

/// How a file found next to followed ones relates to them.
enum Relation {
    Unrelated,
    /// A copy (finished or in progress) of a followed file's content.
    CopyOfLive,
    /// The copy of content truncated away (the record at this index).
    CopyOfTruncated(usize),
    /// A copy shorter than what was read of content truncated away: it
    /// holds nothing unread.
    CopyOfTruncatedRead(usize),
}

impl Source {
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

    /// The file `rec` names, wherever it is in its directory now.
    /// Whether a file is being followed already.
    fn followed(&self, id: &FileId) -> bool {
        self.tailers.iter().any(|t| t.id.same_file(id))
    }

    /// The record of a file read to its end and closed, if any.
    fn finished(&self, id: &FileId) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.state == FileState::Done && r.id().same_file(id))
    }

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

    /// Content truncated away at `rec.offset`: read the rest from its copy
    /// if one is next to it, else remember it to recognise the copy later.
    pub(super) fn truncated_content(&mut self, rec: FileRecord) {
        self.records.push(rec);
        let i = self.records.len() - 1;
        if !self.find_copy(i) {
            self.dirty = true;
        }
    }

    /// Looks next to the truncated record `i` for its copy; reads the rest
    /// of it from there. The record is dropped once its copy is followed.
    fn find_copy(&mut self, i: usize) -> bool {
        let rec = self.records[i].clone();
        let dir = rec
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Some(base) = rec.path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| is_rotation_name(n, base)))
            .map(|e| dir.join(e.file_name()))
            .collect();
        names.sort();
        for path in names {
            if self.cfg.pattern.matches(&path) {
                continue;
            }
            let Ok(Some((file, meta))) = open_regular(&path) else {
                continue;
            };
            let id = FileId::of(&meta);
            if self.followed(&id) || self.finished(&id).is_some() {
                continue;
            }
            let head = read_head(&file, meta.len()).unwrap_or_default();
            match self.relation(&file, meta.len(), &head) {
                Ok(Relation::CopyOfTruncated(j)) if j == i => {
                    tracing::info!(file = %rec.path.display(), copy = %path.display(), offset = rec.offset, "reading the lines not yet read from the copy");
                    self.records.remove(i);
                    self.new_tailer(
                        &rec.path,
                        file,
                        &meta,
                        head,
                        (rec.offset, rec.last_line()),
                        FileState::Rotated,
                    );
                    return true;
                }
                Ok(Relation::CopyOfTruncatedRead(j)) if j == i => {
                    tracing::info!(file = %rec.path.display(), copy = %path.display(), "its copy holds nothing that was not read");
                    self.records.remove(i);
                    self.remember_copy(&path, &meta, &head);
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    /// Remembers a copy whose lines were all read (through the file it was
    /// copied from) as done, so that it is not taken for a new file.
    fn remember_copy(&mut self, path: &Path, meta: &Metadata, head: &[u8]) {
        self.records.push(FileRecord::new(
            path,
            FileId::of(meta),
            Fingerprint::of(head),
            meta.len(),
            None,
            FileState::Done,
        ));
        self.dirty = true;
    }

    /// How a file found next to followed ones relates to what we know.
    fn relation(&self, file: &File, size: u64, head: &[u8]) -> io::Result<Relation> {
        for (i, r) in self.records.iter().enumerate() {
            if r.state != FileState::Truncated || r.fp_len == 0 || !r.fingerprint().is_prefix_of(head) {
                continue;
            }
            if size < r.offset {
                return Ok(Relation::CopyOfTruncatedRead(i));
            }
            if r.last_line()
                .map_or(Ok(true), |m| m.found_before(file, r.offset))?
            {
                return Ok(Relation::CopyOfTruncated(i));
            }
        }
        for t in &self.tailers {
            // Starts like what was read of the file, or like the file now
            // (a copy of content not read yet: the reader may be behind).
            let same_as_seen = if head.len() as u64 >= t.fp.len {
                t.fp.len > 0 && t.fp.is_prefix_of(head)
            } else {
                !head.is_empty() && t.head.starts_with(head)
            };
            let t_size = t.file.metadata().map_or(0, |m| m.len());
            let head_now = read_head(&t.file, t_size)?;
            let n = head.len().min(head_now.len());
            let same_as_now = n > 0 && head[..n] == head_now[..n];
            if !same_as_seen && !same_as_now {
                continue;
            }
            // The followed file no longer holds what was read of it:
            // truncated, not handled yet. This file, starting like it, is
            // its copy; the truncation tells how much of it was read.
            let gone = same_as_seen && (t_size < t.lines.read_pos() || !t.fp.is_prefix_of(&head_now));
            let consumed = t.lines.consumed();
            let copy_of_now = size <= t_size && same_bytes_before(file, &t.file, size)?;
            let copy_of_read = consumed > 0
                && size >= consumed
                && t.last_line
                    .map_or(Ok(false), |m| m.found_before(file, consumed))?;
            if gone || copy_of_now || copy_of_read {
                return Ok(Relation::CopyOfLive);
            }
        }
        Ok(Relation::Unrelated)
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
                Stats::add(&self.dispatcher.shared().stats.tail_rotations, 1);
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
                Stats::add(&self.dispatcher.shared().stats.tail_rotations, 1);
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
