//! What a guest can reach: the per-invocation host state and the
//! `switchyard` imports. Every pointer and length from the guest is checked.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use switchyard_sdk::abi;
use wasmtime::{Caller, Extern, ResourceLimiter};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::failure::{BadAbi, DeadlinePassed};
use crate::config::Limits;
use crate::envelope::{check_name, json_type};

/// Log lines kept per invocation; further lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn from_abi(level: i32) -> Level {
        match level {
            i32::MIN..=abi::level::TRACE => Level::Trace,
            abi::level::DEBUG => Level::Debug,
            abi::level::INFO => Level::Info,
            abi::level::WARN => Level::Warn,
            _ => Level::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// An event a guest emitted, validated when it was emitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Emitted {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub meta: Map<String, Value>,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// Refuses linear-memory growth past the plugin's cap, and remembers that it
/// did so the failure is reported as `memory_limit` rather than a plain trap.
pub struct MemoryCap {
    pub cap: usize,
    pub hit: Option<String>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            let msg = format!(
                "linear memory would grow from {current} to {desired} bytes, over the cap of {} bytes",
                self.cap
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::Error::msg(msg));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The invocation's wall-clock deadline, as host calls see it.
///
/// Epoch interruption stops wasm code, but not a host call that waits, so
/// every host function that can wait (WASI `poll_oneoff` today; KV or
/// network calls later) asks this, the one place that knows the deadline,
/// how long it may wait, and ends the run as `timeout` when the wait would
/// outlast it (issue 16). Armed with the epoch deadline, per call.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// When the current call (or instantiation) must be over.
    pub at: Instant,
    /// The plugin's `timeout`, for messages.
    pub timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn starting_now(timeout: Duration) -> Deadline {
        Deadline {
            at: crate::config::units::instant_after(Instant::now(), timeout),
            timeout,
        }
    }

    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether a host call may wait `wait`: `Ok` when it ends before the
    /// deadline, else the error that ends the invocation as `timeout`
    /// (at once: waiting out the rest would only hold the worker longer).
    pub fn allow(&self, wait: Duration, what: &str) -> Result<(), DeadlinePassed> {
        let left = self.remaining();
        if wait <= left {
            return Ok(());
        }
        Err(DeadlinePassed(format!(
            "{what} would wait {wait:?}, past the deadline of {:?} ({left:?} left)",
            self.timeout
        )))
    }
}

/// What is left of the root event's cascade budget for one invocation
/// (`[router] max_cascade` events, `max_cascade_bytes` bytes of emitted
/// JSON, issue 16). A cascade runs on one worker, one handler at a time, so
/// the dispatcher hands each invocation the exact remainder; an emit past it
/// is refused with `cascade_limit` and nothing of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CascadeBudget {
    pub events: u64,
    pub bytes: u64,
}

impl CascadeBudget {
    /// No cascade around the call (`plugin run`, tests).
    pub const UNLIMITED: CascadeBudget = CascadeBudget {
        events: u64::MAX,
        bytes: u64::MAX,
    };
}

/// Emits refused for the cascade budget in one invocation: how many, and
/// their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub emits: u64,
    pub bytes: u64,
}

/// Everything one invocation's guest can touch through imports.
pub struct HostState {
    /// WASI with nothing granted; absent when the module imports no WASI.
    pub wasi: Option<WasiP1Ctx>,
    pub memory_cap: MemoryCap,
    pub limits: Limits,
    /// The current call's deadline; see [`Deadline`].
    pub deadline: Deadline,
    /// Origin of the guest's WASI monotonic clock, so that `poll_oneoff`
    /// can turn an absolute monotonic time into a wait.
    pub clock_origin: Instant,
    /// Accepted emits, routed only if the invocation succeeds.
    pub emits: Vec<Emitted>,
    pub emit_bytes: u64,
    /// What this invocation may still cause of its root's cascade.
    pub cascade: CascadeBudget,
    /// Emits refused for `cascade` during this call.
    pub cascade_refused: Refused,
    pub logs: Vec<LogLine>,
    pub dropped_logs: u64,
    /// Last message passed to `fail`.
    pub fail_message: Option<String>,
}

impl HostState {
    pub fn new(wasi: Option<WasiP1Ctx>, limits: Limits, clock_origin: Instant) -> HostState {
        HostState {
            wasi,
            deadline: Deadline::starting_now(limits.timeout),
            clock_origin,
            memory_cap: MemoryCap {
                cap: usize::try_from(limits.memory).unwrap_or(usize::MAX),
                hit: None,
            },
            limits,
            emits: Vec::new(),
            emit_bytes: 0,
            cascade: CascadeBudget::UNLIMITED,
            cascade_refused: Refused::default(),
            logs: Vec::new(),
            dropped_logs: 0,
            fail_message: None,
        }
    }

    pub fn log(&mut self, level: Level, message: String) {
        if self.logs.len() < MAX_LOG_LINES {
            self.logs.push(LogLine { level, message });
        } else {
            self.dropped_logs += 1;
        }
    }

    /// Validates and keeps one emitted event; returns the ABI code.
    pub fn emit(&mut self, bytes: &[u8]) -> i32 {
        if self.emits.len() as u64 >= u64::from(self.limits.max_emits) {
            self.log(
                Level::Warn,
                format!(
                    "emit refused: over the limit of {} events per invocation",
                    self.limits.max_emits
                ),
            );
            return abi::emit::TOO_MANY;
        }
        if self.emit_bytes + bytes.len() as u64 > self.limits.max_emit_bytes {
            self.log(
                Level::Warn,
                format!(
                    "emit refused: over the limit of {} bytes per invocation",
                    self.limits.max_emit_bytes
                ),
            );
            return abi::emit::TOO_LARGE;
        }
        let len = bytes.len() as u64;
        if self.emits.len() as u64 >= self.cascade.events || self.emit_bytes + len > self.cascade.bytes {
            // Counted, not logged: the root's one `cascade_limit` letter
            // says how many and how large.
            self.cascade_refused.emits += 1;
            self.cascade_refused.bytes += len;
            return abi::emit::CASCADE_LIMIT;
        }
        match parse_emit(bytes) {
            Ok(obj) => {
                self.emit_bytes += bytes.len() as u64;
                self.emits.push(obj);
                abi::emit::OK
            }
            Err(why) => {
                self.log(Level::Warn, format!("emit refused: {why}"));
                abi::emit::MALFORMED
            }
        }
    }
}

/// An emitted event: a JSON object with a valid `name`, optional `data`,
/// object `meta` and string `version`.
fn parse_emit(bytes: &[u8]) -> Result<Emitted, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err(format!("expected a JSON object, got {}", json_type(&value)));
    };
    let name = match obj.remove("name") {
        Some(Value::String(n)) => {
            check_name(&n).map_err(|p| format!("\"name\" {p}"))?;
            n
        }
        Some(other) => return Err(format!("\"name\" must be a string, got {}", json_type(&other))),
        None => return Err("missing \"name\"".into()),
    };
    let meta = match obj.remove("meta") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => return Err(format!("\"meta\" must be an object, got {}", json_type(&other))),
    };
    let version = match obj.remove("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v),
        Some(other) => return Err(format!("\"version\" must be a string, got {}", json_type(&other))),
    };
    let data = obj.remove("data").unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(k) = obj.keys().next() {
        return Err(format!(
            "unknown field \"{k}\" (an emitted event has name, data, meta, version)"
        ));
    }
    Ok(Emitted {
        name,
        version,
        meta,
        data,
    })
}

/// Checks `[ptr, ptr+len)` against the guest's memory and hands the bytes and
/// the host state to `f`.
fn with_guest_bytes<R>(
    caller: &mut Caller<'_, HostState>,
    import: &str,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> wasmtime::Result<R> {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Err(BadAbi(format!("{import}: the module exports no memory named \"memory\"")).into());
    };
    let (data, state) = memory.data_and_store_mut(caller);
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let bytes = start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| {
            BadAbi(format!(
                "{import}: range of {len} bytes at {start:#x} is outside linear memory ({} bytes)",
                data.len()
            ))
        })?;
    Ok(f(bytes, state))
}

fn message(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(abi::MAX_MESSAGE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

pub fn add_imports(linker: &mut wasmtime::Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_LOG,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "log", ptr, len, |bytes, state| {
                state.log(Level::from_abi(level), message(bytes))
            })
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_EMIT,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "emit", ptr, len, |bytes, state| state.emit(bytes))
        },
    )?;
    linker.func_wrap(
        abi::IMPORT_MODULE,
        abi::IMPORT_FAIL,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "fail", ptr, len, |bytes, state| {
                state.fail_message = Some(message(bytes))
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_validation_and_limits() {
        let limits = Limits {
            max_emits: 2,
            max_emit_bytes: 60,
            ..Limits::default()
        };
        let mut s = HostState::new(None, limits, Instant::now());
        assert_eq!(s.emit(br#"{"name":"a.B","data":{"x":1}}"#), abi::emit::OK);
        assert_eq!(s.emit(b"not json"), abi::emit::MALFORMED);
        assert_eq!(s.emit(br#"[1]"#), abi::emit::MALFORMED);
        assert_eq!(s.emit(br#"{"data":{}}"#), abi::emit::MALFORMED);
        assert_eq!(s.emit(br#"{"name":"a b"}"#), abi::emit::MALFORMED);
        assert_eq!(s.emit(br#"{"name":"a","meta":3}"#), abi::emit::MALFORMED);
        assert_eq!(s.emit(br#"{"name":"a","id":"x"}"#), abi::emit::MALFORMED);
        assert_eq!(
            s.emit(br#"{"name":"a.C","data":"yyyyyyyyyyyyyyyyyyyyyyyy"}"#),
            abi::emit::TOO_LARGE
        );
        assert_eq!(s.emit(br#"{"name":"a.C"}"#), abi::emit::OK);
        assert_eq!(s.emit(br#"{"name":"a.D"}"#), abi::emit::TOO_MANY);
        assert_eq!(s.emits.len(), 2);
        assert!(s
            .logs
            .iter()
            .any(|l| l.message == "emit refused: missing \"name\""));
        assert_eq!(s.emits[0].data, serde_json::json!({"x": 1}));
    }

    #[test]
    fn emits_past_the_cascade_budget_are_refused_and_counted() {
        let mut s = HostState::new(None, Limits::default(), Instant::now());
        s.cascade = CascadeBudget { events: 2, bytes: 30 };
        let ev = br#"{"name":"a.B"}"#; // 14 bytes
        assert_eq!(s.emit(ev), abi::emit::OK);
        // 14 + 32 bytes is over the 30 left: refused, however well formed.
        assert_eq!(
            s.emit(br#"{"name":"a.C","data":"xxxxxxxx"}"#),
            abi::emit::CASCADE_LIMIT
        );
        assert_eq!(s.emit(ev), abi::emit::OK);
        assert_eq!(s.emit(b"{}"), abi::emit::CASCADE_LIMIT);
        assert_eq!(s.emits.len(), 2);
        assert_eq!(s.cascade_refused, Refused { emits: 2, bytes: 34 });
    }

    #[test]
    fn log_lines_are_capped() {
        let mut s = HostState::new(None, Limits::default(), Instant::now());
        for i in 0..MAX_LOG_LINES + 5 {
            s.log(Level::Info, i.to_string());
        }
        assert_eq!(s.logs.len(), MAX_LOG_LINES);
        assert_eq!(s.dropped_logs, 5);
    }

    #[test]
    fn levels_clamp() {
        assert_eq!(Level::from_abi(-7), Level::Trace);
        assert_eq!(Level::from_abi(2), Level::Info);
        assert_eq!(Level::from_abi(99), Level::Error);
    }
}
