//! The event envelope: one JSON shape on every path (handler input, sinks,
//! dead letters), and its construction from what producers send, including
//! CloudEvents 1.0 ([`cloudevents`]).

pub mod cloudevents;
pub mod version;

use std::cell::RefCell;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

/// Longest accepted event name, id and version, in bytes.
const MAX_NAME: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sortable unique id (ULID), assigned on ingest when the producer gave none.
    pub id: String,
    /// Dotted event name, `app.EventName`: what routes match on.
    pub name: String,
    /// Schema version of `data`, matched by version ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How the event entered the router: `http`, `tail:<path>`, `plugin:<name>`.
    pub source: String,
    /// RFC 3339 time, assigned on ingest when absent.
    pub time: String,
    /// The facility layer: metadata about the event, kept apart from `data`.
    #[serde(default)]
    pub meta: Map<String, Value>,
    /// The application payload.
    #[serde(default = "empty_object")]
    pub data: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Why a producer's input is not an event. The message names the field.
#[derive(Debug, Error, PartialEq)]
pub enum EnvelopeError {
    #[error("an event must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("missing \"{0}\"")]
    Missing(&'static str),
    #[error("\"{field}\" {problem}")]
    Invalid { field: &'static str, problem: String },
    /// A CloudEvents attribute (any name, extensions included) at fault.
    #[error("\"{name}\" {problem}")]
    Attribute { name: String, problem: String },
    #[error("unknown field \"{0}\" (an event has id, name, version, source, time, meta, data)")]
    UnknownField(String),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Invalid {
        field,
        problem: problem.into(),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

thread_local! {
    /// Per-thread monotonic generator: ids from one thread sort in creation
    /// order, ids from different threads sort by millisecond.
    static ULIDS: RefCell<ulid::Generator> = const { RefCell::new(ulid::Generator::new()) };
}

/// A new sortable event id.
pub fn new_id() -> String {
    ULIDS.with(|g| {
        g.borrow_mut()
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    })
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Checks an event name: non-empty, at most 256 bytes, no whitespace or control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("is longer than {MAX_NAME} bytes"));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain {c:?} (names look like \"app.EventName\")"
        ));
    }
    Ok(())
}

fn take_string(obj: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, EnvelopeError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_NAME => Ok(Some(s)),
        Some(Value::String(_)) => Err(invalid(field, format!("is longer than {MAX_NAME} bytes"))),
        Some(other) => Err(invalid(
            field,
            format!("must be a string, got {}", json_type(&other)),
        )),
    }
}

fn take_time(obj: &mut Map<String, Value>, field: &'static str) -> Result<String, EnvelopeError> {
    match take_string(obj, field)? {
        None => Ok(now()),
        Some(t) => {
            time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| invalid(field, format!("must be an RFC 3339 time, got {t:?}")))?;
            Ok(t)
        }
    }
}

fn take_object(
    obj: &mut Map<String, Value>,
    field: &'static str,
) -> Result<Map<String, Value>, EnvelopeError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(invalid(
            field,
            format!("must be an object, got {}", json_type(&other)),
        )),
    }
}

impl Event {
    /// Builds an event from a producer's JSON: the envelope (or just
    /// `{name, data}`), or a CloudEvent when `specversion` is present.
    /// `source` is the ingest path; a producer's own `source` is replaced.
    pub fn from_input(value: Value, source: &str) -> Result<Event, EnvelopeError> {
        let mut obj = match value {
            Value::Object(obj) => obj,
            other => return Err(EnvelopeError::NotAnObject(json_type(&other))),
        };
        if obj.contains_key("specversion") {
            return Event::from_cloudevent(obj, source);
        }
        let name = take_string(&mut obj, "name")?.ok_or(EnvelopeError::Missing("name"))?;
        check_name(&name).map_err(|p| invalid("name", p))?;
        let id = match take_string(&mut obj, "id")? {
            Some(id) if id.is_empty() => return Err(invalid("id", "must not be empty")),
            Some(id) => id,
            None => new_id(),
        };
        let version = match obj.remove("version") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(invalid(
                    "version",
                    format!("must be a string like \"1.2\", got {}", json_type(&other)),
                ))
            }
        };
        let time = take_time(&mut obj, "time")?;
        let meta = take_object(&mut obj, "meta")?;
        let data = obj.remove("data").unwrap_or_else(empty_object);
        obj.remove("source");
        if let Some(field) = obj.keys().next() {
            return Err(EnvelopeError::UnknownField(field.clone()));
        }
        Ok(Event {
            id,
            name,
            version,
            source: source.to_string(),
            time,
            meta,
            data,
        })
    }

    /// Maps a CloudEvent: see [`cloudevents::to_event`].
    pub fn from_cloudevent(obj: Map<String, Value>, source: &str) -> Result<Event, EnvelopeError> {
        cloudevents::to_event(obj, source)
    }

    /// The envelope as compact JSON, the form handlers and sinks receive.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        out
    }

    /// Replaces the contents of `out` with the event's JSON, reusing its
    /// allocation.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.clear();
        serde_json::to_writer(&mut *out, self).expect("an Event always serialises");
    }

    /// A field of `data` or `meta` by dotted path (`user.id`).
    pub fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
        path.iter().try_fold(root, |v, key| v.as_object()?.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_in_id_time_source_and_defaults() {
        let ev = Event::from_input(json!({"name": "deals.DealClick", "source": "x"}), "http").unwrap();
        assert_eq!(ev.name, "deals.DealClick");
        assert_eq!(ev.source, "http");
        assert_eq!(ev.id.len(), 26, "a ULID");
        assert!(ev.time.ends_with('Z'));
        assert_eq!(ev.data, json!({}));
        assert!(ev.meta.is_empty());
        let json: Value = serde_json::from_slice(&ev.to_json()).unwrap();
        assert!(json.get("version").is_none());
    }

    #[test]
    fn ids_are_sortable_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn keeps_producer_fields() {
        let ev = Event::from_input(
            json!({"id": "e1", "name": "a.B", "version": 1.2, "time": "2026-11-26T10:00:00+01:00",
                   "meta": {"host": "web-3"}, "data": [1, 2]}),
            "http",
        )
        .unwrap();
        assert_eq!(ev.id, "e1");
        assert_eq!(ev.version.as_deref(), Some("1.2"));
        assert_eq!(ev.time, "2026-11-26T10:00:00+01:00");
        assert_eq!(ev.meta["host"], "web-3");
        assert_eq!(ev.data, json!([1, 2]));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |v: Value| Event::from_input(v, "http").unwrap_err().to_string();
        assert_eq!(err(json!([])), "an event must be a JSON object, got an array");
        assert_eq!(err(json!({"data": {}})), "missing \"name\"");
        assert_eq!(err(json!({"name": 5})), "\"name\" must be a string, got a number");
        assert_eq!(err(json!({"name": ""})), "\"name\" must not be empty");
        assert!(err(json!({"name": "a b"})).starts_with("\"name\" must not contain ' '"));
        assert_eq!(
            err(json!({"name": "a", "meta": 1})),
            "\"meta\" must be an object, got a number"
        );
        assert_eq!(
            err(json!({"name": "a", "time": "yesterday"})),
            "\"time\" must be an RFC 3339 time, got \"yesterday\""
        );
        assert!(err(json!({"name": "a", "nmae": 1})).starts_with("unknown field \"nmae\""));
    }

    #[test]
    fn cloudevents_structured() {
        let ev = Event::from_input(
            json!({"specversion": "1.0", "type": "com.example.Order", "source": "/shop", "id": "c1",
                   "subject": "o-7", "dataschema": "https://example.com/s", "traceparent": "00-ab",
                   "datacontenttype": "application/json", "data": {"n": 1}}),
            "http",
        )
        .unwrap();
        assert_eq!(ev.name, "com.example.Order");
        assert_eq!(ev.id, "c1");
        assert_eq!(ev.source, "http");
        assert_eq!(ev.meta["ce_source"], "/shop");
        assert_eq!(ev.meta["ce_subject"], "o-7");
        assert_eq!(ev.meta["dataschema"], "https://example.com/s");
        assert_eq!(ev.meta["traceparent"], "00-ab");
        assert_eq!(ev.data, json!({"n": 1}));
        let err = Event::from_input(json!({"specversion": "0.3", "type": "a"}), "http").unwrap_err();
        assert_eq!(err.to_string(), "\"specversion\" must be \"1.0\", got \"0.3\"");
        let err = Event::from_input(json!({"specversion": "1.0"}), "http").unwrap_err();
        assert_eq!(err.to_string(), "missing \"type\"");
    }
}
