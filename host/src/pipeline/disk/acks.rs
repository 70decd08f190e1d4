//! The acker thread: an event leaves the queue once handled *and* settled.
//! Workers hand over handled seqs ([`super::DiskQueue`]'s `handled`); this
//! thread calls `settle` (every sink and the dead-letter log made durable
//! or delivered what they took so far), then appends the seqs to their
//! segment's ack file with one write(2) per segment, not fsynced (a lost
//! ack costs a redelivery, never an event), and deletes each segment,
//! with its ack file, once every record in it is acked and the committer
//! moved on to a newer one. Also keeps the queue's gauges current.
//!
//! An ack file holds u64 LE entries: a seq, or, with the top bit set, the
//! offset of damage recovery already dead-lettered.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::{ack_path, lock, now_ms, seg_path, Inner};

/// The top bit of an ack entry: the rest is a damaged range's offset.
pub(super) const DAMAGE: u64 = 1 << 63;

/// How often the gauges are brought up to date with no acks coming.
const TICK: Duration = Duration::from_millis(500);

/// The acker thread: runs until the queue stops and its acks are written.
pub(super) fn run(inner: &Inner) {
    let mut files: HashMap<u64, File> = HashMap::new();
    let mut taken: Vec<u64> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let stopping = {
            let mut a = lock(&inner.acks);
            while a.is_empty() && !inner.stop.load(Relaxed) {
                let (g, timeout) = inner
                    .acker
                    .wait_timeout(a, TICK)
                    .unwrap_or_else(|e| e.into_inner());
                a = g;
                if timeout.timed_out() {
                    break;
                }
            }
            std::mem::swap(&mut *a, &mut taken);
            inner.stop.load(Relaxed) && taken.is_empty()
        };
        if !taken.is_empty() {
            if (inner.settle)() {
                persist(inner, &mut files, &mut buf, &mut taken);
            } else {
                // Not durable in their sinks: they stay, redelivered after a restart.
                taken.clear();
            }
            // A fully acked active segment counts as room (see `log::enqueue`).
            inner.room.notify_waiters();
        }
        sweep(inner, &mut files);
        gauges(inner);
        if stopping {
            return;
        }
    }
}

/// Appends the acked seqs (emptied) to their segments' ack files.
fn persist(inner: &Inner, files: &mut HashMap<u64, File>, buf: &mut Vec<u8>, seqs: &mut Vec<u64>) {
    seqs.sort_unstable();
    // Runs of seqs per segment: (segment id, end of the run in `seqs`).
    let mut runs: Vec<(u64, usize, usize)> = Vec::new();
    {
        let mut segs = lock(&inner.segs);
        let mut i = 0;
        while i < seqs.len() {
            let Some(id) = segs.map.range(..=seqs[i]).next_back().map(|(k, _)| *k) else {
                i += 1;
                continue;
            };
            let next = segs.map.range(id + 1..).next().map(|(k, _)| *k);
            let end = next.map_or(seqs.len(), |n| i + seqs[i..].partition_point(|s| *s < n));
            if let Some(seg) = segs.map.get_mut(&id) {
                seg.unacked = seg.unacked.saturating_sub((end - i) as u64);
            }
            runs.push((id, i, end));
            i = end;
        }
    }
    for (id, from, to) in runs {
        buf.clear();
        for s in &seqs[from..to] {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        append(inner, files, id, buf);
    }
    seqs.clear();
}

thread_local! {
    /// When the acker last logged a failed ack write (ms since the epoch):
    /// on a full disk every round fails, so it says so once a second.
    static LOGGED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether a failed ack write may be logged now (at most once a second).
fn log_now() -> bool {
    let now = now_ms();
    LOGGED.with(|l| now.saturating_sub(l.replace(now)) >= 1000)
}

/// One write(2) of ack entries to segment `id`'s ack file.
fn append(inner: &Inner, files: &mut HashMap<u64, File>, id: u64, bytes: &[u8]) {
    let path = ack_path(&inner.dir, id);
    let file = match files.entry(id) {
        std::collections::hash_map::Entry::Occupied(f) => f.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => v.insert(f),
                Err(e) => {
                    if log_now() {
                        tracing::warn!(path = %path.display(), error = %e, "cannot open a disk queue ack file; these events will be delivered again after a restart (logged at most once a second)");
                    }
                    return;
                }
            }
        }
    };
    if let Err(e) = file.write_all(bytes) {
        if log_now() {
            tracing::warn!(path = %path.display(), error = %e, "cannot write a disk queue ack file; these events will be delivered again after a restart (logged at most once a second)");
        }
    }
}

/// Deletes every segment but the active one whose records are all acked.
fn sweep(inner: &Inner, files: &mut HashMap<u64, File>) {
    let gone: Vec<(u64, u64)> = {
        let mut segs = lock(&inner.segs);
        let active = segs.active;
        let done: Vec<u64> = segs
            .map
            .iter()
            .filter(|(id, s)| **id != active && s.unacked == 0)
            .map(|(id, _)| *id)
            .collect();
        done.into_iter()
            .filter_map(|id| segs.map.remove(&id).map(|s| (id, s.len)))
            .collect()
    };
    if gone.is_empty() {
        return;
    }
    for (id, len) in gone {
        files.remove(&id);
        let seg = seg_path(&inner.dir, id);
        if let Err(e) = std::fs::remove_file(&seg) {
            tracing::warn!(segment = %seg.display(), error = %e, "cannot delete a fully acked disk queue segment");
        }
        let _ = std::fs::remove_file(ack_path(&inner.dir, id));
        inner.bytes.fetch_sub(len, Relaxed);
    }
    inner.room.notify_waiters();
}

/// Bytes on disk and the age of the oldest segment holding unacked events.
fn gauges(inner: &Inner) {
    let m = &inner.stats.metrics;
    m.queue_bytes.set(inner.bytes.load(Relaxed) as i64);
    let oldest = lock(&inner.segs)
        .map
        .values()
        .filter(|s| s.unacked > 0)
        .filter_map(|s| s.first_ms)
        .min();
    let age = oldest.map_or(0.0, |t| now_ms().saturating_sub(t) as f64 / 1000.0);
    m.queue_oldest_age.set(age);
}
