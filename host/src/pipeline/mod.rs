//! The pipeline: a queue between producers and a pool of worker threads
//! that run the wasm (wasm never runs on the async reactor), and what the
//! workers do with each event.
//!
//! - [`queue`]: the seam. Producers hand events in through a
//!   [`Submitter`] and hear "accepted" and "handled" through it; workers
//!   read a [`queue::Queue`]. [`memory`] is today's queue; a disk queue
//!   (issue 12) or a JetStream consumer (issue 13) is one more
//!   implementation of both traits, chosen in [`Pipeline::start`].
//! - [`snapshot`]: what the workers share, swapped whole on reload.
//! - `worker`: the worker loop; flushes sinks and dead letters before it
//!   acknowledges a run of events.
//! - `cascade`: routing one event and, breadth first, what its handlers
//!   emit, within the hop limit and the cascade budget (issue 16).
//! - `plugin_log`: plugin log lines to the daemon's log, rate limited.
//! - [`report`]: the report of a handled event.
//!
//! The workers stop on the pipeline's [`Shutdown`]: it closes the queue
//! (admission ends; memory: what is queued is still handed out) and each
//! worker drops its copy once the queue is drained.
//!
//! Admission is all or nothing: a batch is accepted whole or refused (503).
//! An event counts as handled once its handlers ran, emitted events were
//! routed, and sinks and dead letters were flushed; only then are waiting
//! producers (`?wait=true`, tail checkpoints) told.

mod cascade;
pub mod memory;
mod plugin_log;
pub mod queue;
pub mod report;
pub mod snapshot;
mod worker;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::dead_letter::DeadLetters;
use crate::event::Event;
use crate::runtime;
use crate::shutdown::Shutdown;
use crate::telemetry::Stats;
use crate::telemetry::StreamHub;

pub use memory::MemoryQueue;
pub use queue::{Ack, Handled, Queue, Receipt, SubmitError, Submitter, Waiting};
pub use snapshot::{Shared, Snapshot};

/// The running pipeline: its queue and its workers.
pub struct Pipeline {
    shared: Arc<Shared>,
    /// The queue as producers see it.
    queue: Arc<dyn Submitter>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pipeline {
    /// Starts `workers` threads (at least one) reading a queue of
    /// `capacity` events, on `snapshot`. The queue is chosen here (memory
    /// today). Errors: a thread cannot be started.
    pub fn start(
        snapshot: Snapshot,
        dead_letters: DeadLetters,
        capacity: usize,
        workers: usize,
        stats: Arc<Stats>,
        stream: Arc<StreamHub>,
        shutdown: Shutdown,
    ) -> std::io::Result<Arc<Pipeline>> {
        let shared = Arc::new(Shared::new(snapshot, dead_letters, stats, stream));
        Pipeline::run(shared, Arc::new(MemoryQueue::new(capacity)), workers, shutdown)
    }

    /// Starts `workers` threads (at least one) reading `queue`; `shutdown`
    /// closes the queue, and each worker drops its copy of it once the
    /// queue is drained.
    fn run<Q: Queue + 'static>(
        shared: Arc<Shared>,
        queue: Arc<Q>,
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
                    worker::run(&shared, &*mine);
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
