use serde::Serialize;
use serde_json::{Map, Value};

use crate::EmitError;

/// Emits a new event `name` with payload `data` (anything `Serialize`).
///
/// The host routes it once this invocation succeeds (emits of a failed
/// invocation are discarded), with `source = "plugin:<this plugin>"` and the
/// causation trail (`parent_id`, `root_id`, `hops`, `trail`) in its `meta`.
/// Use [`Emit`] to also set `meta` or `version`.
pub fn emit(name: &str, data: impl Serialize) -> Result<(), EmitError> {
    Emit::new(name).data(data).send()
}

/// An event to emit, with optional `meta` and `version`.
///
/// ```
/// # use switchyard_sdk::{Emit, json};
/// # fn main() -> Result<(), switchyard_sdk::EmitError> {
/// Emit::new("deals.Notified")
///     .data(json!({"deal_id": 7}))
///     .meta(json!({"channel": "email"}))
///     .version("1.0")
///     .send()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Emit {
    name: String,
    data: Value,
    meta: Option<Value>,
    version: Option<String>,
    error: Option<String>,
}

impl Emit {
    /// An event named `name`, with `data` `{}`.
    pub fn new(name: impl Into<String>) -> Emit {
        Emit {
            name: name.into(),
            data: Value::Object(Map::new()),
            meta: None,
            version: None,
            error: None,
        }
    }

    /// Sets the payload.
    pub fn data(mut self, data: impl Serialize) -> Emit {
        match serde_json::to_value(data) {
            Ok(value) => self.data = value,
            Err(e) => self.note(format!("data: {}", e)),
        }
        self
    }

    /// Sets `meta`, which must serialize to a JSON object. The host's
    /// causation keys overwrite any of the same name.
    pub fn meta(mut self, meta: impl Serialize) -> Emit {
        match serde_json::to_value(meta) {
            Ok(value @ Value::Object(_)) => self.meta = Some(value),
            Ok(_) => self.note("meta: not a JSON object".to_string()),
            Err(e) => self.note(format!("meta: {}", e)),
        }
        self
    }

    /// Sets the schema version of the payload.
    pub fn version(mut self, version: impl Into<String>) -> Emit {
        self.version = Some(version.into());
        self
    }

    /// The JSON object passed to the host's `emit`.
    pub fn to_json(&self) -> Result<Vec<u8>, EmitError> {
        if let Some(error) = &self.error {
            return Err(EmitError::Encode(error.clone()));
        }
        let mut object = Map::new();
        object.insert("name".into(), Value::String(self.name.clone()));
        object.insert("data".into(), self.data.clone());
        if let Some(meta) = &self.meta {
            object.insert("meta".into(), meta.clone());
        }
        if let Some(version) = &self.version {
            object.insert("version".into(), Value::String(version.clone()));
        }
        serde_json::to_vec(&Value::Object(object)).map_err(|e| EmitError::Encode(e.to_string()))
    }

    /// Hands the event to the host.
    pub fn send(self) -> Result<(), EmitError> {
        let json = self.to_json()?;
        match EmitError::from_code(crate::host::emit(&json)) {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    fn note(&mut self, error: String) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}
