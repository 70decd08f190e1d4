use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;

thread_local! {
    static CONFIG: RefCell<Value> = RefCell::new(Value::Object(Map::new()));
}

/// The plugin's `config` table from `router.toml`, as JSON (`{}` when there
/// is none). The host passes it to `switchyard_init` before the first event.
pub fn config() -> Value {
    CONFIG.with(|config| config.borrow().clone())
}

/// The plugin's config as a typed value, e.g. a `#[derive(Deserialize)]`
/// struct. The error names what is wrong, so returning it from the handler
/// makes a clear failure message.
pub fn config_as<T: DeserializeOwned>() -> Result<T, Error> {
    CONFIG.with(|config| {
        T::deserialize(&*config.borrow()).map_err(|e| Error::new(format!("bad plugin config: {}", e)))
    })
}

pub(crate) fn set(config: Value) {
    CONFIG.with(|slot| *slot.borrow_mut() = config);
}
