//! The `emit` capability: `switchyard::emit(ptr, len) -> i32` (ABI.md,
//! "Host imports"). An emitted event is validated when it is emitted,
//! bounded per invocation (`max_emits`, `max_emit_bytes`) and by the root
//! event's cascade budget (issue 16), and routed only if the invocation
//! succeeds.

use serde_json::{Map, Value};
use switchyard_sdk::abi;
use wasmtime::{Caller, Linker};

use super::{with_guest_bytes, Capability, HostState, Import, Level};
use crate::event::{check_name, json_type};

const EMIT: Import = Import {
    module: abi::IMPORT_MODULE,
    name: abi::IMPORT_EMIT,
    params: &["i32", "i32"],
    results: &["i32"],
};

pub const CAPABILITY: Capability = Capability {
    name: "emit",
    imports: &[EMIT],
    add_to_linker,
};

/// An event a guest emitted, validated when it was emitted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Emitted {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub meta: Map<String, Value>,
    pub data: Value,
}

/// What is left of the root event's cascade budget for one invocation
/// (`[router] max_cascade` events, `max_cascade_bytes` bytes of emitted
/// JSON, issue 16). A cascade runs on one worker, one handler at a time, so
/// the pipeline's workers hand each invocation the exact remainder; an emit past it
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

impl Default for CascadeBudget {
    fn default() -> Self {
        CascadeBudget::UNLIMITED
    }
}

/// Emits refused for the cascade budget in one invocation: how many, and
/// their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub emits: u64,
    pub bytes: u64,
}

/// The emits of the current call.
#[derive(Debug, Default)]
pub struct EmitState {
    /// Accepted emits, routed only if the invocation succeeds.
    pub events: Vec<Emitted>,
    /// Bytes of JSON in `events`, against `max_emit_bytes`.
    pub bytes: u64,
    /// What this invocation may still cause of its root's cascade.
    pub cascade: CascadeBudget,
    /// Emits refused for `cascade` during this call.
    pub refused: Refused,
}

/// Why an emit was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over `max_emits` in this invocation.
    TooMany,
    /// Over `max_emit_bytes` in this invocation.
    TooLarge,
    /// Past the root event's cascade budget.
    CascadeLimit,
    /// Not a valid event: why.
    Malformed(String),
}

impl HostState {
    /// Validates and keeps one emitted event; returns the ABI code.
    pub fn emit(&mut self, bytes: &[u8]) -> i32 {
        match self.try_emit(bytes) {
            Ok(()) => abi::emit::OK,
            Err(Refusal::TooMany) => abi::emit::TOO_MANY,
            Err(Refusal::TooLarge) => abi::emit::TOO_LARGE,
            Err(Refusal::CascadeLimit) => abi::emit::CASCADE_LIMIT,
            Err(Refusal::Malformed(_)) => abi::emit::MALFORMED,
        }
    }

    /// Validates and keeps one emitted event (its JSON text), whatever the
    /// kind of guest: the per-invocation limits, then the cascade budget,
    /// then the event itself. Refusals other than the cascade's are logged.
    pub fn try_emit(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        let (max_emits, max_bytes) = (self.limits.max_emits, self.limits.max_emit_bytes);
        let e = &mut self.emit;
        if e.events.len() as u64 >= u64::from(max_emits) {
            let why = format!("emit refused: over the limit of {max_emits} events per invocation");
            self.log(Level::Warn, why);
            return Err(Refusal::TooMany);
        }
        let len = bytes.len() as u64;
        if e.bytes + len > max_bytes {
            let why = format!("emit refused: over the limit of {max_bytes} bytes per invocation");
            self.log(Level::Warn, why);
            return Err(Refusal::TooLarge);
        }
        if e.events.len() as u64 >= e.cascade.events || e.bytes + len > e.cascade.bytes {
            // Counted, not logged: the root's one `cascade_limit` letter
            // says how many and how large.
            e.refused.emits += 1;
            e.refused.bytes += len;
            return Err(Refusal::CascadeLimit);
        }
        match parse_emit(bytes) {
            Ok(obj) => {
                e.bytes += len;
                e.events.push(obj);
                Ok(())
            }
            Err(why) => {
                self.log(Level::Warn, format!("emit refused: {why}"));
                Err(Refusal::Malformed(why))
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

fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        EMIT.module,
        EMIT.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "emit", ptr, len, |bytes, state| state.emit(bytes))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Limits;

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
        assert_eq!(s.emit.events.len(), 2);
        assert!(s
            .log
            .lines
            .iter()
            .any(|l| l.message == "emit refused: missing \"name\""));
        assert_eq!(s.emit.events[0].data, serde_json::json!({"x": 1}));
    }

    #[test]
    fn emits_past_the_cascade_budget_are_refused_and_counted() {
        let mut s = HostState::new(None, Limits::default(), Instant::now());
        s.emit.cascade = CascadeBudget { events: 2, bytes: 30 };
        let ev = br#"{"name":"a.B"}"#; // 14 bytes
        assert_eq!(s.emit(ev), abi::emit::OK);
        // 14 + 32 bytes is over the 30 left: refused, however well formed.
        assert_eq!(
            s.emit(br#"{"name":"a.C","data":"xxxxxxxx"}"#),
            abi::emit::CASCADE_LIMIT
        );
        assert_eq!(s.emit(ev), abi::emit::OK);
        assert_eq!(s.emit(b"{}"), abi::emit::CASCADE_LIMIT);
        assert_eq!(s.emit.events.len(), 2);
        assert_eq!(s.emit.refused, Refused { emits: 2, bytes: 34 });
    }
}
