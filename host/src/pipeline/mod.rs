//! The pipeline: a queue between producers and a pool of worker threads
//! that run the wasm (wasm never runs on the async reactor), and what the
//! workers do with each event.
//!
//! - [`queue`]: the seam. Producers hand events in through a
//!   [`Submitter`] and hear "accepted" and "handled" through it; workers
//!   read a [`queue::Queue`]. [`memory`] is today's queue; a disk queue
//!   (issue 12) or a JetStream consumer (issue 13) is one more
//!   implementation of both traits, chosen in [`Pipeline::start`] by
//!   `[queue] type`.
//! - [`disk`]: the disk queue (issue 12), the default: segment files under
//!   `<state.dir>/queue`; an event leaves them once handled and settled
//!   ([`Settle`]).
//! - [`snapshot`]: what the workers share, swapped whole on reload.
//! - `worker`: the worker loop; flushes sinks and dead letters before it
//!   acknowledges a run of events.
//! - `cascade`: routing one event and, breadth first, what its handlers
//!   emit, within the hop limit and the cascade budget (issue 16).
//! - `plugin_log`: plugin log lines to the daemon's log, rate limited.
//! - [`report`]: the report of a handled event.
//!
//! The workers stop on the pipeline's [`Shutdown`]: it closes the queue
//! (admission ends; what is queued is still handed out) and each worker
//! drops its copy once the queue is drained; [`Pipeline::finish`] then
//! closes the disk queue's log.
//!
//! Admission is all or nothing: a batch is accepted whole or refused (503).
//! An event counts as handled once its handlers ran, emitted events were
//! routed, and sinks and dead letters were flushed; only then are waiting
//! producers (`?wait=true`, tail checkpoints) told.

mod cascade;
pub mod disk;
pub mod memory;
mod plugin_log;
pub mod queue;
pub mod report;
pub mod snapshot;
mod worker;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::config::{QueueConfig, QueueType};
use crate::dead_letter::DeadLetters;
use crate::event::Event;
use crate::runtime;
use crate::shutdown::Shutdown;
use crate::telemetry::Stats;
use crate::telemetry::StreamHub;

pub use disk::DiskQueue;
pub use memory::MemoryQueue;
pub use queue::{Ack, Handled, Queue, Receipt, SubmitError, Submitter, Waiting};
pub use snapshot::{Shared, Snapshot};

/// "Block until everything the sinks and the dead-letter log took so far
/// is durable or taken": file sinks fsynced, webhooks delivered (or their
/// events dead-lettered) what was written before the call, dead letters
/// fsynced. The disk queue calls it before it writes the acks of events
/// handled before the call, so an event leaves the queue only once every
/// sink took it (issue 12's end-to-end acknowledgement). Called on the
/// queue's own thread, never on a worker's. Returns false when something
/// could not be made durable (an fsync failed): those events then stay in
/// the queue, to be handled again after a restart.
pub type Settle = Arc<dyn Fn() -> bool + Send + Sync>;

/// Why the pipeline did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    // The cause is the error's source: `{:#}` prints the chain once.
    #[error("cannot open the disk queue")]
    Queue(#[from] disk::OpenError),
    #[error("cannot start the worker threads")]
    Workers(#[from] std::io::Error),
}

/// What the pipeline needs to know about its queue.
pub struct QueueSettings<'a> {
    /// `[queue]`.
    pub config: QueueConfig,
    /// `[server] queue`: events accepted and not handled (memory), or held
    /// decoded in memory (disk).
    pub capacity: usize,
    /// `[state] dir`: the disk queue lives in its `queue` folder.
    pub state_dir: &'a Path,
    /// See [`Settle`].
    pub settle: Settle,
}

/// The running pipeline: its queue and its workers.
pub struct Pipeline {
    shared: Arc<Shared>,
    /// The queue as producers see it.
    queue: Arc<dyn Submitter>,
    /// The disk queue, which [`Pipeline::finish`] closes; `None` for memory.
    disk: Option<Arc<DiskQueue>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pipeline {
    /// Starts `workers` threads (at least one) reading the queue `[queue]`
    /// chooses (see [`QueueSettings`]), on `snapshot`. Errors: the disk
    /// queue cannot be opened, a thread cannot be started.
    pub fn start(
        snapshot: Snapshot,
        dead_letters: DeadLetters,
        queue: QueueSettings<'_>,
        workers: usize,
        stats: Arc<Stats>,
        stream: Arc<StreamHub>,
        shutdown: Shutdown,
    ) -> Result<Arc<Pipeline>, StartError> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared::new(snapshot, dead_letters.clone(), stats.clone(), stream));
        match queue.config.kind {
            QueueType::Memory => {
                disk::warn_if_left(&queue.state_dir.join("queue"));
                let q = Arc::new(MemoryQueue::new(queue.capacity));
                Ok(Pipeline::run(shared, q, None, workers, shutdown)?)
            }
            QueueType::Disk => {
                let dir = queue.state_dir.join("queue");
                let q = Arc::new(DiskQueue::open(
                    &dir,
                    queue.config,
                    queue.capacity,
                    workers,
                    dead_letters,
                    stats,
                    queue.settle,
                )?);
                Ok(Pipeline::run(shared, q.clone(), Some(q), workers, shutdown)?)
            }
        }
    }

    /// Starts `workers` threads (at least one) reading `queue`; `shutdown`
    /// closes the queue, and each worker drops its copy of it once the
    /// queue is drained.
    fn run<Q: Queue + 'static>(
        shared: Arc<Shared>,
        queue: Arc<Q>,
        disk: Option<Arc<DiskQueue>>,
        workers: usize,
        shutdown: Shutdown,
    ) -> std::io::Result<Arc<Pipeline>> {
        let closing = queue.clone();
        shutdown.on_shutdown(move || closing.close());
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let (shared, mine, shutdown) = (shared.clone(), queue.clone(), shutdown.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .stack_size(runtime::WORKER_STACK)
                .spawn(move || {
                    worker::run(&shared, &*mine, i);
                    drop(shutdown);
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The threads started drain nothing and stop.
                    queue.close();
                    return Err(e);
                }
            }
        }
        Ok(Arc::new(Pipeline {
            shared,
            queue,
            disk,
            workers: Mutex::new(handles),
        }))
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether every worker thread is still running.
    pub fn workers_alive(&self) -> bool {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        !workers.is_empty() && workers.iter().all(|h| !h.is_finished())
    }

    /// Waits for the workers to finish, once the shutdown given to
    /// [`Pipeline::start`] has closed the queue and they have drained it
    /// (every event handled, sinks and dead letters flushed); logs a worker
    /// that panicked. Blocking.
    pub fn join(&self) {
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            if h.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }

    /// After [`Pipeline::join`] and once the sinks were closed: the disk
    /// queue settles and writes its last acks, fsyncs its log and stops
    /// its threads (the memory queue has nothing to do). Blocking.
    pub fn finish(&self) {
        if let Some(disk) = &self.disk {
            disk.finish();
        }
    }
}

/// Producers submit to the pipeline: its queue takes the events, and each
/// accepted batch is counted per source.
impl Submitter for Pipeline {
    fn try_submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(async move {
            let counted = ingested(&events);
            let receipt = self.queue.try_submit(events, ack).await?;
            self.count(counted);
            Ok(receipt)
        })
    }

    fn submit(&self, events: Vec<Event>, ack: Ack) -> Waiting<'_, Result<Receipt, SubmitError>> {
        Box::pin(async move {
            let counted = ingested(&events);
            let receipt = self.queue.submit(events, ack).await?;
            self.count(counted);
            Ok(receipt)
        })
    }

    fn depth(&self) -> usize {
        self.queue.depth()
    }

    fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    fn durable(&self) -> bool {
        self.queue.durable()
    }
}

impl Pipeline {
    fn count(&self, counted: Vec<(String, u64)>) {
        for (source, n) in counted {
            self.shared.stats.metrics.source(&source).inc_by(n);
        }
    }
}

/// Events per source, in runs: a batch nearly always has one source, so
/// counting it is one handle lookup per batch, not per event.
fn ingested(events: &[Event]) -> Vec<(String, u64)> {
    let mut runs: Vec<(String, u64)> = Vec::new();
    for e in events {
        match runs.last_mut() {
            Some((source, n)) if *source == e.source => *n += 1,
            _ => runs.push((e.source.clone(), 1)),
        }
    }
    runs
}
