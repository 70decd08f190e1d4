//! The window of decoded events and its reader thread. The committer puts
//! written events straight into the window while it has room
//! (`[server] queue` events); past that they stay on disk only (the
//! window "spills") and this thread reads them back, in order of
//! acceptance, whenever the window is half empty: so a backlog of any
//! size costs memory for `[server] queue` events, not for the backlog.
//!
//! After a restart every unacked record is read this way. The reader also
//! skips records acked before the restart, dead-letters as `poison` the
//! events whose handling crashed the daemon `max_deliveries` times (see
//! `inflight`), and as `corrupt_record` damage it finds that recovery did
//! not already report.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::MutexGuard;

use super::record::{self, Parsed};
use super::recover::corrupt_letter;
use super::{lock, seg_path, Inner, Item, Pos, Window};
use crate::dead_letter::DeadLetterKind;
use crate::event::Event;
use crate::telemetry::Stats;

/// Bytes read from a segment at once.
const CHUNK: usize = 1 << 20;

/// What recovery tells the reader to pass over.
#[derive(Default)]
pub(super) struct Skip {
    /// Records acked before the restart.
    pub(super) acked: HashSet<u64>,
    /// Damage already dead-lettered: (segment, offset of the damage).
    pub(super) damaged: HashSet<Pos>,
}

/// Wakes the reader when the window is half empty and events wait on
/// disk; gives the lock back.
pub(super) fn wake_if_low<'a>(inner: &Inner, w: MutexGuard<'a, Window>) -> MutexGuard<'a, Window> {
    if w.spill.is_some() && w.items.len() <= inner.capacity / 2 {
        inner.reader.notify_one();
    }
    w
}

/// The reader thread: runs until the queue stops.
pub(super) fn run(inner: &Inner, skip: Skip, deliveries: HashMap<u64, u32>) {
    let mut r = Reader {
        inner,
        skip,
        deliveries,
        file: None,
        buf: Vec::new(),
    };
    loop {
        let (pos, end, room) = {
            let mut w = lock(&inner.window);
            loop {
                if inner.stop.load(Relaxed) {
                    return;
                }
                match w.spill {
                    Some(pos) if w.items.len() < inner.capacity => {
                        break (pos, w.committed, inner.capacity - w.items.len())
                    }
                    _ => w = inner.reader.wait(w).unwrap_or_else(|p| p.into_inner()),
                }
            }
        };
        let (mut items, pos) = r.read(pos, end, room);
        let mut w = lock(&inner.window);
        for item in &mut items {
            if let Some((detailed, notify)) = w.waiters.remove(&item.seq) {
                item.detailed = detailed;
                item.notify = Some(notify);
            }
        }
        w.items.extend(items);
        w.spill = (pos != w.committed).then_some(pos);
        if w.spill.is_none() {
            // Caught up: a segment held open would keep its disk space
            // after the acker deletes it.
            r.file = None;
        }
        drop(w);
        inner.workers.notify_all();
    }
}

struct Reader<'a> {
    inner: &'a Inner,
    skip: Skip,
    deliveries: HashMap<u64, u32>,
    /// The segment file being read.
    file: Option<(u64, File)>,
    buf: Vec<u8>,
}

impl Reader<'_> {
    /// Reads up to `room` events from `pos`, not past `end`; returns them
    /// and where reading stopped.
    fn read(&mut self, mut pos: Pos, end: Pos, room: usize) -> (Vec<Item>, Pos) {
        let mut items = Vec::new();
        while items.len() < room && pos != end {
            // A segment no longer listed was acked whole and deleted.
            let limit = if pos.0 == end.0 {
                end.1
            } else {
                lock(&self.inner.segs).map.get(&pos.0).map_or(0, |s| s.len)
            };
            if pos.1 >= limit {
                // On to the next segment (the committer rolled).
                let next = lock(&self.inner.segs)
                    .map
                    .range(pos.0 + 1..)
                    .next()
                    .map(|(id, _)| *id);
                match next {
                    Some(id) => pos = (id, 0),
                    None => break,
                }
                continue;
            }
            let Some(n) = self.fill(pos, limit) else { break };
            let mut at = 0;
            while at < n && items.len() < room {
                match record::parse(&self.buf[at..n]) {
                    Parsed::Record(rec, len) => {
                        let here = (pos.0, pos.1 + at as u64);
                        if let Some(item) = item(self.inner, &mut self.skip, &self.deliveries, rec, here) {
                            items.push(item);
                        }
                        at += len;
                    }
                    // Written whole up to `limit`: only a chunk's end cuts a record.
                    Parsed::Incomplete if pos.1 + (n as u64) < limit => break,
                    Parsed::Incomplete => {
                        damaged(
                            self.inner,
                            &mut self.skip,
                            (pos.0, pos.1 + at as u64),
                            &self.buf[at..n],
                        );
                        at = n;
                    }
                    Parsed::Damaged(len) => {
                        let bytes = &self.buf[at..at + len];
                        damaged(self.inner, &mut self.skip, (pos.0, pos.1 + at as u64), bytes);
                        at += len;
                    }
                }
            }
            if at == 0 {
                // A record longer than the chunk: read it whole next time,
                // unless its length runs past what was written (damage).
                let need = record::claimed_len(&self.buf[..n]);
                if need as u64 <= limit - pos.1 {
                    self.buf.resize(need, 0);
                    continue;
                }
                at = record::resync(&self.buf[..n]);
                damaged(self.inner, &mut self.skip, pos, &self.buf[..at]);
            }
            pos.1 += at as u64;
        }
        (items, pos)
    }

    /// Reads from `pos` up to `limit` (at most a chunk, or the buffer's
    /// size if larger) into the buffer; returns the bytes read.
    fn fill(&mut self, pos: Pos, limit: u64) -> Option<usize> {
        if self.file.as_ref().map(|(id, _)| *id) != Some(pos.0) {
            let path = seg_path(&self.inner.dir, pos.0);
            match File::open(&path) {
                Ok(f) => self.file = Some((pos.0, f)),
                Err(e) => {
                    tracing::error!(segment = %path.display(), error = %e, "cannot read a disk queue segment; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    return None;
                }
            }
        }
        let want = ((limit - pos.1) as usize).min(CHUNK.max(self.buf.len()));
        self.buf.resize(want.max(self.buf.len()), 0);
        let (_, file) = self.file.as_ref().expect("opened above");
        match file.read_exact_at(&mut self.buf[..want], pos.1) {
            Ok(()) => Some(want),
            Err(e) => {
                tracing::error!(segment = %seg_path(&self.inner.dir, pos.0).display(), offset = pos.1, error = %e, "cannot read a disk queue segment; retrying");
                std::thread::sleep(std::time::Duration::from_millis(200));
                None
            }
        }
    }
}

/// The event of a valid record, unless it was acked before the restart
/// or is dead-lettered now.
fn item(
    inner: &Inner,
    skip: &mut Skip,
    deliveries: &HashMap<u64, u32>,
    rec: record::Record<'_>,
    at: Pos,
) -> Option<Item> {
    if skip.acked.remove(&rec.seq) {
        return None;
    }
    let event: Event = match serde_json::from_slice(rec.payload) {
        Ok(e) => e,
        Err(e) => {
            let msg = format!("a disk queue record is not an event: {e}");
            letter(inner, rec.seq, |dl| {
                corrupt_letter(dl, &inner.dir, at, rec.payload, &msg)
            });
            return None;
        }
    };
    let deliveries = deliveries.get(&rec.seq).copied().unwrap_or(0);
    if deliveries >= inner.cfg.max_deliveries {
        Stats::add(&inner.stats.queue_poison, 1);
        tracing::error!(id = %event.id, name = %event.name, deliveries, "the daemon died running this event's handlers {deliveries} times; it goes to dead letters as poison");
        let msg = format!(
            "the daemon died {deliveries} times while this event's handlers ran ([queue] max_deliveries)"
        );
        letter(inner, rec.seq, |dl| {
            dl.write(&event, None, None, DeadLetterKind::Poison, &msg)
        });
        return None;
    }
    Some(Item {
        seq: rec.seq,
        event,
        detailed: false,
        notify: None,
    })
}

/// Writes a letter for record `seq` and acks the record: the acker
/// settles (syncing dead letters) before it writes the ack.
fn letter(
    inner: &Inner,
    seq: u64,
    write: impl FnOnce(&crate::dead_letter::DeadLetters) -> std::io::Result<()>,
) {
    let _ = write(&inner.dead_letters);
    let _ = inner.dead_letters.flush();
    inner.depth.fetch_sub(1, Relaxed);
    lock(&inner.acks).push(seq);
    inner.acker.notify_one();
}

/// Bytes with no valid record in a segment written whole: dead-lettered
/// unless recovery already did.
fn damaged(inner: &Inner, skip: &mut Skip, at: Pos, bytes: &[u8]) {
    if skip.damaged.remove(&at) {
        return;
    }
    Stats::add(&inner.stats.queue_corrupt_records, 1);
    let _ = corrupt_letter(
        &inner.dead_letters,
        &inner.dir,
        at,
        bytes,
        "a damaged disk queue record",
    );
    let _ = inner.dead_letters.flush();
}
