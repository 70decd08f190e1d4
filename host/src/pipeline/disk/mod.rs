//! The disk queue (issue 12): accepted events are in segment files under
//! `<state.dir>/queue` before their producer hears "accepted", and leave
//! them only once handled and settled (every sink took them), so an event
//! answered 2xx survives `kill -9` and is handled at least once.
//!
//! Why a segment log of our own, not a storage crate: see the plan of
//! issue 12 and BENCHMARKS.md (a FIFO is append, sequential read and drop
//! whole files; group commit and the corruption rules need control of the
//! bytes). The parts:
//! - [`record`]: the record format (length, CRC-32, seq, accept time) and
//!   scanning a segment, damage and all;
//! - `log`: the committer thread: encoded batches of concurrent submits
//!   written with one write(2) and one fsync (`sync = "batch"`) or fsynced
//!   on a timer (`"interval"`); segments rolled; write errors undone;
//! - `reader`: the window of decoded events (`[server] queue` of them),
//!   refilled from disk by its own thread when the backlog is larger;
//! - `acks`: the acker thread: calls `settle`, then appends acked seqs to
//!   the segment's ack file (write(2), no fsync: a lost ack only means a
//!   redelivery) and deletes segments whose every record is acked;
//! - `recover`: opening: torn tails, damaged records, acks, poison;
//! - `inflight`: which events had handlers running when the daemon died.
//!
//! Delivery is at least once: after a crash, events handled but whose acks
//! were not yet written (at most those of the last settle round and those
//! in the workers' hands) are delivered again, counted in
//! `queue_redelivered_total`.

mod acks;
mod inflight;
mod log;
mod reader;
pub mod record;
mod recover;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, Notify};

use super::queue::{
    Ack, Delivery, Handled, NoDelivery, Notifier, Queue, Receipt, SubmitError, Submitter, Waiting,
};
use super::report::EventReport;
use super::Settle;
use crate::config::{QueueConfig, SyncMode};
use crate::dead_letter::DeadLetters;
use crate::event::Event;
use crate::telemetry::Stats;

pub use recover::{warn_if_left, OpenError};

#[cfg(test)]
mod tests;

/// The largest segment file; smaller with a small `max_bytes`, so that
/// whole segments can be dropped well before the limit is reached.
const MAX_SEGMENT: u64 = 16 << 20;

/// Locks, recovering the data of a poisoned lock (a panicked thread
/// cannot leave these structures half-changed in a way that matters more
/// than stopping would).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One decoded event waiting for a worker.
struct Item {
    seq: u64,
    event: Event,
    detailed: bool,
    notify: Option<Notifier>,
}

/// A worker's token: the event's seq, and who waits for it.
pub struct Token {
    seq: u64,
    notify: Option<Notifier>,
}

/// Where a record starts: (segment id, byte offset).
type Pos = (u64, u64);

/// The events in memory, and where the rest are on disk.
struct Window {
    items: VecDeque<Item>,
    /// Records committed but not in `items`: from here up to `committed`.
    spill: Option<Pos>,
    /// The end of what the committer wrote (and fsynced, with `batch`).
    committed: Pos,
    /// Who waits for a spilled event (`Ack::Handled`, `Ack::Report`).
    waiters: HashMap<u64, (bool, Notifier)>,
    /// Admission ended and every accepted batch is written: once `items`
    /// and the spill are empty, workers stop.
    input_done: bool,
}

/// One segment file in the log.
struct Seg {
    /// Bytes in the file.
    len: u64,
    /// Records in it not yet acked.
    unacked: u64,
    /// Accept time of its first record, ms since the epoch (the oldest
    /// event's age is that of the oldest segment holding unacked ones).
    first_ms: Option<u64>,
}

/// The segments, by id (the seq of the first record written to it).
struct Segs {
    map: BTreeMap<u64, Seg>,
    /// The segment being written to.
    active: u64,
}

/// What the threads share.
struct Inner {
    dir: PathBuf,
    cfg: QueueConfig,
    /// Events held decoded in memory at most (`[server] queue`).
    capacity: usize,
    /// A segment is rolled once it holds this many bytes.
    seg_size: u64,
    stats: Arc<Stats>,
    dead_letters: DeadLetters,
    settle: Settle,
    /// Bytes of segment files, plus those of batches being written.
    bytes: AtomicU64,
    /// Events accepted and not yet handled.
    depth: AtomicUsize,
    /// Set by [`DiskQueue::finish`] (or drop): the threads end.
    stop: AtomicBool,
    pending: Mutex<log::Pending>,
    committer: Condvar,
    segs: Mutex<Segs>,
    window: Mutex<Window>,
    /// Workers wait here for events.
    workers: Condvar,
    /// The reader waits here for room in the window.
    reader: Condvar,
    /// Seqs handled, for the acker.
    acks: Mutex<Vec<u64>>,
    acker: Condvar,
    /// Submits waiting for `max_bytes` room.
    room: Notify,
    /// When a write error was last logged (ms since the epoch).
    write_error_logged: AtomicU64,
    inflight: inflight::Inflight,
    /// Unit tests: group commits that write half their bytes, then fail
    /// with ENOSPC (a full disk without a filesystem to fill).
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicU32,
}

/// The disk queue: a [`Submitter`] and a [`Queue`] over segment files.
pub struct DiskQueue {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The folder's lock, released by [`DiskQueue::finish`].
    lock: Mutex<Option<std::fs::File>>,
}

impl DiskQueue {
    /// Opens (creates) the queue in `dir` (`<state.dir>/queue`): recovers
    /// what the last run left (see `recover`), then starts its three
    /// threads. `capacity` events are held decoded in memory at most;
    /// `workers` is the number of worker threads (one in-flight slot
    /// each). `settle` is called before acks are written (see
    /// [`Settle`]). Errors: the folder or its files cannot be read or
    /// written, or the dead letters of damaged records cannot be synced.
    pub fn open(
        dir: &Path,
        cfg: QueueConfig,
        capacity: usize,
        workers: usize,
        dead_letters: DeadLetters,
        stats: Arc<Stats>,
        settle: Settle,
    ) -> Result<DiskQueue, OpenError> {
        let recovered = recover::recover(dir, workers, &dead_letters, &stats)?;
        let lock = Mutex::new(Some(recovered.lock));
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            seg_size: (cfg.max_bytes / 8).clamp(16 << 10, MAX_SEGMENT),
            cfg,
            capacity: capacity.max(1),
            stats,
            dead_letters,
            settle,
            bytes: AtomicU64::new(recovered.bytes),
            depth: AtomicUsize::new(recovered.unacked as usize),
            stop: AtomicBool::new(false),
            pending: Mutex::new(log::Pending::new(recovered.next_seq)),
            committer: Condvar::new(),
            segs: Mutex::new(recovered.segs),
            window: Mutex::new(Window {
                items: VecDeque::new(),
                spill: recovered.spill,
                committed: recovered.committed,
                waiters: HashMap::new(),
                input_done: false,
            }),
            workers: Condvar::new(),
            reader: Condvar::new(),
            acks: Mutex::new(Vec::new()),
            acker: Condvar::new(),
            room: Notify::new(),
            write_error_logged: AtomicU64::new(0),
            inflight: recovered.inflight,
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicU32::new(0),
        });
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.to_string()).spawn(f)
        };
        let started = (|| {
            let i = inner.clone();
            threads.push(spawn(
                "queue-commit",
                Box::new(move || log::run(&i, recovered.active)),
            )?);
            let i = inner.clone();
            let skip = recovered.skip;
            let deliveries = recovered.deliveries;
            threads.push(spawn(
                "queue-read",
                Box::new(move || reader::run(&i, skip, deliveries)),
            )?);
            let i = inner.clone();
            threads.push(spawn("queue-ack", Box::new(move || acks::run(&i)))?);
            Ok::<_, std::io::Error>(())
        })();
        let queue = DiskQueue {
            inner,
            threads: Mutex::new(threads),
            lock,
        };
        started.map_err(|e| OpenError::Io {
            path: dir.to_path_buf(),
            what: "cannot start the queue's threads",
            source: e,
        })?;
        Ok(queue)
    }

    /// Once the workers stopped and the sinks were closed: writes the
    /// remaining acks (after a last `settle`), fsyncs the log and stops
    /// the queue's threads. Blocking.
    pub fn finish(&self) {
        self.stop();
        for t in std::mem::take(&mut *lock(&self.threads)) {
            if t.join().is_err() {
                tracing::error!("a disk queue thread panicked");
            }
        }
        lock(&self.lock).take();
    }

    fn stop(&self) {
        let i = &self.inner;
        i.stop.store(true, Relaxed);
        // Each notify under its lock, so no thread misses it between its
        // check and its wait.
        drop(lock(&i.pending));
        i.committer.notify_all();
        drop(lock(&i.window));
        i.reader.notify_all();
        i.workers.notify_all();
        drop(lock(&i.acks));
        i.acker.notify_all();
    }

    /// Encodes, then hands the batch to the committer; waits for room if
    /// `wait`. Resolves once the batch is written (and fsynced).
    async fn accept(&self, events: Vec<Event>, ack: Ack, wait: bool) -> Result<Receipt, SubmitError> {
        if events.is_empty() {
            return Ok(Receipt::default());
        }
        let mut batch = log::Batch::encode(events, ack);
        let mut receipt = Receipt::default();
        if ack != Ack::Accepted {
            receipt.handled.reserve(batch.events.len());
            batch.notify.reserve(batch.events.len());
            for _ in 0..batch.events.len() {
                let (n, h) = Handled::pair();
                batch.notify.push(n);
                receipt.handled.push(h);
            }
        }
        let max_bytes = self.inner.cfg.max_bytes;
        if batch.buf.len() as u64 > max_bytes {
            // It can never fit: waiting would be forever.
            return Err(SubmitError::BatchTooLarge {
                bytes: batch.buf.len() as u64,
                max_bytes,
            });
        }
        let reply = loop {
            match log::enqueue(&self.inner, batch) {
                Ok(reply) => break reply,
                Err((SubmitError::Backlog { .. }, b)) if wait => {
                    // Registered before trying again, so room freed in
                    // between is not missed; only waiting submits pay it.
                    let room = self.inner.room.notified();
                    tokio::pin!(room);
                    room.as_mut().enable();
                    match log::enqueue(&self.inner, b) {
                        Ok(reply) => break reply,
                        Err((SubmitError::Backlog { .. }, b)) => {
                            batch = b;
                            room.await;
                        }
                        Err((e, _)) => return Err(e),
                    }
                }
                Err((e, _)) => return Err(e),
            }
        };
        let written: oneshot::Receiver<Result<(), SubmitError>> = reply;
        match written.await {
            Ok(Ok(())) => Ok(receipt),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SubmitError::Closed),
        }
    }
}

impl Drop for DiskQueue {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Submitter for DiskQueue {
    fn try_submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(self.accept(events, ack, false))
    }

    fn submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(self.accept(events, ack, true))
    }

    fn depth(&self) -> usize {
        self.inner.depth.load(Relaxed)
    }

    fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Accepted events are on disk (fsynced with `sync = "batch"`).
    fn durable(&self) -> bool {
        true
    }
}

impl Queue for DiskQueue {
    type Token = Token;

    fn recv(&self) -> Option<Delivery<Token>> {
        let i = &self.inner;
        let mut w = lock(&i.window);
        loop {
            if let Some(item) = w.items.pop_front() {
                drop(reader::wake_if_low(i, w));
                return Some(delivery(item));
            }
            if w.input_done && w.spill.is_none() || i.stop.load(Relaxed) {
                return None;
            }
            w = i.workers.wait(w).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn try_recv(&self) -> Result<Delivery<Token>, NoDelivery> {
        let i = &self.inner;
        let mut w = lock(&i.window);
        match w.items.pop_front() {
            Some(item) => {
                drop(reader::wake_if_low(i, w));
                Ok(delivery(item))
            }
            None if w.input_done && w.spill.is_none() => Err(NoDelivery::Closed),
            None => Err(NoDelivery::Empty),
        }
    }

    fn is_empty(&self) -> bool {
        lock(&self.inner.window).items.is_empty()
    }

    /// Waiters are told now; the acks are written by the acker after it
    /// settles the sinks.
    fn handled(&self, done: &mut Vec<(Token, EventReport)>) {
        let i = &self.inner;
        i.depth.fetch_sub(done.len(), Relaxed);
        {
            let mut acks = lock(&i.acks);
            // An event whose dead letter may be unwritten stays: it is
            // delivered again after a restart rather than lost.
            acks.extend(done.iter().filter(|(_, r)| !r.unwritten).map(|(t, _)| t.seq));
        }
        i.acker.notify_one();
        for (token, report) in done.drain(..) {
            if let Some(n) = token.notify {
                n.notify(report);
            }
        }
    }

    fn close(&self) {
        log::close(&self.inner);
    }

    fn running(&self, worker: usize, token: &Token) {
        self.inner.inflight.running(worker, token.seq);
    }

    fn idle(&self, worker: usize) {
        self.inner.inflight.idle(worker);
    }
}

fn delivery(item: Item) -> Delivery<Token> {
    Delivery {
        event: item.event,
        detailed: item.detailed,
        token: Token {
            seq: item.seq,
            notify: item.notify,
        },
    }
}

/// Milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The file of segment `id`.
fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The ack file of segment `id`.
fn ack_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.ack"))
}

/// Whether the log fsyncs before each answer.
fn sync_each(cfg: &QueueConfig) -> bool {
    cfg.sync == SyncMode::Batch
}
