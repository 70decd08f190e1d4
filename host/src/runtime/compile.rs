//! Compiling plugins off the paths that answer reloads and shutdown, within
//! a size and a time limit (issue 16).
//!
//! A 12.9 MB module of 200,000 functions took 25–43 s and 1.5 GB to
//! compile, and a reload or SIGTERM waited for it. Now:
//! - a file over `[plugins] max_file_size` is refused before it is read;
//!   the size limit also bounds what an abandoned compile can cost;
//! - every compile runs on its own thread. A reload waits for it only
//!   briefly ([`RELOAD_WAIT`]); past that the plugin is reported
//!   `compiling`, its previous version (if any) keeps serving, and the
//!   compile asks for another reload when it ends;
//! - a compile still running after `[plugins] compile_timeout` fails the
//!   plugin with an error naming the limit. wasmtime cannot cancel a
//!   compile, so its thread is abandoned: it runs to its end and its result
//!   is dropped; the same bytes are not compiled again (until the daemon
//!   restarts), and at most [`MAX_RUNNING`] compiles run at once, so a
//!   plugin folder cannot pile them up;
//! - SIGTERM never waits for a compile: nothing joins these threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Module};

use super::cache::{CompileCache, Origin};
pub use crate::config::LoadLimits;

/// How long a reload waits for a compile before answering `compiling`.
pub const RELOAD_WAIT: Duration = Duration::from_secs(1);
/// Compiles running at once, abandoned ones included (each may use every
/// core: wasmtime compiles functions in parallel).
pub const MAX_RUNNING: usize = 2;

/// Where a compile is.
#[derive(Clone)]
pub enum Compiled {
    Ready(Module, Origin),
    /// Still running (for this long), or waiting for a free slot.
    Compiling(String),
    /// Failed or over the time limit: the message, for the plugin's error.
    Failed(String),
}

type Outcome = Result<(Module, Origin), String>;

struct Job {
    started: Instant,
    /// `compile_timeout` when it started.
    limit: Duration,
    state: Mutex<JobState>,
    done: Condvar,
}

#[derive(Default)]
struct JobState {
    /// The outcome and how long it took, once done.
    result: Option<(Outcome, Duration)>,
    /// A load stopped waiting for it: ask for a reload when it ends or
    /// goes over time, so that the outcome is collected.
    wanted: bool,
}

/// Compiles plugin bytes on background threads; one per daemon.
pub struct Compiler {
    engine: Engine,
    /// Compiles under way or finished and not yet collected, by sha256.
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    /// Compile threads still running, abandoned ones included.
    running: Arc<Mutex<usize>>,
    /// A load found no free slot: ask for a reload when one frees.
    slot_wanted: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes whose compile went over the time limit, with the message.
    over_time: Mutex<HashMap<String, String>>,
    /// Called from a compile thread when a compile a load stopped waiting
    /// for ends or goes over time: the daemon asks for a reload.
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl Compiler {
    pub fn new(engine: &Engine, notify: Arc<dyn Fn() + Send + Sync>) -> Compiler {
        Compiler {
            engine: engine.clone(),
            jobs: Mutex::default(),
            running: Arc::default(),
            slot_wanted: Arc::default(),
            over_time: Mutex::default(),
            notify,
        }
    }

    /// Starts compiling `bytes` (whose sha256 is `sha256`) unless the same
    /// bytes are already compiling or done; the bytes back when no slot is
    /// free. The module is looked up in, and written to, the cache in
    /// `cache_dir`.
    pub fn start(
        &self,
        bytes: Vec<u8>,
        sha256: &str,
        cache_dir: &Path,
        limit: Duration,
    ) -> Result<(), Vec<u8>> {
        if lock(&self.over_time).contains_key(sha256) {
            return Ok(());
        }
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(sha256) {
            return Ok(());
        }
        {
            let mut running = lock(&self.running);
            if *running >= MAX_RUNNING {
                return Err(bytes);
            }
            *running += 1;
        }
        let job = Arc::new(Job {
            started: Instant::now(),
            limit,
            state: Mutex::default(),
            done: Condvar::new(),
        });
        jobs.insert(sha256.to_string(), job.clone());
        let (engine, cache) = (self.engine.clone(), CompileCache::new(cache_dir));
        let (sha, running, notify) = (sha256.to_string(), self.running.clone(), self.notify.clone());
        let slot_wanted = self.slot_wanted.clone();
        let compile = {
            let (job, notify) = (job.clone(), notify.clone());
            move || {
                let outcome = cache
                    .module(&engine, &bytes, &sha)
                    .map_err(|e| format!("does not compile: {e:#}"));
                drop(bytes);
                // The slot is free before anyone hears the outcome, so that
                // the next compile can start at once.
                *lock(&running) -= 1;
                let mut state = lock(&job.state);
                state.result = Some((outcome, job.started.elapsed()));
                let wanted = state.wanted || slot_wanted.swap(false, SeqCst);
                drop(state);
                job.done.notify_all();
                if wanted {
                    notify();
                }
            }
        };
        if let Err(e) = std::thread::Builder::new().name("compile".into()).spawn(compile) {
            tracing::error!(error = %e, "cannot start a compile thread");
            jobs.remove(sha256);
            *lock(&self.running) -= 1;
            return Ok(());
        }
        // A watchdog, so that a compile over time is reported at its limit,
        // not when (or if) it ends.
        let _ = std::thread::Builder::new()
            .name("compile-watchdog".into())
            .spawn(move || {
                let state = lock(&job.state);
                let (state, _) = job
                    .done
                    .wait_timeout_while(state, limit, |s| s.result.is_none())
                    .unwrap_or_else(|p| p.into_inner());
                if state.result.is_none() && state.wanted {
                    drop(state);
                    notify();
                }
            });
        Ok(())
    }

    /// A load gave up waiting for a slot: ask for a reload once one frees.
    pub fn want_slot(&self) {
        self.slot_wanted.store(true, SeqCst);
        // A slot freed since the attempt: its thread may have looked at the
        // flag before it was set.
        if *lock(&self.running) < MAX_RUNNING && self.slot_wanted.swap(false, SeqCst) {
            (self.notify)();
        }
    }

    /// The compile of `sha256` (started with [`Compiler::start`]), waiting
    /// for it until `until` at most.
    pub fn collect(&self, sha256: &str, until: Instant) -> Compiled {
        if let Some(msg) = lock(&self.over_time).get(sha256) {
            return Compiled::Failed(msg.clone());
        }
        let Some(job) = lock(&self.jobs).get(sha256).cloned() else {
            self.want_slot();
            return Compiled::Compiling(format!(
                "waiting for a compile slot ({MAX_RUNNING} compiles running)"
            ));
        };
        let limit = job.limit;
        let until = until.min(crate::config::units::instant_after(job.started, limit));
        let mut state = lock(&job.state);
        while state.result.is_none() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            state = job
                .done
                .wait_timeout(state, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let took = match &state.result {
            Some((_, took)) => *took,
            None => job.started.elapsed(),
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
                Compiled::Compiling(format!("compiling for {:.1?}", job.started.elapsed()))
            }
            Some((outcome, _)) => {
                drop(state);
                lock(&self.jobs).remove(sha256);
                match outcome {
                    Ok((module, origin)) => Compiled::Ready(module, origin),
                    Err(msg) => Compiled::Failed(msg),
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::runtime::cache::sha256_hex;

    /// A module of `n` small functions; `seed` makes its bytes unique.
    fn module(n: usize, seed: u32) -> Vec<u8> {
        let mut wat = format!("(module (func (export \"f\") (result i32) (i32.const {seed}))\n");
        for i in 0..n {
            wat += &format!(
                "(func (param i32) (result i32) (i32.mul (i32.add (local.get 0) (i32.const {i})) (i32.const {seed})))\n"
            );
        }
        wat.push(')');
        wat.into_bytes()
    }

    fn compiler() -> (Compiler, Arc<AtomicUsize>, tempfile::TempDir) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let notify = Arc::new(move || {
            counted.fetch_add(1, SeqCst);
        });
        (
            Compiler::new(&Engine::default(), notify),
            calls,
            tempfile::tempdir().unwrap(),
        )
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn a_compile_is_collected_and_a_second_load_of_the_same_bytes_reads_the_cache() {
        let (c, calls, dir) = compiler();
        let bytes = module(10, 1);
        let sha = sha256_hex(&bytes);
        assert!(c.start(bytes.clone(), &sha, dir.path(), LONG).is_ok());
        let far = Instant::now() + LONG;
        assert!(matches!(
            c.collect(&sha, far),
            Compiled::Ready(_, Origin::Compiled)
        ));
        assert!(c.start(bytes, &sha, dir.path(), LONG).is_ok());
        assert!(matches!(c.collect(&sha, far), Compiled::Ready(_, Origin::Cached)));
        assert_eq!(
            calls.load(SeqCst),
            0,
            "nobody stopped waiting: no reload asked for"
        );
    }

    #[test]
    fn a_compile_over_its_time_limit_fails_and_is_not_started_again() {
        let (c, _, dir) = compiler();
        let bytes = module(3000, 2);
        let sha = sha256_hex(&bytes);
        let limit = Duration::from_millis(1);
        assert!(c.start(bytes.clone(), &sha, dir.path(), limit).is_ok());
        let Compiled::Failed(msg) = c.collect(&sha, Instant::now() + LONG) else {
            panic!("not failed")
        };
        assert!(
            msg.contains("did not compile within 1ms ([plugins] compile_timeout)"),
            "{msg}"
        );
        assert!(c.start(bytes, &sha, dir.path(), LONG).is_ok());
        assert!(matches!(c.collect(&sha, Instant::now()), Compiled::Failed(_)));
    }

    #[test]
    fn at_most_two_compiles_run_and_a_load_that_stopped_waiting_hears_of_the_end() {
        let (c, calls, dir) = compiler();
        let mods: Vec<Vec<u8>> = (0..3).map(|i| module(3000, 10 + i)).collect();
        let shas: Vec<String> = mods.iter().map(|m| sha256_hex(m)).collect();
        assert!(c.start(mods[0].clone(), &shas[0], dir.path(), LONG).is_ok());
        assert!(c.start(mods[1].clone(), &shas[1], dir.path(), LONG).is_ok());
        assert!(
            c.start(mods[2].clone(), &shas[2], dir.path(), LONG).is_err(),
            "no third slot"
        );
        // A reload that stops waiting at once reports it compiling ...
        assert!(matches!(
            c.collect(&shas[0], Instant::now()),
            Compiled::Compiling(_)
        ));
        c.want_slot();
        // ... and is asked for again once it (and a slot) is done.
        let t = Instant::now();
        while calls.load(SeqCst) == 0 {
            assert!(t.elapsed() < LONG, "never notified");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(matches!(
            c.collect(&shas[0], Instant::now() + LONG),
            Compiled::Ready(..)
        ));
        assert!(matches!(
            c.collect(&shas[1], Instant::now() + LONG),
            Compiled::Ready(..)
        ));
        assert!(c.start(mods[2].clone(), &shas[2], dir.path(), LONG).is_ok());
    }
}
