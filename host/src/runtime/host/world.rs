//! The host side of the component world `switchyard:handler@1.0.0`
//! (`plugin-sdk/wit/switchyard.wit`): its `host` interface (`log`,
//! `emit`), through the same capability code as a core module's imports
//! ([`super::log`], [`super::emit`]: per-invocation caps, emit limits,
//! the cascade budget, and the daemon's log rate limit downstream), and
//! the bindings a component executor calls (`configure`, `handle`).
//!
//! The bindings are generated from the WIT file itself, so the host and the
//! contract authors build against cannot drift apart.

use serde_json::{Map, Value};
use wasmtime::component::{HasSelf, Linker};

use super::emit::Refusal;
use super::{message, HostState, Level};
use crate::event::json_type;

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit/switchyard.wit",
    world: "handler",
});

pub use self::switchyard::handler::types::{EmitError, NewEvent};
use self::switchyard::handler::{host, types};

/// The world's package, as messages name it.
pub const WORLD: &str = "switchyard:handler/handler@1.0.0";

impl From<types::Level> for Level {
    fn from(level: types::Level) -> Level {
        match level {
            types::Level::Trace => Level::Trace,
            types::Level::Debug => Level::Debug,
            types::Level::Info => Level::Info,
            types::Level::Warn => Level::Warn,
            types::Level::Error => Level::Error,
        }
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: types::Level, text: String) {
        HostState::log(self, level.into(), message(text.as_bytes()));
    }

    fn emit(&mut self, event: NewEvent) -> Result<(), EmitError> {
        let json = match new_event_json(event) {
            Ok(json) => json,
            Err(why) => {
                HostState::log(self, Level::Warn, format!("emit refused: {why}"));
                return Err(EmitError::Malformed(why));
            }
        };
        self.try_emit(&json).map_err(|refusal| match refusal {
            Refusal::TooMany | Refusal::CascadeLimit => EmitError::TooMany,
            Refusal::TooLarge => EmitError::TooLarge,
            Refusal::Malformed(why) => EmitError::Malformed(why),
        })
    }
}

/// The JSON object a core module would have emitted for `event`: its
/// `data` and `meta` texts must be JSON (`meta` an object, checked later
/// with the rest of the event).
fn new_event_json(event: NewEvent) -> Result<Vec<u8>, String> {
    let parse = |field: &str, text: &str| {
        serde_json::from_str::<Value>(text).map_err(|e| format!("\"{field}\" is not JSON text: {e}"))
    };
    let mut obj = Map::new();
    obj.insert("name".into(), Value::String(event.name));
    obj.insert("data".into(), parse("data", &event.data)?);
    if let Some(meta) = event.meta {
        let meta = parse("meta", &meta)?;
        if !meta.is_object() {
            return Err(format!("\"meta\" must be an object, got {}", json_type(&meta)));
        }
        obj.insert("meta".into(), meta);
    }
    if let Some(version) = event.version {
        obj.insert("version".into(), Value::String(version));
    }
    serde_json::to_vec(&Value::Object(obj)).map_err(|e| e.to_string())
}

/// The envelope as the world's `event` record: `meta` and `data` as JSON
/// text. `envelope` is the JSON the daemon hands every guest.
pub fn event_record(envelope: &[u8]) -> serde_json::Result<Event> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        id: String,
        name: String,
        #[serde(default)]
        version: Option<String>,
        source: String,
        time: String,
        #[serde(borrow, default)]
        meta: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow, default)]
        data: Option<&'a serde_json::value::RawValue>,
    }
    let e: Envelope<'_> = serde_json::from_slice(envelope)?;
    Ok(Event {
        id: e.id,
        name: e.name,
        version: e.version,
        source: e.source,
        time: e.time,
        meta: e.meta.map_or("{}", |m| m.get()).to_string(),
        data: e.data.map_or("null", |d| d.get()).to_string(),
    })
}

/// Adds the world's imports (`switchyard:handler/host`, `types`) to a
/// component linker.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    Handler::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Limits;

    fn new_event(data: &str, meta: Option<&str>) -> NewEvent {
        NewEvent {
            name: "a.B".into(),
            data: data.into(),
            meta: meta.map(String::from),
            version: Some("1.0".into()),
        }
    }

    #[test]
    fn emits_go_through_the_core_capability_and_its_limits() {
        let limits = Limits {
            max_emits: 1,
            ..Limits::default()
        };
        let mut s = HostState::new(None, limits, Instant::now());
        let emit = |s: &mut HostState, e| host::Host::emit(s, e);
        assert!(matches!(
            emit(&mut s, new_event("{", None)),
            Err(EmitError::Malformed(why)) if why.starts_with("\"data\" is not JSON text")
        ));
        assert!(matches!(
            emit(&mut s, new_event("1", Some("[]"))),
            Err(EmitError::Malformed(why)) if why == "\"meta\" must be an object, got an array"
        ));
        assert!(matches!(
            emit(&mut s, new_event(r#"{"x":1}"#, Some(r#"{"k":"v"}"#))),
            Ok(())
        ));
        assert!(matches!(
            emit(&mut s, new_event("2", None)),
            Err(EmitError::TooMany)
        ));
        assert_eq!(s.emit.events.len(), 1);
        let e = &s.emit.events[0];
        assert_eq!((e.name.as_str(), e.version.as_deref()), ("a.B", Some("1.0")));
        assert_eq!(e.data, serde_json::json!({"x": 1}));
        assert_eq!(e.meta["k"], "v");
        assert_eq!(s.log.lines.len(), 3, "every refusal is logged: {:?}", s.log.lines);
    }

    #[test]
    fn the_envelope_becomes_the_event_record() {
        let json = br#"{"id":"01J","name":"a.B","source":"http","time":"2026-01-01T00:00:00Z","meta":{"h":1},"data":[1, 2]}"#;
        let e = event_record(json).unwrap();
        assert_eq!((e.id.as_str(), e.version), ("01J", None));
        assert_eq!((e.meta.as_str(), e.data.as_str()), (r#"{"h":1}"#, "[1, 2]"));
    }
}
