//! Running a plugin on one event, whatever its kind of guest: in a fresh
//! instance, or in an instance a worker keeps between events
//! (`instance = "reuse"`).
//!
//! A kept instance gets its fuel and deadline reset before every call and is
//! discarded after any failure, so a trap, an exhausted budget or a handler
//! error never reaches the next event: that one starts from a fresh instance.

use std::time::{Duration, Instant};

use wasmtime::Store;

use super::failure::{self, Failure};
use super::host::wasi::{CommandInput, WasiState};
use super::host::{CascadeBudget, Emitted, HostState, Level, LogLine, Refused};
use super::limits::arm;
use super::plugin::Plugin;
use crate::config::Instance;

/// Stdout and stderr bytes a kept instance may have written before it is
/// replaced, so the capture buffers never fill up.
const REUSE_MAX_STDIO: usize = 64 << 10;
/// Kept instances per worker; past it the least recently used one goes.
/// Each holds a slot of the engine's instance pool.
pub const WARM_PER_WORKER: usize = 16;

/// The result of one invocation.
#[derive(Debug)]
pub struct Invocation {
    pub outcome: Result<(), Failure>,
    /// Events the guest emitted; always empty when the invocation failed.
    pub emitted: Vec<Emitted>,
    /// Bytes of emitted JSON in `emitted`.
    pub emitted_bytes: u64,
    /// Emits refused for the cascade budget (counted even if the
    /// invocation then failed).
    pub cascade_refused: Refused,
    pub logs: Vec<LogLine>,
    /// Log lines over the per-invocation cap, not kept.
    pub dropped_logs: u64,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

/// A started instance and its store, kept between events.
struct Ready {
    store: Store<HostState>,
    instance: Box<dyn super::guest::Instance>,
}

/// Instances one worker keeps between events, one per plugin version,
/// most recently used last.
#[derive(Default)]
pub struct Warm {
    entries: Vec<(u64, Ready)>,
}

impl Warm {
    fn take(&mut self, plugin: u64) -> Option<Ready> {
        let at = self.entries.iter().position(|(id, _)| *id == plugin)?;
        Some(self.entries.remove(at).1)
    }

    fn put(&mut self, plugin: u64, ready: Ready) {
        if self.entries.len() >= WARM_PER_WORKER {
            self.entries.remove(0);
        }
        self.entries.push((plugin, ready));
    }

    /// Drops the instances of plugin versions `live` says are gone.
    pub fn retain(&mut self, live: impl Fn(u64) -> bool) {
        self.entries.retain(|(id, _)| live(*id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Plugin {
    /// A store with the plugin's limits, armed; for a WASI guest also its
    /// stdio capture (and, for a guest that reads it there, `event` on
    /// stdin and the config in the environment).
    pub(super) fn new_store(&self, event: &[u8]) -> Store<HostState> {
        let clock_origin = Instant::now();
        let wasi = self.needs_wasi.then(|| {
            let command = self.guest.stdin(event).map(|stdin| CommandInput {
                stdin,
                config: &self.config_json,
            });
            WasiState::new(&self.name, clock_origin, command)
        });
        let limits = self.settings.limits;
        let state = HostState::new(wasi, limits, clock_origin);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory_cap);
        arm(&mut store, &limits);
        store
    }

    pub(super) fn failure_context<'s>(&self, store: &'s Store<HostState>) -> failure::Context<'s> {
        failure::Context {
            memory_limit_hit: store.data().memory_cap.hit.as_deref(),
            fuel: self.settings.limits.fuel,
            timeout: self.settings.limits.timeout,
        }
    }

    /// Runs the plugin on one event (its envelope as JSON) in a fresh instance.
    pub fn invoke(&self, event_json: &[u8]) -> Invocation {
        self.invoke_fresh(event_json, CascadeBudget::UNLIMITED)
    }

    fn invoke_fresh(&self, event_json: &[u8], budget: CascadeBudget) -> Invocation {
        let started = Instant::now();
        let mut store = self.new_store(event_json);
        store.data_mut().emit.cascade = budget;
        let run = self
            .guest
            .start(&mut store, &self.config_json)
            .and_then(|mut instance| instance.handle(&mut store, event_json));
        self.finish(started, &mut store, run)
    }

    /// Runs the plugin on one event as its `instance` setting says: in an
    /// instance from `warm` when reused (kept there again if the call
    /// succeeded), else in a fresh one.
    pub fn invoke_in(&self, warm: &mut Warm, event_json: &[u8]) -> Invocation {
        self.invoke_in_cascade(warm, event_json, CascadeBudget::UNLIMITED)
    }

    /// [`Plugin::invoke_in`] inside a root event's cascade: emits past
    /// `budget` are refused to the guest with `cascade_limit` (issue 16).
    pub fn invoke_in_cascade(&self, warm: &mut Warm, event_json: &[u8], budget: CascadeBudget) -> Invocation {
        if self.instance_mode() == Instance::Fresh {
            return self.invoke_fresh(event_json, budget);
        }
        let started = Instant::now();
        let mut ready = match warm.take(self.id()) {
            Some(ready) => ready,
            None => {
                let mut store = self.new_store(b"");
                match self.guest.start(&mut store, &self.config_json) {
                    Ok(instance) => Ready { store, instance },
                    Err(e) => return self.finish(started, &mut store, Err(e)),
                }
            }
        };
        arm(&mut ready.store, &self.settings.limits);
        ready.store.data_mut().emit.cascade = budget;
        let run = ready.instance.handle(&mut ready.store, event_json);
        let inv = self.finish(started, &mut ready.store, run);
        if inv.outcome.is_ok() && self.worth_keeping(&ready) {
            warm.put(self.id(), ready);
        }
        inv
    }

    /// Whether a kept instance may serve another event: its memory is under
    /// half the cap (a guest that leaks per event is replaced long before it
    /// fails an event on the cap) and its stdio capture has room.
    fn worth_keeping(&self, ready: &Ready) -> bool {
        let memory = ready.instance.memory_size(&ready.store);
        let stdio = ready.store.data().wasi.as_ref().map_or(0, |w| w.stdio.written());
        memory <= self.settings.limits.memory / 2 && stdio <= REUSE_MAX_STDIO
    }

    /// Classifies the outcome and moves what the guest produced during this
    /// call out of the store, leaving it clean for a next call.
    fn finish(
        &self,
        started: Instant,
        store: &mut Store<HostState>,
        run: wasmtime::Result<()>,
    ) -> Invocation {
        let outcome = run.map_err(|e| {
            let mut f = failure::classify(&e, &self.failure_context(store));
            if f.message.len() > failure::MAX_FAILURE_MESSAGE {
                f.message = failure::truncate(&f.message, failure::MAX_FAILURE_MESSAGE).into_owned();
            }
            f
        });
        let fuel_used = self.settings.limits.fuel - store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        if let Some((out_lines, err_lines)) = state.wasi.as_mut().map(|w| w.stdio.new_lines()) {
            for line in out_lines {
                if self.guest.stdout_emits() && line.trim_start().starts_with('{') {
                    state.emit(line.as_bytes());
                } else {
                    state.log(Level::Info, line);
                }
            }
            for line in err_lines {
                state.log(Level::Warn, line);
            }
        }
        let emit = std::mem::take(&mut state.emit);
        let log = std::mem::take(&mut state.log);
        state.fail_message = None;
        state.memory_cap.hit = None;
        let ok = outcome.is_ok();
        Invocation {
            emitted: if ok { emit.events } else { Vec::new() },
            emitted_bytes: if ok { emit.bytes } else { 0 },
            cascade_refused: emit.refused,
            outcome,
            logs: log.lines,
            dropped_logs: log.dropped,
            fuel_used,
            elapsed: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, PluginSettings};
    use crate::runtime::Runtime;

    /// Counts its calls in a global and logs the count as a digit; traps
    /// when the event starts with `T`.
    const COUNTER: &str = r#"(module
      (import "switchyard" "log" (func $log (param i32 i32 i32)))
      (memory (export "memory") 1)
      (global $n (mut i32) (i32.const 0))
      (data (i32.const 0) "0123456789")
      (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "switchyard_handle") (param $p i32) (param $l i32) (result i32)
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (call $log (i32.const 2) (global.get $n) (i32.const 1))
        (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 84)) (then unreachable))
        (i32.const 0)))"#;

    /// Spins 8,000 times per call, at 8 instructions a turn: about two
    /// thirds of a 100,000 fuel budget.
    const SPIN: &str = r#"(module
      (memory (export "memory") 1)
      (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "switchyard_handle") (param i32 i32) (result i32) (local $i i32)
        (loop $l
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 8000))))
        (i32.const 0)))"#;

    /// Grows its memory by one page on every call and never gives it back.
    const LEAK: &str = r#"(module
      (memory (export "memory") 1)
      (func (export "switchyard_alloc") (param i32) (result i32) (i32.const 1024))
      (func (export "switchyard_handle") (param i32 i32) (result i32)
        (if (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)) (then unreachable))
        (i32.const 0)))"#;

    fn plugin(rt: &Runtime, wat: &str, limits: Limits) -> Plugin {
        let settings = PluginSettings {
            limits,
            config: serde_json::json!({}),
        };
        Plugin::from_bytes(rt, "t", "t.wat".as_ref(), wat.as_bytes(), settings).unwrap()
    }

    fn logged(inv: &Invocation) -> String {
        inv.logs.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn a_reused_instance_keeps_state_until_a_failure_discards_it() {
        let rt = Runtime::new(1).unwrap();
        let p = plugin(&rt, COUNTER, Limits::default());
        let mut warm = Warm::default();
        let mut seen = String::new();
        for event in ["ok", "ok", "Trap", "ok", "ok"] {
            let inv = p.invoke_in(&mut warm, event.as_bytes());
            assert_eq!(inv.outcome.is_ok(), event == "ok", "{event}: {:?}", inv.outcome);
            seen += &logged(&inv);
        }
        // Counts 1, 2, then the trap on 3; the next event gets a fresh
        // instance, whose count starts again at 1.
        assert_eq!(seen, "12312");
        assert_eq!(warm.len(), 1);
    }

    #[test]
    fn a_fresh_plugin_never_sees_a_previous_call() {
        let rt = Runtime::new(1).unwrap();
        let limits = Limits {
            instance: Instance::Fresh,
            ..Limits::default()
        };
        let p = plugin(&rt, COUNTER, limits);
        let mut warm = Warm::default();
        let seen: String = (0..3).map(|_| logged(&p.invoke_in(&mut warm, b"ok"))).collect();
        assert_eq!(seen, "111");
        assert_eq!(warm.len(), 0);
    }

    #[test]
    fn fuel_is_reset_before_every_reused_call() {
        let rt = Runtime::new(1).unwrap();
        let limits = Limits {
            fuel: 100_000,
            ..Limits::default()
        };
        let p = plugin(&rt, SPIN, limits);
        let mut warm = Warm::default();
        let first = p.invoke_in(&mut warm, b"{}");
        assert!(first.outcome.is_ok(), "{:?}", first.outcome);
        assert!(
            first.fuel_used > 50_000,
            "the spin must use over half the budget: {first:?}"
        );
        for _ in 0..5 {
            let inv = p.invoke_in(&mut warm, b"{}");
            assert!(inv.outcome.is_ok(), "{:?}", inv.outcome);
            assert_eq!(inv.fuel_used, first.fuel_used);
        }
    }

    #[test]
    fn an_instance_over_half_its_memory_cap_is_replaced_before_it_fails() {
        let rt = Runtime::new(1).unwrap();
        let limits = Limits {
            memory: 8 * 65_536,
            ..Limits::default()
        };
        let p = plugin(&rt, LEAK, limits);
        let mut warm = Warm::default();
        for i in 0..40 {
            let inv = p.invoke_in(&mut warm, b"{}");
            assert!(inv.outcome.is_ok(), "call {i}: {:?}", inv.outcome);
        }
    }

    #[test]
    fn the_least_recently_used_instance_goes_past_the_cap() {
        let rt = Runtime::new(1).unwrap();
        let plugins: Vec<Plugin> = (0..WARM_PER_WORKER + 2)
            .map(|_| plugin(&rt, COUNTER, Limits::default()))
            .collect();
        let mut warm = Warm::default();
        for p in &plugins {
            assert!(p.invoke_in(&mut warm, b"ok").outcome.is_ok());
        }
        assert_eq!(warm.len(), WARM_PER_WORKER);
        // The first two were evicted: they start counting again.
        assert_eq!(logged(&plugins[0].invoke_in(&mut warm, b"ok")), "1");
        assert_eq!(
            logged(&plugins[WARM_PER_WORKER + 1].invoke_in(&mut warm, b"ok")),
            "2"
        );
        warm.retain(|id| id == plugins[0].id());
        assert_eq!(warm.len(), 1);
    }
}
