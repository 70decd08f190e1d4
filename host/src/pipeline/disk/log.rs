//! The committer: the one thread that writes the log. Submits encode their
//! batch (one buffer per batch, records sealed with their seqs under the
//! pending lock) and queue it; the committer takes every batch queued,
//! writes them with one write(2), fsyncs once for all of them
//! (`sync = "batch"`, so concurrent submits share the fsync) or marks the
//! log dirty for the timer (`"interval"`), then hands the events to the
//! window and answers the submits.
//!
//! A write or fsync that fails (ENOSPC, EFBIG, EIO) is undone: the segment
//! is truncated back to where the group began, so the log stays valid; the
//! group's submits get [`SubmitError::Unavailable`], the error is logged
//! and counted, and the next submit simply tries again (recovery by
//! itself once there is room).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{lock, now_ms, record, seg_path, sync_each, Inner, Item, Seg, Window};
use crate::config::SyncMode;
use crate::event::Event;
use crate::pipeline::queue::{Ack, Notifier, SubmitError};
use crate::telemetry::Stats;

/// Batches waiting for the committer.
pub(super) struct Pending {
    /// The seq the next record gets.
    next_seq: u64,
    batches: Vec<Batch>,
    /// Admission ended ([`close`]).
    closed: bool,
    /// Start a new segment before the next write: the active one is fully
    /// acked and its bytes were let go for admission (see [`enqueue`]).
    roll: bool,
}

impl Pending {
    pub(super) fn new(next_seq: u64) -> Pending {
        Pending {
            next_seq,
            batches: Vec::new(),
            closed: false,
            roll: false,
        }
    }
}

/// One submit's events, encoded.
pub(super) struct Batch {
    /// The records, one after another, as they go to disk.
    pub(super) buf: Vec<u8>,
    /// Where each record starts in `buf`.
    starts: Vec<usize>,
    pub(super) events: Vec<Event>,
    /// One per event when someone waits for them to be handled.
    pub(super) notify: Vec<Notifier>,
    detailed: bool,
    first_seq: u64,
    reply: Option<oneshot::Sender<Result<(), SubmitError>>>,
}

impl Batch {
    /// Encodes `events` into one buffer (headers left to [`enqueue`]).
    pub(super) fn encode(events: Vec<Event>, ack: Ack) -> Batch {
        let mut buf = Vec::with_capacity(events.len() * 256);
        let mut starts = Vec::with_capacity(events.len());
        for e in &events {
            starts.push(record::begin(&mut buf));
            serde_json::to_writer(&mut buf, e).expect("an event always serialises");
        }
        Batch {
            buf,
            starts,
            events,
            notify: Vec::new(),
            detailed: ack == Ack::Report,
            first_seq: 0,
            reply: None,
        }
    }
}

/// Reserves room for the batch within `max_bytes`, gives its records their
/// seqs and queues it for the committer. Errors: `Closed`, `Backlog` (with
/// the batch back, to wait and try again).
#[allow(clippy::result_large_err)]
pub(super) fn enqueue(
    inner: &Inner,
    mut batch: Batch,
) -> Result<oneshot::Receiver<Result<(), SubmitError>>, (SubmitError, Batch)> {
    let mut p = lock(&inner.pending);
    if p.closed || inner.stop.load(Relaxed) {
        return Err((SubmitError::Closed, batch));
    }
    let len = batch.buf.len() as u64;
    let max_bytes = inner.cfg.max_bytes;
    let before = inner.bytes.fetch_add(len, Relaxed);
    if before + len > max_bytes {
        // The active segment's bytes count as free once all its records
        // are acked: it is rolled before this write and then deleted.
        // Without this, a batch larger than the room left beside a
        // not-yet-full active segment would wait forever.
        let reclaimable = {
            let segs = lock(&inner.segs);
            segs.map
                .get(&segs.active)
                .filter(|s| s.unacked == 0)
                .map_or(0, |s| s.len)
        };
        if before + len - reclaimable.min(before) > max_bytes {
            inner.bytes.fetch_sub(len, Relaxed);
            return Err((SubmitError::Backlog { max_bytes }, batch));
        }
        p.roll = true;
    }
    let now = now_ms();
    batch.first_seq = p.next_seq;
    let n = batch.starts.len();
    for (k, &at) in batch.starts.iter().enumerate() {
        let end = batch.starts.get(k + 1).copied().unwrap_or(batch.buf.len());
        record::seal(&mut batch.buf, at, end, p.next_seq + k as u64, now);
    }
    p.next_seq += n as u64;
    let (tx, rx) = oneshot::channel();
    batch.reply = Some(tx);
    p.batches.push(batch);
    drop(p);
    inner.committer.notify_one();
    Ok(rx)
}

/// Ends admission: batches already queued are still written.
pub(super) fn close(inner: &Inner) {
    lock(&inner.pending).closed = true;
    inner.committer.notify_one();
}

/// The segment being written.
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) file: File,
    pub(super) len: u64,
}

/// The committer thread: runs until the queue stops.
pub(super) fn run(inner: &Inner, mut active: Active) {
    let interval = match inner.cfg.sync {
        SyncMode::Interval(d) => Some(d),
        SyncMode::Batch => None,
    };
    let mut group = Vec::new();
    let mut dirty = false;
    let mut last_sync = Instant::now();
    loop {
        let (batches, force_roll) = {
            let mut p = lock(&inner.pending);
            loop {
                if !p.batches.is_empty() {
                    break (std::mem::take(&mut p.batches), std::mem::take(&mut p.roll));
                }
                if p.closed {
                    let mut w = lock(&inner.window);
                    if !w.input_done {
                        w.input_done = true;
                        inner.workers.notify_all();
                    }
                }
                let due = interval
                    .filter(|_| dirty)
                    .map(|d| d.saturating_sub(last_sync.elapsed()));
                if inner.stop.load(Relaxed) || due == Some(Duration::ZERO) {
                    break (Vec::new(), false);
                }
                let wait = due.unwrap_or(Duration::from_secs(1));
                p = inner
                    .committer
                    .wait_timeout(p, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        if batches.is_empty() {
            if dirty {
                fsync(inner, &active);
                dirty = false;
                last_sync = Instant::now();
            }
            if inner.stop.load(Relaxed) {
                return;
            }
            continue;
        }
        if commit(inner, &mut active, batches, force_roll, &mut group) && interval.is_some() {
            dirty = true;
        }
    }
}

fn fsync(inner: &Inner, active: &Active) {
    Stats::add(&inner.stats.queue_fsyncs, 1);
    if let Err(e) = active.file.sync_data() {
        Stats::add(&inner.stats.queue_write_errors, 1);
        tracing::error!(segment = %seg_path(&inner.dir, active.id).display(), error = %e, "cannot fsync the disk queue; what it accepted since the last fsync survives a crash of the process but not a power loss");
    }
}

/// Writes one group of batches; returns whether it was written.
fn commit(
    inner: &Inner,
    active: &mut Active,
    mut batches: Vec<Batch>,
    force_roll: bool,
    group: &mut Vec<u8>,
) -> bool {
    let total: u64 = batches.iter().map(|b| b.buf.len() as u64).sum();
    let written = roll(inner, active, batches[0].first_seq, force_roll).and_then(|()| {
        let buf: &[u8] = if batches.len() == 1 {
            &batches[0].buf
        } else {
            group.clear();
            for b in &batches {
                group.extend_from_slice(&b.buf);
            }
            group
        };
        #[cfg(test)]
        if inner.fail_writes.load(Relaxed) > 0 {
            inner.fail_writes.fetch_sub(1, Relaxed);
            active.file.write_all_at(&buf[..buf.len() / 2], active.len)?;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        active.file.write_all_at(buf, active.len)?;
        if sync_each(&inner.cfg) {
            Stats::add(&inner.stats.queue_fsyncs, 1);
            active.file.sync_data()?;
        }
        Ok(())
    });
    if let Err(e) = written {
        undo(inner, active, batches, total, &e);
        return false;
    }
    let start = active.len;
    active.len += total;
    let n: u64 = batches.iter().map(|b| b.events.len() as u64).sum();
    {
        let mut segs = lock(&inner.segs);
        let seg = segs
            .map
            .get_mut(&active.id)
            .expect("the active segment is listed");
        seg.len = active.len;
        seg.unacked += n;
        seg.first_ms.get_or_insert_with(now_ms);
    }
    inner.depth.fetch_add(n as usize, Relaxed);
    let mut replies = Vec::with_capacity(batches.len());
    {
        let mut w = lock(&inner.window);
        w.committed = (active.id, active.len);
        let mut at = start;
        for b in &mut batches {
            replies.push(b.reply.take());
            let len = b.buf.len() as u64;
            hand_over(inner.capacity, &mut w, b, (active.id, at));
            at += len;
        }
    }
    inner.workers.notify_all();
    inner.reader.notify_one();
    for r in replies.into_iter().flatten() {
        let _ = r.send(Ok(()));
    }
    true
}

/// Puts a written batch's events in the window, or, when the window is
/// full or already spilling, leaves them on disk for the reader (from
/// `at`), keeping their waiters.
fn hand_over(capacity: usize, w: &mut Window, b: &mut Batch, at: (u64, u64)) {
    let mut notify = std::mem::take(&mut b.notify).into_iter();
    let events = std::mem::take(&mut b.events);
    if w.spill.is_none() && w.items.len() + events.len() <= capacity {
        for (k, event) in events.into_iter().enumerate() {
            w.items.push_back(Item {
                seq: b.first_seq + k as u64,
                event,
                detailed: b.detailed,
                notify: notify.next(),
            });
        }
        return;
    }
    w.spill.get_or_insert(at);
    for (k, n) in notify.enumerate() {
        w.waiters.insert(b.first_seq + k as u64, (b.detailed, n));
    }
}

/// Starts a new segment when the active one is full (or `force`d and not
/// empty), named by the seq of the first record it will hold.
fn roll(inner: &Inner, active: &mut Active, first_seq: u64, force: bool) -> std::io::Result<()> {
    if active.len < inner.seg_size && !(force && active.len > 0) {
        return Ok(());
    }
    let path = seg_path(&inner.dir, first_seq);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    if let Err(e) = File::open(&inner.dir).and_then(|d| d.sync_all()) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    if !sync_each(&inner.cfg) {
        // What the timer has not fsynced yet in the old segment.
        fsync(inner, active);
    }
    // One lock: the acker never sees the new segment empty and not active.
    let mut segs = lock(&inner.segs);
    segs.map.insert(
        first_seq,
        Seg {
            len: 0,
            unacked: 0,
            first_ms: None,
        },
    );
    segs.active = first_seq;
    drop(segs);
    *active = Active {
        id: first_seq,
        file,
        len: 0,
    };
    inner.acker.notify_one();
    Ok(())
}

/// Undoes a group that could not be written: truncates the segment back,
/// frees the bytes it reserved, answers its submits `Unavailable`.
fn undo(inner: &Inner, active: &Active, batches: Vec<Batch>, total: u64, e: &std::io::Error) {
    let path = seg_path(&inner.dir, active.id);
    let truncated = active.file.set_len(active.len);
    inner.bytes.fetch_sub(total, Relaxed);
    Stats::add(&inner.stats.queue_write_errors, 1);
    // A fully acked active segment is deleted only once rolled away from:
    // on a full disk, its space is what the next write needs.
    let acked = lock(&inner.segs)
        .map
        .get(&active.id)
        .is_some_and(|s| s.unacked == 0 && s.len > 0);
    if acked {
        lock(&inner.pending).roll = true;
    }
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    // At most once a second: producers retry quickly while the disk is full.
    let now = now_ms();
    if now.saturating_sub(inner.write_error_logged.swap(now, Relaxed)) >= 1000 {
        tracing::error!(segment = %path.display(), error = %e, events, bytes = total, truncated = truncated.is_ok(), "the disk queue cannot write; the submits are refused (503 / tail pauses) until it can (logged at most once a second; queue_write_errors_total counts each)");
    }
    let reason = e.to_string();
    for r in batches.into_iter().filter_map(|b| b.reply) {
        let _ = r.send(Err(SubmitError::Unavailable {
            reason: reason.clone(),
        }));
    }
}
