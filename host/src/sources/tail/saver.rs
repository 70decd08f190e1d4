//! Writes checkpoints on a thread of their own. Each write costs two
//! fsyncs, which take tens of milliseconds on a busy disk; the reading
//! thread must keep looking at files meanwhile (a file rotated away before
//! it is opened cannot be read). Only the newest checkpoint matters: one
//! waiting to be written is replaced by a newer one.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::checkpoint::{Checkpoint, Store};
use crate::sources::SourceContext;
use crate::telemetry::Stats;

/// Makes durable what the checkpointed lines wrote before a checkpoint
/// passes them (fsyncs), naming what failed: after a power loss the
/// checkpoint must not point past lines that were lost.
type BeforeSave = Box<dyn Fn() -> std::io::Result<()> + Send>;

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slot {
    next: Option<Checkpoint>,
    closing: bool,
}

struct State {
    slot: Mutex<Slot>,
    cv: Condvar,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Saver {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Saver {
    /// Starts the thread. With a `durable` queue the checkpointed lines'
    /// events are durable once accepted, and only the dead letters of lines
    /// that are not events are fsynced before a save; otherwise the sinks
    /// the events went to are too.
    pub fn start(store: Store, ctx: &SourceContext, durable: bool) -> std::io::Result<Saver> {
        let before: BeforeSave = if durable {
            let dead_letters = ctx.dead_letters.clone();
            Box::new(move || dead_letters.sync())
        } else {
            let outputs = ctx.outputs.clone();
            Box::new(move || outputs.sync_outputs())
        };
        let stats = ctx.stats.clone();
        let state = Arc::new(State {
            slot: Mutex::new(Slot::default()),
            cv: Condvar::new(),
        });
        let s = state.clone();
        let thread = std::thread::Builder::new()
            .name("tail-checkpoint".into())
            .spawn(move || run(&s, &store, &stats, &before))?;
        Ok(Saver {
            state,
            thread: Some(thread),
        })
    }

    /// Queues `cp` to be written, replacing one not written yet.
    pub fn save(&self, cp: Checkpoint) {
        self.state.lock().next = Some(cp);
        self.state.cv.notify_one();
    }

    /// Writes what is queued, then stops.
    pub fn close(mut self) {
        self.state.lock().closing = true;
        self.state.cv.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the checkpoint thread panicked");
            }
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.state.lock().closing = true;
        self.state.cv.notify_one();
    }
}

fn run(state: &State, store: &Store, stats: &Stats, before: &BeforeSave) {
    let mut failing = false;
    let mut slot = state.lock();
    loop {
        if let Some(cp) = slot.next.take() {
            drop(slot);
            // (A `kill -9` needs no fsync: written data is in the kernel by
            // the time a line counts as complete.)
            let result = before().and_then(|()| store.save(&cp));
            slot = state.lock();
            match result {
                Ok(()) => {
                    if failing {
                        failing = false;
                        tracing::info!(checkpoint = %store.path().display(), "checkpoint written again");
                    }
                }
                Err(e) => {
                    Stats::add(&stats.tail_checkpoint_errors, 1);
                    if !failing {
                        failing = true;
                        tracing::error!(checkpoint = %store.path().display(), error = %e, "cannot write the checkpoint; lines are still handled, but after a restart they would be read again; retrying");
                    }
                    if slot.closing {
                        return;
                    }
                    if slot.next.is_none() {
                        slot.next = Some(cp);
                    }
                    slot = state
                        .cv
                        .wait_timeout(slot, RETRY)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
            continue;
        }
        if slot.closing {
            return;
        }
        slot = state.cv.wait(slot).unwrap_or_else(|p| p.into_inner());
    }
}
