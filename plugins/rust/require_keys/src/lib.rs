//! `require_keys`: eventlib's `require_data_keys`. Fails events whose `data`
//! lacks any of the configured keys, naming the missing ones; passes the
//! others untouched.
//!
//! Config (router.toml):
//!
//! ```toml
//! [plugin.require_keys]
//! config = { required = ["deal_id", "user_id"] }
//! ```

use serde::Deserialize;
use switchyard_sdk::{config_as, debug, handler, Error, Event};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    required: Vec<String>,
}

#[handler]
fn handle(ev: Event) -> Result<(), Error> {
    let config: Config = config_as()?;
    let data = match ev.data.as_object() {
        Some(data) => data,
        None if config.required.is_empty() => return Ok(()),
        None => {
            return Err(Error::new(format!(
                "{} {}: data is not an object, required keys: {}",
                ev.name,
                ev.id,
                config.required.join(", ")
            )))
        }
    };
    let missing: Vec<&str> = config
        .required
        .iter()
        .filter(|key| !data.contains_key(key.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::new(format!(
            "{} {}: missing required data keys: {}",
            ev.name,
            ev.id,
            missing.join(", ")
        )));
    }
    debug!(
        "{} {}: all {} required keys present",
        ev.name,
        ev.id,
        config.required.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::{json, testing::invoke, Level};

    fn run(data: &str) -> switchyard_sdk::testing::Outcome {
        let event = format!(r#"{{"id":"01J","name":"deals.DealClick","data":{}}}"#, data);
        invoke(handle, json!({"required": ["deal_id", "user_id"]}), &event)
    }

    #[test]
    fn passes_when_every_key_is_there() {
        let out = run(r#"{"deal_id":7,"user_id":null,"extra":1}"#);
        assert!(out.ok(), "{:?}", out);
        assert_eq!(out.logs[0].0, Level::Debug);
    }

    #[test]
    fn names_the_missing_keys() {
        let out = run(r#"{"deal_id":7}"#);
        assert_eq!(
            out.failure.as_deref(),
            Some("deals.DealClick 01J: missing required data keys: user_id")
        );
        let out = run("[1,2]");
        assert_eq!(
            out.failure.as_deref(),
            Some("deals.DealClick 01J: data is not an object, required keys: deal_id, user_id")
        );
    }

    #[test]
    fn refuses_a_bad_config() {
        let out = invoke(handle, json!({"required": "deal_id"}), r#"{"name":"a.B"}"#);
        assert!(out
            .failure
            .unwrap()
            .starts_with("bad plugin config: invalid type"));
    }
}
