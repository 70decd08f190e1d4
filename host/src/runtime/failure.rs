//! Failure kinds of an invocation and how a wasmtime error maps onto them.

use std::fmt;

use serde::Serialize;
use switchyard_sdk::abi::kind;
use wasmtime::{Trap, WasmBacktrace};

/// How an invocation failed; the names are the same in dead letters,
/// `?wait=true` answers, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Trap,
    OutOfFuel,
    Timeout,
    MemoryLimit,
    StackOverflow,
    HandlerError,
    BadAbi,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Trap,
        FailureKind::OutOfFuel,
        FailureKind::Timeout,
        FailureKind::MemoryLimit,
        FailureKind::StackOverflow,
        FailureKind::HandlerError,
        FailureKind::BadAbi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => kind::TRAP,
            FailureKind::OutOfFuel => kind::OUT_OF_FUEL,
            FailureKind::Timeout => kind::TIMEOUT,
            FailureKind::MemoryLimit => kind::MEMORY_LIMIT,
            FailureKind::StackOverflow => kind::STACK_OVERFLOW,
            FailureKind::HandlerError => kind::HANDLER_ERROR,
            FailureKind::BadAbi => kind::BAD_ABI,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Longest failure message kept in dead letters and `?wait=true` answers:
/// a failure message may carry guest text (`fail`, stderr, a trap), so a
/// dead letter is bounded by its event plus this (issue 16).
pub const MAX_FAILURE_MESSAGE: usize = 4 << 10;

/// Longest failure message written to the daemon's log.
pub const MAX_LOGGED_FAILURE: usize = 1 << 10;

/// `message` cut to at most `max` bytes on a UTF-8 boundary, followed by
/// `… (N bytes more)` when anything was cut.
pub fn truncate(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &message[..end], message.len() - end).into()
}

/// The guest broke the ABI (bad pointer, bad length, null allocation).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadAbi(pub String);

/// The guest reported failure (non-zero return or exit code).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// A host call would have waited past the invocation's deadline (issue 16):
/// ends the run as `timeout`, whether it happened in wasm or in the host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeadlinePassed(pub String);

/// What the run knew besides the error, to name the failure precisely.
pub struct Context<'a> {
    /// Set by the memory limiter when a growth past the cap was refused.
    pub memory_limit_hit: Option<&'a str>,
    pub fuel: u64,
    pub timeout: std::time::Duration,
}

/// Maps the error that ended a run to a failure kind and a message.
pub fn classify(err: &wasmtime::Error, cx: &Context<'_>) -> Failure {
    if let Some(msg) = cx.memory_limit_hit {
        return Failure::new(FailureKind::MemoryLimit, msg);
    }
    if let Some(e) = err.downcast_ref::<BadAbi>() {
        return Failure::new(FailureKind::BadAbi, e.0.clone());
    }
    if let Some(e) = err.downcast_ref::<DeadlinePassed>() {
        return Failure::new(FailureKind::Timeout, e.0.clone());
    }
    if let Some(e) = err.downcast_ref::<HandlerError>() {
        return Failure::new(FailureKind::HandlerError, e.0.clone());
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Failure::new(
            FailureKind::HandlerError,
            format!("the plugin called proc_exit({}) while handling an event", exit.0),
        );
    }
    let place = err
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| bt.frames().iter().find_map(|f| f.func_name().map(str::to_string)))
        .map(|f| format!(" (in `{f}`)"))
        .unwrap_or_default();
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::new(
            FailureKind::OutOfFuel,
            format!("fuel budget of {} exhausted{place}", cx.fuel),
        ),
        Some(Trap::Interrupt) => Failure::new(
            FailureKind::Timeout,
            format!("deadline of {:?} passed{place}", cx.timeout),
        ),
        Some(Trap::StackOverflow) => {
            Failure::new(FailureKind::StackOverflow, format!("wasm stack exhausted{place}"))
        }
        Some(trap) => Failure::new(FailureKind::Trap, format!("{trap}{place}")),
        None => Failure::new(FailureKind::Trap, format!("{:#}", err)),
    }
}

#[cfg(test)]
mod truncate_tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary_with_a_marker() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 4), "abcd… (2 bytes more)");
        // "é" is 2 bytes: a cut inside it moves back to its start.
        assert_eq!(truncate("aéb", 2), "a… (3 bytes more)");
    }
}
