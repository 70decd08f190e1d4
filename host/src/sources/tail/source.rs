//! One `[[source.tail]]`: a thread that finds files, reads complete lines,
//! submits their events, and advances each file's checkpoint once the
//! events before it have been handled.
//!
//! Files are held open: a renamed or deleted file is read through its
//! descriptor to its end, whatever its name is now, while the new file at
//! the path is followed too ("rotated" state, closed once it has not grown
//! for `rotate_wait`). A file that shrinks, or whose first bytes change,
//! was truncated (copytruncate): lines not yet read are read from the copy
//! when one is found next to it, and the file is read again from 0.
//!
//! Lines go to the dispatcher in batches; each event has a reply, and a
//! batch is complete when all of its replies are in. Batches complete in
//! order per file, so the checkpoint of a file is the end of its last
//! complete batch: every line before it has been handled.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, Metadata};
use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use serde_json::Value;
use tokio::sync::oneshot;

use super::checkpoint::{self, Checkpoint, CheckpointError, FileRecord, FileState, Store};
use super::identity::{read_full_at, read_head, FileId, Fingerprint, LineMark};
use super::lines::{strip_cr, Item, LineSplitter};
use super::parse::to_event;
use super::pattern::is_rotation_name;
use super::saver::Saver;
use super::watch::{DirWatcher, Signal};
use crate::config::{StartAt, TailSource};
use crate::dead_letter::{reason, BadLine};
use crate::dispatch::{Dispatcher, EventReport, Job, SubmitError};
use crate::envelope::Event;
use crate::stats::Stats;

/// Bytes read from a file at a time: large enough for throughput, small
/// enough that files take turns.
const CHUNK: usize = 256 << 10;
/// The safety net: look at every file this often even without events.
const POLL: Duration = Duration::from_secs(1);
/// Checkpoints are written at most this often while lines flow (and at
/// stop). It bounds the duplicates after `kill -9`, with the events in
/// flight; each write costs two fsyncs.
const SAVE_EVERY: Duration = Duration::from_millis(50);
/// File times come from a coarse clock; compare them with some slack.
const MTIME_SLACK_MS: u64 = 2_000;
/// How often a rotated file that was at its end is looked at again.
const ROTATED_LOOK: Duration = Duration::from_millis(50);
/// Lines per batch submitted to the dispatcher.
const MAX_BATCH: usize = 512;
/// Finished files remembered (to recognise them under another name).
const KEEP_RECORDS: usize = 1_000;
const RECORD_TTL_MS: u64 = 7 * 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot start a thread of the tail source {path}: {source}")]
    Thread { path: PathBuf, source: io::Error },
}

/// A running tail source.
pub struct TailHandle {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl TailHandle {
    /// Stops reading, waits until the events in flight have been handled
    /// and writes the final checkpoint. Blocking.
    pub fn stop(mut self) {
        self.signal.request_stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(source = %self.path.display(), "the tail source thread panicked");
            }
        }
    }

    /// Asks the source to stop without waiting (see [`TailHandle::stop`]).
    pub fn request_stop(&self) {
        self.signal.request_stop();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TailHandle {
    fn drop(&mut self) {
        // Not stopped explicitly (an error path): at least stop reading.
        self.signal.request_stop();
    }
}

/// Starts following `cfg.path`. Fails when the checkpoint cannot be
/// locked or read; problems with single files are logged and retried.
pub fn spawn(
    cfg: TailSource,
    state_dir: &Path,
    dispatcher: Arc<Dispatcher>,
) -> Result<TailHandle, TailError> {
    let store = Store::open(state_dir, &cfg.path)?;
    let checkpoint = store.load(&cfg.path)?;
    let checkpoint_path = store.path().to_path_buf();
    let thread_error = |source| TailError::Thread {
        path: cfg.path.clone(),
        source,
    };
    let saver = Saver::start(store, dispatcher.shared().clone()).map_err(thread_error)?;
    let (signal, wake) = Signal::new();
    let (root, recursive) = cfg.pattern.watch_root();
    let watcher = DirWatcher::new(signal.clone(), root, recursive);
    let path = cfg.path.clone();
    let batch_max = MAX_BATCH.min(dispatcher.capacity()).max(1);
    let source = Source {
        max_line: cfg.max_line as usize,
        cfg,
        saver,
        checkpoint_path,
        dispatcher,
        waker: Waker::from(signal.clone()),
        signal: signal.clone(),
        wake,
        watcher,
        tailers: Vec::new(),
        records: Vec::new(),
        in_flight: VecDeque::new(),
        next_key: 0,
        since_ms: 0,
        scanned_at_ms: checkpoint::now_ms(),
        dirty: true,
        last_save: Instant::now(),
        last_poll: Instant::now(),
        batch_max,
        chunk: vec![0; CHUNK],
        parsed: Vec::new(),
        warned: HashSet::new(),
    };
    // Positioned before this returns: a line appended once the daemon has
    // started is never taken for one that was there before (`start_at`).
    let mut source = source;
    source.begin(checkpoint);
    let thread = std::thread::Builder::new()
        .name("tail".into())
        .spawn(move || source.run())
        .map_err(|source| TailError::Thread {
            path: path.clone(),
            source,
        })?;
    Ok(TailHandle {
        signal,
        thread: Some(thread),
        path,
    })
}

/// Why the source stops before being asked to.
#[derive(Debug)]
enum Halt {
    /// Asked to stop, or the dispatcher closed.
    Stop,
    /// Something that must not be skipped failed (a dead letter could not
    /// be written, an event was dropped unhandled): the checkpoint stays
    /// before it and the lines are read again after a restart.
    Failed,
}

/// How files without a checkpoint are treated in a look.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Look {
    /// The source has never saved a checkpoint: `start_at` applies.
    FirstRun,
    /// Starting from a checkpoint: files changed since it are new.
    Restart,
    /// Running: every file that appears is new, read from 0.
    Live,
}

/// A followed file.
struct Tailer {
    /// Unique within the source; batches name their file by it.
    key: u64,
    /// Where the file was found; events say `tail:<path>`.
    path: PathBuf,
    path_str: String,
    source: String,
    file: File,
    id: FileId,
    fp: Fingerprint,
    /// The first bytes, to recognise copies of this file.
    head: Vec<u8>,
    lines: LineSplitter,
    /// The line ending at `lines.consumed()`.
    last_line: Option<LineMark>,
    /// Every line before this offset has been handled.
    committed: u64,
    committed_line: Option<LineMark>,
    /// `Active` or `Rotated`.
    state: FileState,
    /// Size at the last look.
    size: u64,
    /// When it last grew (or was opened).
    grew: Instant,
    /// Rotated files at their end are looked at only this often: writers
    /// have usually moved on, and there can be many of them.
    next_look: Instant,
    /// Batches submitted and not complete.
    in_flight: usize,
}

impl Tailer {
    fn record(&self, state: FileState) -> FileRecord {
        FileRecord {
            size: self.size.max(self.committed),
            ..FileRecord::new(
                &self.path,
                self.id,
                self.fp,
                self.committed,
                self.committed_line,
                state,
            )
        }
    }
}

/// Lines submitted together; complete when every reply is in.
struct Batch {
    tailer: u64,
    /// The offset after the batch's last line.
    end: u64,
    end_line: Option<LineMark>,
    replies: Vec<oneshot::Receiver<EventReport>>,
    /// Replies before this one are in.
    next: usize,
}

/// A line read, turned into what happens to it.
enum Out {
    Event(Event),
    Bad(BadOut),
    /// Empty or whitespace only: nothing to handle.
    Blank,
}

struct BadOut {
    reason: &'static str,
    message: String,
    offset: u64,
    len: u64,
    bytes: Vec<u8>,
}

struct Parsed {
    out: Out,
    end: u64,
    mark: Option<LineMark>,
}

struct Source {
    cfg: TailSource,
    max_line: usize,
    /// Writes the checkpoints (and holds the lock on them).
    saver: Saver,
    checkpoint_path: PathBuf,
    dispatcher: Arc<Dispatcher>,
    signal: Arc<Signal>,
    waker: Waker,
    wake: Receiver<()>,
    watcher: DirWatcher,
    /// Files open now.
    tailers: Vec<Tailer>,
    /// `Done` and `Truncated` records: files (or content) no longer open.
    records: Vec<FileRecord>,
    in_flight: VecDeque<Batch>,
    next_key: u64,
    /// Unknown files changed after this (ms since the epoch) are new.
    since_ms: u64,
    /// The start of the last look, saved in the checkpoint.
    scanned_at_ms: u64,
    /// Something the checkpoint says has changed.
    dirty: bool,
    last_save: Instant,
    last_poll: Instant,
    batch_max: usize,
    chunk: Vec<u8>,
    parsed: Vec<Parsed>,
    /// Paths whose open failed, logged once until it works.
    warned: HashSet<PathBuf>,
}

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
    fn stats(&self) -> &Stats {
        &self.dispatcher.shared().stats
    }

    /// Picks up where the checkpoint left off and looks at the files once.
    fn begin(&mut self, checkpoint: Option<Checkpoint>) {
        let first_run = checkpoint.is_none();
        if let Some(cp) = checkpoint {
            self.since_ms = cp.scanned_at_ms.saturating_sub(MTIME_SLACK_MS);
            tracing::info!(source = %self.cfg.path.display(), checkpoint = %self.checkpoint_path.display(), files = cp.files.len(), "resuming from checkpoint");
            for rec in cp.files {
                match rec.state {
                    FileState::Done | FileState::Truncated => self.records.push(rec),
                    FileState::Active | FileState::Rotated => self.resume(rec),
                }
            }
        }
        self.signal.scan.store(false, Ordering::Release);
        self.scan(if first_run { Look::FirstRun } else { Look::Restart });
        // Save the starting points now: after a crash before the next save,
        // `start_at = "end"` must not skip what was appended meanwhile.
        self.save();
    }

    fn run(mut self) {
        let halt = self.serve();
        if matches!(halt, Halt::Failed) {
            tracing::error!(source = %self.cfg.path.display(), "tail source stopped after a failure; its checkpoint stays before the failed line, which is read again after a restart");
        }
        self.finish();
    }

    fn serve(&mut self) -> Halt {
        loop {
            if self.signal.stopping() {
                return Halt::Stop;
            }
            if let Err(h) = self.poll_completions() {
                return h;
            }
            let polled = self.last_poll.elapsed() >= POLL;
            if polled {
                self.watcher.ensure();
                self.last_poll = Instant::now();
            }
            if self.signal.scan.swap(false, Ordering::AcqRel) || polled {
                self.scan(Look::Live);
            }
            let progressed = match self.read_all() {
                Ok(p) => p,
                Err(h) => return h,
            };
            if let Err(h) = self.close_finished() {
                return h;
            }
            self.maybe_save();
            if !progressed {
                let timeout = self.next_timeout();
                let _ = self.wake.recv_timeout(timeout);
            }
        }
    }

    /// Waits for the events in flight, then writes the last checkpoint.
    fn finish(mut self) {
        while !self.in_flight.is_empty() {
            if self.poll_completions().is_err() {
                break;
            }
            if !self.in_flight.is_empty() {
                let _ = self.wake.recv_timeout(Duration::from_millis(100));
            }
        }
        self.save();
        self.saver.close();
        tracing::info!(source = %self.cfg.path.display(), "tail source stopped");
    }

    fn next_timeout(&self) -> Duration {
        let mut t = POLL.saturating_sub(self.last_poll.elapsed());
        if self.dirty {
            t = t.min(SAVE_EVERY.saturating_sub(self.last_save.elapsed()));
        }
        for tl in &self.tailers {
            if tl.state == FileState::Rotated {
                t = t.min(self.cfg.rotate_wait.saturating_sub(tl.grew.elapsed()));
            }
        }
        t.max(Duration::from_millis(1))
    }

    fn new_tailer(
        &mut self,
        path: &Path,
        file: File,
        meta: &Metadata,
        head: Vec<u8>,
        (offset, mark): (u64, Option<LineMark>),
        state: FileState,
    ) {
        let key = self.next_key;
        self.next_key += 1;
        let path_str = path.to_string_lossy().into_owned();
        tracing::info!(file = %path.display(), offset, state = ?state, inode = meta.ino(), "following");
        self.tailers.push(Tailer {
            key,
            path: path.to_path_buf(),
            source: format!("tail:{path_str}"),
            path_str,
            file,
            id: FileId::of(meta),
            fp: Fingerprint::of(&head),
            head,
            lines: LineSplitter::new(offset, self.max_line),
            last_line: mark,
            committed: offset,
            committed_line: mark,
            state,
            size: meta.len(),
            grew: Instant::now(),
            next_look: Instant::now(),
            in_flight: 0,
        });
        self.dirty = true;
    }

    /// Picks up a file the checkpoint was following.
    fn resume(&mut self, rec: FileRecord) {
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
    fn truncated_content(&mut self, rec: FileRecord) {
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
            if self.tailers.iter().any(|t| t.id.same_file(&id))
                || self
                    .records
                    .iter()
                    .any(|r| r.state == FileState::Done && r.id().same_file(&id))
            {
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
            let same_start = if head.len() as u64 >= t.fp.len {
                t.fp.len > 0 && t.fp.is_prefix_of(head)
            } else {
                !head.is_empty() && t.head.starts_with(head)
            };
            if !same_start {
                continue;
            }
            let t_size = t.file.metadata().map_or(0, |m| m.len());
            // The followed file no longer holds what it held: truncated and
            // not handled yet. This file, starting like it, is its copy;
            // the truncation tells how much of it was read.
            let gone = t_size < t.lines.read_pos() || !t.fp.is_prefix_of(&read_head(&t.file, t_size)?);
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
    fn scan(&mut self, look: Look) {
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
        if look != Look::FirstRun {
            self.discover_missed();
        }
        self.scanned_at_ms = started;
        // After the very first look, rotations already there are history
        // (as `start_at` says for the files themselves): no slack.
        self.since_ms = match look {
            Look::FirstRun => started,
            _ => started.saturating_sub(MTIME_SLACK_MS),
        };
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
        if self.tailers.iter().any(|t| t.id.same_file(&id)) {
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
                let new = match look {
                    Look::Live => true,
                    Look::Restart => mtime_ms(&meta) > self.since_ms,
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
    fn discover_missed(&mut self) {
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
                if self.tailers.iter().any(|t| t.id.same_file(&id)) {
                    continue;
                }
                found.push((mtime_ms(&meta), path, dir.join(base)));
            }
            // Oldest first: the order they were written in.
            found.sort();
            for (_, path, origin) in found {
                self.consider_missed(&path, &origin);
            }
        }
    }

    fn consider_missed(&mut self, path: &Path, origin: &Path) {
        let Ok(Some((file, meta))) = open_regular(path) else {
            return;
        };
        let id = FileId::of(&meta);
        if self.tailers.iter().any(|t| t.id.same_file(&id)) {
            return;
        }
        let head = read_head(&file, meta.len()).unwrap_or_default();
        if let Some(i) = self
            .records
            .iter()
            .position(|r| r.state == FileState::Done && r.id().same_file(&id))
        {
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
            return;
        }
        if head.is_empty() {
            return; // nothing in it yet; looked at again when it changes
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
            Ok(Relation::CopyOfLive) => {}
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read"),
        }
    }

    /// Reads one chunk from every file that has more; true if any had.
    fn read_all(&mut self) -> Result<bool, Halt> {
        let mut progressed = false;
        let mut i = 0;
        while i < self.tailers.len() {
            if self.signal.stopping() {
                return Err(Halt::Stop);
            }
            progressed |= self.read_one(i)?;
            i += 1;
        }
        Ok(progressed)
    }

    fn read_one(&mut self, i: usize) -> Result<bool, Halt> {
        let t = &mut self.tailers[i];
        if t.state == FileState::Rotated && Instant::now() < t.next_look {
            return Ok(false);
        }
        let meta = match t.file.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot stat an open file");
                return Ok(false);
            }
        };
        let size = meta.len();
        let pos = t.lines.read_pos();
        if size < pos {
            self.truncated(i, size)?;
            return Ok(true);
        }
        if size == pos {
            t.size = size;
            if t.state == FileState::Rotated {
                t.next_look = Instant::now() + ROTATED_LOOK;
            }
            if t.state == FileState::Active && meta.nlink() == 0 {
                t.state = FileState::Rotated;
                Stats::add(&self.dispatcher.shared().stats.tail_rotations, 1);
                tracing::info!(file = %t.path.display(), "deleted: read to its end");
                self.dirty = true;
            }
            return Ok(false);
        }
        // It grew. Same first bytes? A file truncated and written past our
        // offset between two looks is told by them.
        let head = match read_head(&t.file, size) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot read");
                return Ok(false);
            }
        };
        if !t.fp.is_prefix_of(&head) {
            self.truncated(i, size)?;
            return Ok(true);
        }
        if head.len() as u64 > t.fp.len {
            t.fp = Fingerprint::of(&head);
            t.head = head;
            self.dirty = true;
        }
        let want = ((size - pos) as usize).min(CHUNK);
        let got = match read_full_at(&t.file, &mut self.chunk[..want], pos) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(file = %t.path.display(), error = %e, "cannot read");
                return Ok(false);
            }
        };
        t.size = size;
        t.grew = Instant::now();
        // Both buffers are kept from one read to the next.
        let chunk = std::mem::take(&mut self.chunk);
        let mut parsed = std::mem::take(&mut self.parsed);
        self.parse(i, &chunk[..got], &mut parsed);
        self.chunk = chunk;
        let result = self.submit_parsed(i, parsed.drain(..));
        self.parsed = parsed;
        result?;
        Ok(got > 0)
    }

    fn parse(&mut self, i: usize, chunk: &[u8], out: &mut Vec<Parsed>) {
        let max_line = self.max_line;
        let format = &self.cfg.format;
        let Tailer {
            lines,
            source,
            path_str,
            last_line,
            ..
        } = &mut self.tailers[i];
        let before = out.len();
        lines.feed(chunk, |item| {
            let end = item.end();
            match item {
                Item::Line { offset, content } => {
                    let mark = Some(LineMark::of_line(content));
                    let text = strip_cr(content);
                    let bad = |reason, message| {
                        Out::Bad(BadOut {
                            reason,
                            message,
                            offset,
                            len: content.len() as u64,
                            bytes: text.to_vec(),
                        })
                    };
                    let o = match std::str::from_utf8(text) {
                        Err(e) => bad(
                            "invalid_utf8",
                            format!("not valid UTF-8 (byte {} of the line)", e.valid_up_to()),
                        ),
                        Ok(s) if s.trim().is_empty() => Out::Blank,
                        Ok(s) => match to_event(format, s, source) {
                            Ok(mut ev) => {
                                ev.meta.insert("file".into(), Value::String(path_str.clone()));
                                ev.meta.insert("offset".into(), Value::from(offset));
                                Out::Event(ev)
                            }
                            Err(msg) => bad("unparsable", msg),
                        },
                    };
                    out.push(Parsed { out: o, end, mark });
                }
                Item::TooLong { offset, len, prefix } => out.push(Parsed {
                    out: Out::Bad(BadOut {
                        reason: "too_long",
                        message: format!("the line is {len} bytes, longer than max_line ({max_line} bytes)"),
                        offset,
                        len,
                        bytes: prefix,
                    }),
                    end,
                    mark: None,
                }),
            }
        });
        if out.len() > before {
            *last_line = out.last().and_then(|p| p.mark);
        }
    }

    fn submit_parsed(&mut self, i: usize, parsed: impl ExactSizeIterator<Item = Parsed>) -> Result<(), Halt> {
        let key = self.tailers[i].key;
        let mut rest = parsed.peekable();
        while rest.peek().is_some() {
            let n = rest.len().min(self.batch_max);
            let mut jobs = Vec::with_capacity(n);
            let mut replies = Vec::with_capacity(n);
            let mut bad = Vec::new();
            let (mut end, mut end_line) = (0, None);
            for p in rest.by_ref().take(n) {
                (end, end_line) = (p.end, p.mark);
                match p.out {
                    Out::Event(ev) => {
                        let (job, rx) = Job::with_ack(ev);
                        jobs.push(job);
                        replies.push(rx);
                    }
                    Out::Bad(b) => bad.push(b),
                    Out::Blank => {}
                }
            }
            let n = jobs.len() as u64;
            if !jobs.is_empty() {
                self.submit(jobs)?;
                Stats::add(&self.stats().tail_lines, n);
            }
            if !bad.is_empty() {
                self.write_bad(i, &bad)?;
            }
            self.in_flight.push_back(Batch {
                tailer: key,
                end,
                end_line,
                replies,
                next: 0,
            });
            self.tailers[i].in_flight += 1;
        }
        Ok(())
    }

    /// Queues jobs, waiting for room: while the queue is full nothing more
    /// is read (backpressure), but replies are collected and checkpoints
    /// written, and new files are opened so that none rotates away unseen.
    fn submit(&mut self, jobs: Vec<Job>) -> Result<(), Halt> {
        let dispatcher = self.dispatcher.clone();
        let mut fut = pin!(dispatcher.submit(jobs));
        loop {
            let mut cx = Context::from_waker(&self.waker);
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(())) => return Ok(()),
                Poll::Ready(Err(SubmitError::Closed)) => return Err(Halt::Stop),
                Poll::Ready(Err(e)) => {
                    tracing::error!(source = %self.cfg.path.display(), error = %e, "cannot submit");
                    return Err(Halt::Failed);
                }
                Poll::Pending => {
                    if self.signal.stopping() {
                        return Err(Halt::Stop);
                    }
                    self.poll_completions()?;
                    self.maybe_save();
                    if self.signal.scan.swap(false, Ordering::AcqRel) {
                        self.scan(Look::Live);
                    }
                    let _ = self.wake.recv_timeout(Duration::from_millis(100));
                }
            }
        }
    }

    /// Writes lines that are not events to dead letters, flushed: they are
    /// then as handled as an event is.
    fn write_bad(&mut self, i: usize, bad: &[BadOut]) -> Result<(), Halt> {
        let shared = self.dispatcher.shared();
        let t = &self.tailers[i];
        for b in bad {
            let letter = BadLine {
                reason: b.reason,
                message: &b.message,
                source: &t.source,
                file: &t.path_str,
                offset: b.offset,
                len: b.len,
                bytes: &b.bytes,
            };
            if let Err(e) = shared.dead_letters.write_bad_line(&letter) {
                Stats::add(&shared.stats.dead_letter_errors, 1);
                tracing::error!(file = %t.path.display(), offset = b.offset, reason = b.reason, error = %e, "cannot write a dead letter for a line that is not an event");
                return Err(Halt::Failed);
            }
            shared.stats.metrics.dead_letter(reason::BAD_LINE).inc();
            tracing::debug!(file = %t.path.display(), offset = b.offset, reason = b.reason, message = %b.message, "line is not an event");
        }
        Stats::add(&shared.stats.tail_bad_lines, bad.len() as u64);
        let first = &bad[0];
        tracing::warn!(file = %t.path.display(), offset = first.offset, reason = first.reason, message = %first.message, lines = bad.len(), "lines that are not events went to dead letters");
        if let Err(e) = shared.dead_letters.flush() {
            Stats::add(&shared.stats.dead_letter_errors, 1);
            tracing::error!(path = %shared.dead_letters.path().display(), error = %e, "cannot flush dead letters");
            return Err(Halt::Failed);
        }
        Ok(())
    }

    /// Notes the batches whose events have all been handled, in order.
    fn poll_completions(&mut self) -> Result<(), Halt> {
        let mut cx = Context::from_waker(&self.waker);
        while let Some(b) = self.in_flight.front_mut() {
            while b.next < b.replies.len() {
                match Pin::new(&mut b.replies[b.next]).poll(&mut cx) {
                    Poll::Ready(Ok(_)) => b.next += 1,
                    Poll::Ready(Err(_)) => {
                        let file = self
                            .tailers
                            .iter()
                            .find(|t| t.key == b.tailer)
                            .map(|t| t.path.display().to_string());
                        tracing::error!(file = ?file, before = b.end, "an event was dropped without being handled (a worker died)");
                        return Err(Halt::Failed);
                    }
                    Poll::Pending => return Ok(()),
                }
            }
            let b = self.in_flight.pop_front().expect("front exists");
            Stats::add(
                &self.dispatcher.shared().stats.tail_lines_handled,
                b.replies.len() as u64,
            );
            if let Some(t) = self.tailers.iter_mut().find(|t| t.key == b.tailer) {
                t.committed = b.end;
                t.committed_line = b.end_line;
                t.in_flight -= 1;
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Waits until every batch of the tailer `key` is complete.
    fn drain(&mut self, key: u64) -> Result<(), Halt> {
        while self.in_flight.iter().any(|b| b.tailer == key) {
            self.poll_completions()?;
            if self.in_flight.iter().any(|b| b.tailer == key) {
                let _ = self.wake.recv_timeout(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The file shrank or its first bytes changed: copytruncate (or a
    /// rewrite). Reads the rest from the copy when found, then the file
    /// again from 0.
    fn truncated(&mut self, i: usize, size: u64) -> Result<(), Halt> {
        let key = self.tailers[i].key;
        self.drain(key)?;
        let stats = &self.dispatcher.shared().stats;
        Stats::add(&stats.tail_truncations, 1);
        let t = &mut self.tailers[i];
        let consumed = t.lines.consumed();
        // Bytes we saw in the file and had not made lines of.
        let unread = t.size.max(t.lines.read_pos()).saturating_sub(consumed);
        let old = FileRecord::new(&t.path, t.id, t.fp, consumed, t.last_line, FileState::Truncated);
        let head = read_head(&t.file, size).unwrap_or_default();
        t.key = self.next_key;
        self.next_key += 1;
        t.fp = Fingerprint::of(&head);
        t.head = head;
        t.lines.reset(0);
        t.last_line = None;
        t.committed = 0;
        t.committed_line = None;
        t.size = size;
        t.grew = Instant::now();
        let path = t.path.clone();
        self.dirty = true;
        let copies_before = self.tailers.len();
        self.truncated_content(old);
        let copied = self.tailers.len() > copies_before;
        if copied {
            tracing::info!(file = %path.display(), offset = consumed, "truncated (copytruncate): reading on from the copy, and the file again from 0");
        } else if unread > 0 {
            Stats::add(
                &self.dispatcher.shared().stats.tail_copytruncate_lost_bytes,
                unread,
            );
            tracing::warn!(file = %path.display(), offset = consumed, bytes = unread, "truncated before these bytes were read and no copy was found: they are lost");
        } else {
            tracing::info!(file = %path.display(), offset = consumed, "truncated (copytruncate): reading again from 0");
        }
        Ok(())
    }

    /// Closes rotated files that were read to their end and have not grown
    /// for `rotate_wait`.
    fn close_finished(&mut self) -> Result<(), Halt> {
        let mut i = 0;
        while i < self.tailers.len() {
            let t = &self.tailers[i];
            let idle = t.state == FileState::Rotated
                && t.in_flight == 0
                && t.grew.elapsed() >= self.cfg.rotate_wait
                && t.file.metadata().is_ok_and(|m| m.len() == t.lines.read_pos());
            if !idle {
                i += 1;
                continue;
            }
            // The file will not grow: its unfinished last line is all there
            // will be. Not an event; kept in dead letters.
            if let Some(p) = self.tailers[i].lines.take_partial() {
                let bad = BadOut {
                    reason: "incomplete",
                    message: "the file was rotated or deleted with this last line unfinished (no newline)"
                        .into(),
                    offset: p.offset,
                    len: p.len,
                    bytes: p.bytes,
                };
                self.write_bad(i, std::slice::from_ref(&bad))?;
                let t = &mut self.tailers[i];
                t.committed = t.lines.consumed();
                t.committed_line = None;
            }
            let t = self.tailers.remove(i);
            tracing::info!(file = %t.path.display(), offset = t.committed, inode = t.id.ino, "finished a rotated file");
            self.records.push(t.record(FileState::Done));
            self.dirty = true;
        }
        Ok(())
    }

    fn maybe_save(&mut self) {
        if self.dirty && self.last_save.elapsed() >= SAVE_EVERY {
            self.save();
        }
    }

    fn save(&mut self) {
        let now = checkpoint::now_ms();
        self.records
            .retain(|r| r.since_ms.is_none_or(|t| now.saturating_sub(t) < RECORD_TTL_MS));
        if self.records.len() > KEEP_RECORDS {
            let excess = self.records.len() - KEEP_RECORDS;
            self.records.drain(..excess);
        }
        let mut files: Vec<FileRecord> = self.tailers.iter().map(|t| t.record(t.state)).collect();
        files.extend(self.records.iter().cloned());
        let cp = Checkpoint {
            version: checkpoint::VERSION,
            pattern: self.cfg.path.clone(),
            scanned_at_ms: self.scanned_at_ms,
            files,
        };
        self.last_save = Instant::now();
        self.dirty = false;
        self.saver.save(cp);
    }
}
