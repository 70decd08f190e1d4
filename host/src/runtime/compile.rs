//! Compiling plugins off the paths that answer reloads and shutdown, within
//! a size and a time limit, fairly (issue 16).
//!
//! A 12.9 MB module of 200,000 functions took 25–43 s and 1.5 GB to
//! compile, and a reload or SIGTERM waited for it. Now:
//! - a file over `[plugins] max_file_size` is refused before it is read;
//!   the size limit also bounds what an abandoned compile can cost;
//! - every compile runs on its own thread. A reload waits for it only
//!   briefly ([`RELOAD_WAIT`]); past that the plugin is reported
//!   `compiling`, its previous version (if any) keeps serving, and the
//!   compile asks for another reload when it ends;
//! - a compile still running after `[plugins] compile_timeout` of its own
//!   run (time spent queued does not count) fails the plugin with an error
//!   naming the limit. wasmtime cannot cancel a compile, so its thread is
//!   abandoned: it runs to its end and its result is dropped; the same
//!   bytes are not compiled again (until the daemon restarts);
//! - at most [`MAX_RUNNING`] compiles of any size run at once, abandoned
//!   ones included, plus [`SMALL_RESERVED`] more kept for files under
//!   [`SMALL_FILE`]. Waiting compiles start smallest file first as slots
//!   free. So slow big modules (an attacker's, issue 16's fairness finding:
//!   four 7.6 MB single-body modules kept a tiny plugin unloaded for 38 s)
//!   can delay neither a small plugin (it has slots of its own and goes
//!   first) nor a queued one past the moment a slot frees: it then starts,
//!   and when it ends the daemon reloads it in;
//! - peak memory is bounded by the slots: about 100 × the file size per
//!   compile for the worst bodies (see README, Limits);
//! - SIGTERM never waits for a compile: nothing joins these threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Engine;

use super::artifact::Artifact;

use super::cache::{CompileCache, Origin};
pub use crate::config::LoadLimits;

/// How long a reload waits for a compile before answering `compiling`.
pub const RELOAD_WAIT: Duration = Duration::from_secs(1);
/// Compiles of any size running at once, abandoned ones included (each may
/// use every core: wasmtime compiles functions in parallel).
pub const MAX_RUNNING: usize = 2;
/// Files under this many bytes compile in milliseconds (even the worst
/// single-body module of this size takes about 1 s and 100 MB): they have
/// slots of their own, so that big modules never make them wait.
pub const SMALL_FILE: u64 = 1 << 20;
/// Slots kept for files under [`SMALL_FILE`], on top of [`MAX_RUNNING`].
pub const SMALL_RESERVED: usize = 2;

/// Where a compile is.
#[derive(Clone)]
pub enum Compiled {
    Ready(Artifact, Origin),
    /// Still running (for this long), or waiting for a free slot.
    Compiling(String),
    /// Failed or over the time limit: the message, for the plugin's error.
    Failed(String),
}

type Outcome = Result<(Artifact, Origin), String>;

struct Job {
    /// The file's size in bytes: waiting compiles start smallest first.
    size: u64,
    /// `compile_timeout` when it was asked for, counted from its start.
    limit: Duration,
    state: Mutex<JobState>,
    /// Signalled when the compile starts and when it ends.
    changed: Condvar,
}

#[derive(Default)]
struct JobState {
    /// When its compile thread started; `None` while it waits for a slot.
    started: Option<Instant>,
    /// The outcome and how long it ran, once done.
    result: Option<(Outcome, Duration)>,
    /// A load stopped waiting for it: ask for a reload when it ends or
    /// goes over time, so that the outcome is collected.
    wanted: bool,
}

/// A compile waiting for a slot, with what it needs to start.
struct Waiting {
    job: Arc<Job>,
    bytes: Vec<u8>,
    sha256: String,
    cache_dir: PathBuf,
}

/// The slots: what runs, and what waits.
#[derive(Default)]
struct Slots {
    /// Compiles in the [`MAX_RUNNING`] slots any size may take.
    any: usize,
    /// Compiles in the [`SMALL_RESERVED`] slots.
    small: usize,
    waiting: Vec<Waiting>,
}

/// What the compile threads share with the [`Compiler`].
struct Shared {
    engine: Engine,
    /// wasmtime compiles a module's functions on the current rayon pool;
    /// on the global one, a tiny module's functions queued behind two huge
    /// bodies and went over `compile_timeout` (issue 16). Compiles in the
    /// small-file slots run on this pool of their own; `None` if it could
    /// not be made (they then share the global one).
    small_pool: Option<rayon::ThreadPool>,
    slots: Mutex<Slots>,
    /// Called from a compile thread when a compile a load stopped waiting
    /// for ends or goes over time: the daemon asks for a reload.
    notify: Arc<dyn Fn() + Send + Sync>,
}

/// Compiles plugin bytes on background threads; one per daemon.
pub struct Compiler {
    shared: Arc<Shared>,
    /// Compiles waiting, under way or finished and not yet collected, by sha256.
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Bytes whose compile went over the time limit, with the message.
    over_time: Mutex<HashMap<String, String>>,
}

impl Compiler {
    pub fn new(engine: &Engine, notify: Arc<dyn Fn() + Send + Sync>) -> Compiler {
        Compiler {
            shared: Arc::new(Shared {
                engine: engine.clone(),
                small_pool: rayon::ThreadPoolBuilder::new()
                    .num_threads(SMALL_RESERVED)
                    .thread_name(|i| format!("compile-small-{i}"))
                    .build()
                    .map_err(|e| tracing::warn!(error = %e, "no thread pool for small compiles; they share the global one"))
                    .ok(),
                slots: Mutex::default(),
                notify,
            }),
            jobs: Mutex::default(),
            over_time: Mutex::default(),
        }
    }

    /// Asks for `bytes` (whose sha256 is `sha256`) to be compiled unless
    /// the same bytes are already waiting, compiling or done: at once if a
    /// slot is free, else when one frees, smallest file first. `limit` is
    /// `compile_timeout`, counted from the compile's start. The module is
    /// looked up in, and written to, the cache in `cache_dir`.
    pub fn start(&self, bytes: Vec<u8>, sha256: &str, cache_dir: &Path, limit: Duration) {
        if lock(&self.over_time).contains_key(sha256) {
            return;
        }
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(sha256) {
            return;
        }
        let job = Arc::new(Job {
            size: bytes.len() as u64,
            limit,
            state: Mutex::default(),
            changed: Condvar::new(),
        });
        jobs.insert(sha256.to_string(), job.clone());
        drop(jobs);
        lock(&self.shared.slots).waiting.push(Waiting {
            job,
            bytes,
            sha256: sha256.to_string(),
            cache_dir: cache_dir.to_path_buf(),
        });
        dispatch(&self.shared);
    }

    /// The compile of `sha256` (asked for with [`Compiler::start`]),
    /// waiting for it until `until` at most, or until it is over its time
    /// limit. A load that stops waiting is asked for again (the `notify`
    /// given to [`Compiler::new`]) when the compile ends or goes over time.
    pub fn collect(&self, sha256: &str, until: Instant) -> Compiled {
        if let Some(msg) = lock(&self.over_time).get(sha256) {
            return Compiled::Failed(msg.clone());
        }
        let Some(job) = lock(&self.jobs).get(sha256).cloned() else {
            return Compiled::Failed("its compile was not started; reload to try again".into());
        };
        let limit = job.limit;
        let mut state = lock(&job.state);
        while state.result.is_none() {
            let deadline = state.started.map_or(until, |s| {
                until.min(crate::config::units::instant_after(s, limit))
            });
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = job
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let Some(started) = state.started else {
            state.wanted = true;
            return Compiled::Compiling(format!(
                "waiting for a compile slot ({MAX_RUNNING} busy); it starts when one frees, smallest file first"
            ));
        };
        let took = match &state.result {
            Some((_, took)) => *took,
            None => started.elapsed(),
        };
        if took >= limit {
            drop(state);
            let msg = format!(
                "did not compile within {limit:?} ([plugins] compile_timeout); the compile was abandoned, \
                 and these bytes are not compiled again until the daemon restarts"
            );
            lock(&self.over_time).insert(sha256.to_string(), msg.clone());
            lock(&self.jobs).remove(sha256);
            return Compiled::Failed(msg);
        }
        match state.result.take() {
            None => {
                state.wanted = true;
                Compiled::Compiling(format!("compiling for {:.1?}", started.elapsed()))
            }
            Some((outcome, _)) => {
                drop(state);
                lock(&self.jobs).remove(sha256);
                match outcome {
                    Ok((artifact, origin)) => Compiled::Ready(artifact, origin),
                    Err(msg) => Compiled::Failed(msg),
                }
            }
        }
    }
}

/// Which slots a running compile holds.
#[derive(Clone, Copy)]
enum Lane {
    Any,
    Small,
}

/// Starts waiting compiles, smallest file first, while slots are free.
fn dispatch(shared: &Arc<Shared>) {
    loop {
        let (next, lane) = {
            let mut slots = lock(&shared.slots);
            slots.waiting.sort_by_key(|w| w.job.size);
            let small_free = slots.small < SMALL_RESERVED;
            let any_free = slots.any < MAX_RUNNING;
            let Some(i) = slots
                .waiting
                .iter()
                .position(|w| any_free || (small_free && w.job.size < SMALL_FILE))
            else {
                return;
            };
            let next = slots.waiting.remove(i);
            let lane = if small_free && next.job.size < SMALL_FILE {
                slots.small += 1;
                Lane::Small
            } else {
                slots.any += 1;
                Lane::Any
            };
            (next, lane)
        };
        let job = next.job.clone();
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("compile".into())
            .spawn(move || run(&worker, next, lane));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a compile thread");
            release(shared, lane);
            let mut state = lock(&job.state);
            state.started = Some(Instant::now());
            state.result = Some((Err(format!("cannot start a compile thread: {e}")), Duration::ZERO));
            drop(state);
            job.changed.notify_all();
        }
    }
}

fn release(shared: &Shared, lane: Lane) {
    let mut slots = lock(&shared.slots);
    match lane {
        Lane::Any => slots.any -= 1,
        Lane::Small => slots.small -= 1,
    }
}

/// One compile, on its own thread, holding a slot in `lane`.
fn run(shared: &Arc<Shared>, w: Waiting, lane: Lane) {
    let started = Instant::now();
    lock(&w.job.state).started = Some(started);
    w.job.changed.notify_all();
    // A watchdog, so that a compile over time is reported at its limit,
    // not when (or if) it ends.
    let (job, notify) = (w.job.clone(), shared.notify.clone());
    let _ = std::thread::Builder::new()
        .name("compile-watchdog".into())
        .spawn(move || {
            let state = lock(&job.state);
            let (state, _) = job
                .changed
                .wait_timeout_while(state, job.limit, |s| s.result.is_none())
                .unwrap_or_else(|p| p.into_inner());
            if state.result.is_none() && state.wanted {
                drop(state);
                notify();
            }
        });
    let compile = || {
        CompileCache::new(&w.cache_dir)
            .artifact(&shared.engine, &w.bytes, &w.sha256)
            .map_err(|e| format!("does not compile: {e:#}"))
    };
    let outcome = match (lane, &shared.small_pool) {
        (Lane::Small, Some(pool)) => pool.install(compile),
        _ => compile(),
    };
    drop(w.bytes);
    // The slot is free, and the next compile started, before anyone hears
    // the outcome.
    release(shared, lane);
    dispatch(shared);
    let mut state = lock(&w.job.state);
    state.result = Some((outcome, started.elapsed()));
    let wanted = state.wanted;
    drop(state);
    w.job.changed.notify_all();
    if wanted {
        (shared.notify)();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
