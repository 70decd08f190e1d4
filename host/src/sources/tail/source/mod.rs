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
//! Lines go in batches. With a durable queue (disk, issue 12) a batch is
//! complete once accepted (it survives `kill -9`), and a whole read goes
//! in one batch (one fsync). Otherwise (memory) each event has a
//! [`Handled`], and a batch is complete when all of them have resolved.
//! Batches complete in order per file, so a file's checkpoint is the end
//! of its last complete batch: every line before it has been queued
//! durably, or handled. A queue that cannot write (a full disk) pauses
//! reading (`pause`); the refused lines are read again.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::checkpoint::{self, Checkpoint, CheckpointError, FileRecord, FileState, Store};
use super::identity::{FileId, Fingerprint, LineMark};
use super::lines::LineSplitter;
use super::saver::Saver;
use super::watch::{DirWatcher, Signal};
use crate::config::TailSource;
use crate::dead_letter::DeadLetters;
use crate::pipeline::{Handled, Submitter};
use crate::shutdown::Shutdown;
use crate::sources::{Source, SourceContext};
use crate::telemetry::Stats;

mod copies;
mod discover;
mod pause;
mod read;

use read::{BadOut, Parsed};

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
/// Lines per batch: memory queue; durable queue (a read per fsync).
const MAX_BATCH: [usize; 2] = [512, 8192];
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

/// Opens the checkpoint of `cfg.path` and positions the source on the
/// files there, before it runs: a line appended once the daemon has
/// started is never taken for one that was there before (`start_at`).
/// Fails when the checkpoint cannot be locked or read, or its writer
/// thread cannot start; problems with single files are logged and retried.
pub fn open(cfg: TailSource, ctx: &SourceContext) -> Result<Tail, TailError> {
    let store = Store::open(&ctx.state_dir, &cfg.path)?;
    let checkpoint = store.load(&cfg.path)?;
    let checkpoint_path = store.path().to_path_buf();
    let durable = ctx.submitter.durable();
    let saver = Saver::start(store, ctx, durable).map_err(|source| TailError::Thread {
        path: cfg.path.clone(),
        source,
    })?;
    let (signal, wake) = Signal::new();
    let (root, recursive) = cfg.pattern.watch_root();
    let watcher = DirWatcher::new(signal.clone(), root, recursive);
    let batch_max = MAX_BATCH[usize::from(ctx.submitter.durable())].min(ctx.submitter.capacity());
    let mut tail = Tail {
        max_line: cfg.max_line as usize,
        cfg,
        saver,
        checkpoint_path,
        submitter: ctx.submitter.clone(),
        durable,
        pause: pause::Pause::new(),
        dead_letters: ctx.dead_letters.clone(),
        stats: ctx.stats.clone(),
        waker: Waker::from(signal.clone()),
        signal,
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
        batch_max: batch_max.max(1),
        chunk: vec![0; CHUNK],
        parsed: Vec::new(),
        warned: HashSet::new(),
    };
    tail.begin(checkpoint);
    Ok(tail)
}

impl Source for Tail {
    fn describe(&self) -> String {
        format!("tail {}", self.cfg.path.display())
    }

    fn run(self: Box<Self>, shutdown: Shutdown) {
        let mut tail = *self;
        let signal = tail.signal.clone();
        shutdown.on_shutdown(move || signal.request_stop());
        let halt = tail.serve();
        if matches!(halt, Halt::Failed) {
            tracing::error!(source = %tail.cfg.path.display(), "tail source stopped after a failure; its checkpoint stays before the failed line, which is read again after a restart");
        }
        tail.finish();
        // Last: the daemon's shutdown waits for this drop.
        drop(shutdown);
    }
}

/// Why the source stops before being asked to.
#[derive(Debug)]
enum Halt {
    /// Asked to stop, or the queue closed.
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
    /// Starting from a checkpoint: files it does not know are new, read
    /// from 0 (the checkpoint knows every file there at the first start).
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

/// Lines submitted together; complete when every event is handled.
struct Batch {
    tailer: u64,
    /// The offset after the batch's last line.
    end: u64,
    end_line: Option<LineMark>,
    /// Its events (lines that are events).
    events: u64,
    /// Empty with a durable queue: accepted, the batch is complete.
    handled: Vec<Handled>,
    /// Events before this one are handled.
    next: usize,
}

/// One `[[source.tail]]`, positioned on its files; runs as a [`Source`].
pub struct Tail {
    cfg: TailSource,
    max_line: usize,
    /// Writes the checkpoints (and holds the lock on them).
    saver: Saver,
    checkpoint_path: PathBuf,
    submitter: Arc<dyn Submitter>,
    /// Accepted survives `kill -9`: a batch is complete once accepted.
    durable: bool,
    /// Reading waits while the queue cannot write.
    pause: pause::Pause,
    dead_letters: DeadLetters,
    stats: Arc<Stats>,
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
    /// Unknown files named like rotations of followed ones and changed
    /// after this (ms since the epoch) came and went between two looks.
    since_ms: u64,
    /// The start of the last look, saved in the checkpoint.
    scanned_at_ms: u64,
    /// Something the checkpoint says has changed.
    dirty: bool,
    last_save: Instant,
    last_poll: Instant,
    /// Events per submit; halved when the queue says a batch never fits.
    batch_max: usize,
    chunk: Vec<u8>,
    parsed: Vec<Parsed>,
    /// Paths whose open failed, logged once until it works.
    warned: HashSet<PathBuf>,
}

impl Tail {
    fn stats(&self) -> &Stats {
        &self.stats
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
        if let Some(paused) = self.pause.remaining() {
            t = t.min(paused);
        }
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
