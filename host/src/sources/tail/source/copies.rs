//! The copies `copytruncate` leaves: telling a file found next to followed
//! ones apart (a copy of a followed file, of content truncated away, or
//! unrelated), and reading on from the copy of content not read yet.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

use super::discover::open_regular;
use super::Tail;
use crate::sources::tail::checkpoint::{FileRecord, FileState};
use crate::sources::tail::identity::{read_full_at, read_head, FileId, Fingerprint};
use crate::sources::tail::pattern::is_rotation_name;

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
pub(super) enum Relation {
    Unrelated,
    /// A copy (finished or in progress) of a followed file's content.
    CopyOfLive,
    /// The copy of content truncated away (the record at this index).
    CopyOfTruncated(usize),
    /// A copy shorter than what was read of content truncated away: it
    /// holds nothing unread.
    CopyOfTruncatedRead(usize),
}

impl Tail {
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
    pub(super) fn remember_copy(&mut self, path: &Path, meta: &Metadata, head: &[u8]) {
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
    pub(super) fn relation(&self, file: &File, size: u64, head: &[u8]) -> io::Result<Relation> {
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
}
