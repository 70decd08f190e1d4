//! Running a plugin on one event: in a fresh instance, or in an instance a
//! worker keeps between events (`instance = "reuse"`).
//!
//! A kept instance gets its fuel and deadline reset before every call and is
//! discarded after any failure, so a trap, an exhausted budget or a handler
//! error never reaches the next event: that one starts from a fresh instance.

use std::time::{Duration, Instant};

use switchyard_sdk::abi;
use wasmtime::{Memory, Store, TypedFunc};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::WasiCtxBuilder;

use super::failure::{self, BadAbi, Failure, HandlerError};
use super::host::{CascadeBudget, Deadline, Emitted, HostState, Level, LogLine, Refused};
use super::plugin::{Plugin, PluginKind};
use super::poll::GuestClock;
use super::Runtime;
use crate::config::Instance;

/// Bytes of stdout and of stderr kept per instance.
const MAX_STDIO: usize = 1 << 20;
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

/// What a WASI guest writes to stdout and stderr, and how much of it has
/// been turned into log lines already.
pub(super) struct Stdio {
    out: MemoryOutputPipe,
    err: MemoryOutputPipe,
    read: (usize, usize),
}

impl Stdio {
    /// Lines written since the last call, as (stdout, stderr).
    fn new_lines(&mut self) -> (Vec<String>, Vec<String>) {
        let (out, err) = (self.out.contents(), self.err.contents());
        let fresh = (lines(&out[self.read.0..]), lines(&err[self.read.1..]));
        self.read = (out.len(), err.len());
        fresh
    }
}

/// A handler instance and the exports each call needs, looked up once.
pub(super) struct Ready {
    store: Store<HostState>,
    exports: Exports,
    stdio: Option<Stdio>,
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
    /// A store with the plugin's limits; for a WASI guest also its stdio
    /// capture (and, for a command, `stdin` and the config variable).
    pub(super) fn new_store(&self, stdin: &[u8]) -> (Store<HostState>, Option<Stdio>) {
        let stdio = self.needs_wasi.then(|| Stdio {
            out: MemoryOutputPipe::new(MAX_STDIO),
            err: MemoryOutputPipe::new(MAX_STDIO),
            read: (0, 0),
        });
        let clock_origin = Instant::now();
        let wasi = stdio.as_ref().map(|io| {
            let mut b = WasiCtxBuilder::new();
            b.arg(&self.name)
                .stdout(io.out.clone())
                .stderr(io.err.clone())
                .monotonic_clock(GuestClock(clock_origin));
            if self.kind == PluginKind::Command {
                b.stdin(MemoryInputPipe::new(stdin.to_vec()))
                    .env(abi::COMMAND_CONFIG_ENV, &self.config_json);
            }
            b.build_p1()
        });
        let limits = self.settings.limits;
        let state = HostState::new(wasi, limits, clock_origin);
        let mut store = Store::new(self.pre.module().engine(), state);
        store.limiter(|s| &mut s.memory_cap);
        arm(&mut store, &limits);
        (store, stdio)
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
        match self.kind {
            PluginKind::Handler => {
                let (mut store, mut stdio) = self.new_store(b"");
                store.data_mut().cascade = budget;
                let run = self
                    .prepare(&mut store)
                    .and_then(|ready| call(&mut store, &ready, event_json));
                self.finish(started, &mut store, stdio.as_mut(), run)
            }
            PluginKind::Command => {
                let mut stdin = Vec::with_capacity(event_json.len() + 1);
                stdin.extend_from_slice(event_json);
                stdin.push(b'\n');
                let (mut store, mut stdio) = self.new_store(&stdin);
                store.data_mut().cascade = budget;
                let run = self.run_command(&mut store, stdio.as_mut());
                self.finish(started, &mut store, stdio.as_mut(), run)
            }
        }
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
                let (mut store, mut stdio) = self.new_store(b"");
                match self.prepare(&mut store) {
                    Ok(exports) => Ready {
                        store,
                        exports,
                        stdio,
                    },
                    Err(e) => return self.finish(started, &mut store, stdio.as_mut(), Err(e)),
                }
            }
        };
        arm(&mut ready.store, &self.settings.limits);
        ready.store.data_mut().cascade = budget;
        let run = call(&mut ready.store, &ready.exports, event_json);
        let inv = self.finish(started, &mut ready.store, ready.stdio.as_mut(), run);
        if inv.outcome.is_ok() && self.worth_keeping(&ready) {
            warm.put(self.id(), ready);
        }
        inv
    }

    /// Whether a kept instance may serve another event: its memory is under
    /// half the cap (a guest that leaks per event is replaced long before it
    /// fails an event on the cap) and its stdio capture has room.
    fn worth_keeping(&self, ready: &Ready) -> bool {
        let memory = ready.exports.memory.data_size(&ready.store) as u64;
        let stdio = ready.stdio.as_ref().map_or(0, |io| io.read.0 + io.read.1);
        memory <= self.settings.limits.memory / 2 && stdio <= REUSE_MAX_STDIO
    }

    /// Instantiates, runs `_initialize` and `switchyard_init`, and looks up
    /// the exports a call needs.
    fn prepare(&self, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
        let instance = self.pre.instantiate(&mut *store)?;
        if self.has_initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?
                .call(&mut *store, ())?;
        }
        let memory = instance
            .get_memory(&mut *store, abi::EXPORT_MEMORY)
            .ok_or_else(|| BadAbi("no exported memory".into()))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, abi::EXPORT_ALLOC)?;
        if self.has_init {
            let init = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_INIT)?;
            let args = pass(store, &alloc, memory, self.config_json.as_bytes())?;
            let rc = init.call(&mut *store, args)?;
            if rc != abi::HANDLE_OK {
                return Err(guest_failure(store, abi::EXPORT_INIT, rc));
            }
        }
        let handle = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_HANDLE)?;
        Ok(Exports {
            memory,
            alloc,
            handle,
        })
    }

    fn run_command(&self, store: &mut Store<HostState>, stdio: Option<&mut Stdio>) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate(&mut *store)?;
        let start = instance.get_typed_func::<(), ()>(&mut *store, abi::EXPORT_START)?;
        let Err(e) = start.call(&mut *store, ()) else {
            return Ok(());
        };
        let Some(code) = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|exit| exit.0) else {
            return Err(e);
        };
        if code == 0 {
            return Ok(());
        }
        let why = match &store.data().fail_message {
            Some(msg) => msg.clone(),
            None => stdio
                .and_then(|io| lines(&io.err.contents()).pop())
                .unwrap_or_else(|| "no message on stderr".into()),
        };
        Err(HandlerError(format!("exit code {code}: {why}")).into())
    }

    /// Classifies the outcome and moves what the guest produced during this
    /// call out of the store, leaving it clean for a next call.
    fn finish(
        &self,
        started: Instant,
        store: &mut Store<HostState>,
        stdio: Option<&mut Stdio>,
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
        if let Some(io) = stdio {
            let (out_lines, err_lines) = io.new_lines();
            for line in out_lines {
                if self.kind == PluginKind::Command && line.trim_start().starts_with('{') {
                    state.emit(line.as_bytes());
                } else {
                    state.log(Level::Info, line);
                }
            }
            for line in err_lines {
                state.log(Level::Warn, line);
            }
        }
        let emitted = std::mem::take(&mut state.emits);
        let emitted_bytes = std::mem::take(&mut state.emit_bytes);
        let cascade_refused = std::mem::take(&mut state.cascade_refused);
        state.cascade = CascadeBudget::UNLIMITED;
        state.fail_message = None;
        state.memory_cap.hit = None;
        Invocation {
            emitted: if outcome.is_ok() { emitted } else { Vec::new() },
            emitted_bytes: if outcome.is_ok() { emitted_bytes } else { 0 },
            cascade_refused,
            outcome,
            logs: std::mem::take(&mut state.logs),
            dropped_logs: std::mem::take(&mut state.dropped_logs),
            fuel_used,
            elapsed: started.elapsed(),
        }
    }
}

/// Gives a store a full fuel budget and a fresh deadline, both for wasm
/// (the epoch) and for host calls that may wait ([`Deadline`]): before an
/// instantiation and before every call of a kept instance.
fn arm(store: &mut Store<HostState>, limits: &crate::config::Limits) {
    store
        .set_fuel(limits.fuel)
        .expect("fuel is enabled on the engine");
    store.set_epoch_deadline(Runtime::deadline_ticks(limits.timeout));
    store.data_mut().deadline = Deadline::starting_now(limits.timeout);
}

/// The exports a handler call needs, looked up once per instance.
struct Exports {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i32>,
}

/// Copies the event in and calls `switchyard_handle`.
fn call(store: &mut Store<HostState>, ex: &Exports, event_json: &[u8]) -> wasmtime::Result<()> {
    let args = pass(store, &ex.alloc, ex.memory, event_json)?;
    let rc = ex.handle.call(&mut *store, args)?;
    if rc != abi::HANDLE_OK {
        return Err(guest_failure(store, abi::EXPORT_HANDLE, rc));
    }
    Ok(())
}

/// Copies `bytes` into a buffer from `switchyard_alloc`, checking what it returned.
fn pass(
    store: &mut Store<HostState>,
    alloc: &TypedFunc<i32, i32>,
    memory: Memory,
    bytes: &[u8],
) -> wasmtime::Result<(i32, i32)> {
    let len = i32::try_from(bytes.len())
        .map_err(|_| BadAbi(format!("input of {} bytes is too large", bytes.len())))?;
    let ptr = alloc.call(&mut *store, len)?;
    if ptr == 0 && len > 0 {
        return Err(BadAbi(format!("{}({len}) returned 0", abi::EXPORT_ALLOC)).into());
    }
    memory
        .write(&mut *store, ptr as u32 as usize, bytes)
        .map_err(|_| {
            BadAbi(format!(
                "{}({len}) returned {:#x}, but {len} bytes there are outside linear memory ({} bytes)",
                abi::EXPORT_ALLOC,
                ptr as u32,
                memory.data_size(&*store)
            ))
        })?;
    Ok((ptr, len))
}

fn guest_failure(store: &Store<HostState>, export: &str, rc: i32) -> wasmtime::Error {
    let msg = store
        .data()
        .fail_message
        .clone()
        .unwrap_or_else(|| format!("{export} returned {rc}"));
    HandlerError(msg).into()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, PluginSettings};

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
