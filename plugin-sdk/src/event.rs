use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;

/// One event envelope, as the host passes it to `switchyard_handle`.
///
/// `meta` is the facility layer (who, where, the causation trail), `data`
/// the application payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Sortable unique id (ULID), assigned on ingest.
    pub id: String,
    /// Dotted event name, `app.EventName`.
    pub name: String,
    /// Schema version of `data`, when the producer gave one.
    pub version: Option<String>,
    /// How the event entered the router: `http`, `tail:<path>`, `plugin:<name>`.
    pub source: String,
    /// RFC 3339 timestamp.
    pub time: String,
    /// Metadata about the event.
    pub meta: Map<String, Value>,
    /// The payload (`{}` when the producer sent none).
    pub data: Value,
}

impl Event {
    /// An event with this name and payload and empty other fields, for tests.
    pub fn new(name: impl Into<String>, data: Value) -> Event {
        Event {
            id: String::new(),
            name: name.into(),
            version: None,
            source: String::new(),
            time: String::new(),
            meta: Map::new(),
            data,
        }
    }

    /// Parses an envelope from JSON text. Unknown fields are ignored; `name`
    /// is required; the other fields default to empty when absent.
    pub fn from_json(json: &[u8]) -> Result<Event, Error> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| Error::new(format!("malformed event JSON: {}", e)))?;
        Event::from_value(value)
    }

    /// Builds an envelope from a parsed JSON value; see [`Event::from_json`].
    pub fn from_value(value: Value) -> Result<Event, Error> {
        let mut object = match value {
            Value::Object(object) => object,
            _ => return Err(Error::new("malformed event: not a JSON object")),
        };
        let name = match take_string(&mut object, "name")? {
            Some(name) if !name.is_empty() => name,
            _ => return Err(Error::new("malformed event: no \"name\"")),
        };
        let meta = match object.remove("meta") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(meta)) => meta,
            Some(_) => return Err(Error::new("malformed event: \"meta\" is not an object")),
        };
        Ok(Event {
            id: take_string(&mut object, "id")?.unwrap_or_default(),
            version: take_string(&mut object, "version")?,
            source: take_string(&mut object, "source")?.unwrap_or_default(),
            time: take_string(&mut object, "time")?.unwrap_or_default(),
            data: object.remove("data").unwrap_or_else(|| Value::Object(Map::new())),
            meta,
            name,
        })
    }

    /// The payload as a typed value, e.g. a `#[derive(Deserialize)]` struct.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.data).map_err(|e| Error::new(format!("{}: unexpected data: {}", self.name, e)))
    }

    /// A `meta` entry, if it is a string.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(Value::as_str)
    }

    /// The envelope as JSON, in the form the host passes it.
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), Value::String(self.id.clone()));
        object.insert("name".into(), Value::String(self.name.clone()));
        if let Some(version) = &self.version {
            object.insert("version".into(), Value::String(version.clone()));
        }
        object.insert("source".into(), Value::String(self.source.clone()));
        object.insert("time".into(), Value::String(self.time.clone()));
        object.insert("meta".into(), Value::Object(self.meta.clone()));
        object.insert("data".into(), self.data.clone());
        Value::Object(object)
    }
}

/// Removes `key`: a string, or absent / null.
fn take_string(object: &mut Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::new(format!(
            "malformed event: \"{}\" is not a string",
            key
        ))),
    }
}
