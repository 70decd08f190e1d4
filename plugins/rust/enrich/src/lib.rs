//! `enrich`: re-emits each event with nameko-style dispatch metadata, as
//! nameko-eventlog-dispatcher adds to every event it dispatches.
//!
//! Config (router.toml):
//!
//! ```toml
//! [plugin.enrich]
//! config = { service = "deals-api", emit = "{name}.Enriched" }
//! ```
//!
//! - `service` (required): the service name recorded in `meta.service_name`.
//! - `emit` (optional, default `"{name}.Enriched"`): the name of the emitted
//!   event; `{name}` is replaced by the name of the incoming event.
//!
//! The emitted event keeps the incoming `data`, `version` and `meta`, and adds
//! to `meta`: `service_name`, `event_type` (the incoming name), `call_id`
//! (`<service>.<event name>.<event id>`), `call_stack` (the incoming
//! `call_stack` plus this `call_id`), `event_time` (the incoming `time`) and
//! `timestamp` (now, UTC). The host adds its own causation trail (`parent_id`,
//! `root_id`, `hops`, `trail`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use switchyard_sdk::{config_as, debug, handler, Emit, Error, Event, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    service: String,
    #[serde(default = "default_emit")]
    emit: String,
}

fn default_emit() -> String {
    "{name}.Enriched".to_string()
}

#[handler]
fn handle(ev: Event) -> Result<(), Error> {
    let config: Config = config_as()?;
    if config.service.is_empty() {
        return Err(Error::new("bad plugin config: `service` is empty"));
    }
    let name = config.emit.replace("{name}", &ev.name);
    let call_id = format!("{}.{}.{}", config.service, ev.name, ev.id);

    let mut meta = ev.meta;
    let mut call_stack = match meta.remove("call_stack") {
        Some(Value::Array(stack)) => stack,
        _ => Vec::new(),
    };
    call_stack.push(Value::String(call_id.clone()));
    meta.insert("service_name".into(), Value::String(config.service));
    meta.insert("event_type".into(), Value::String(ev.name));
    meta.insert("call_id".into(), Value::String(call_id.clone()));
    meta.insert("call_stack".into(), Value::Array(call_stack));
    meta.insert("event_time".into(), Value::String(ev.time));
    meta.insert("timestamp".into(), Value::String(now_rfc3339()));

    let mut out = Emit::new(name.as_str()).data(ev.data).meta(meta);
    if let Some(version) = ev.version {
        out = out.version(version);
    }
    out.send().map_err(|e| Error::new(format!("{}: {}", name, e)))?;
    debug!("enriched {} as {}", call_id, name);
    Ok(())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (WASI clocks work).
fn now_rfc3339() -> String {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::{json, testing::invoke};

    const CLICK: &str = r#"{"id":"01JDX8","name":"deals.DealClick","version":"1.2",
        "source":"http","time":"2026-11-26T10:00:00.123Z",
        "meta":{"host":"web-3","call_stack":["web.click.1"]},"data":{"deal_id":7}}"#;

    #[test]
    fn re_emits_with_dispatch_metadata() {
        let out = invoke(handle, json!({"service": "deals-api"}), CLICK);
        assert!(out.ok(), "{:?}", out);
        let emitted = &out.emits[0];
        assert_eq!(emitted["name"], "deals.DealClick.Enriched");
        assert_eq!(emitted["version"], "1.2");
        assert_eq!(emitted["data"], json!({"deal_id": 7}));
        let meta = &emitted["meta"];
        assert_eq!(meta["host"], "web-3");
        assert_eq!(meta["service_name"], "deals-api");
        assert_eq!(meta["event_type"], "deals.DealClick");
        assert_eq!(meta["call_id"], "deals-api.deals.DealClick.01JDX8");
        assert_eq!(
            meta["call_stack"],
            json!(["web.click.1", "deals-api.deals.DealClick.01JDX8"])
        );
        assert_eq!(meta["event_time"], "2026-11-26T10:00:00.123Z");
        assert_eq!(meta["timestamp"].as_str().unwrap().len(), 24);
    }

    #[test]
    fn emitted_name_comes_from_config() {
        let config = json!({"service": "s", "emit": "audit.{name}"});
        let out = invoke(handle, config, CLICK);
        assert_eq!(out.emits[0]["name"], "audit.deals.DealClick");
    }

    #[test]
    fn config_without_service_fails_clearly() {
        let out = invoke(handle, json!({"emit": "x"}), CLICK);
        assert_eq!(out.status, 1);
        assert!(out.failure.unwrap().contains("missing field `service`"));
        assert!(out.emits.is_empty());
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
