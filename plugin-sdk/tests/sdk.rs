//! Native tests of the SDK, through `switchyard_sdk::testing`.

use serde::Deserialize;
use switchyard_sdk::testing::invoke;
use switchyard_sdk::{
    config, config_as, debug, emit, fail, handler, info, json, Emit, EmitError, Error, Event, Level, Value,
};

const PING: &str = r#"{"id":"01J","name":"app.Ping","version":"1.2","source":"http",
    "time":"2026-11-26T10:00:00Z","meta":{"host":"web-3"},"data":{"n":7},"extra":true}"#;

#[handler]
fn echo(ev: Event) -> Result<(), Error> {
    info!("got {} from {}", ev.name, ev.source);
    emit("app.Echo", &ev.data)?;
    Ok(())
}

#[test]
fn handler_sees_every_envelope_field() {
    let ev = Event::from_json(PING.as_bytes()).unwrap();
    assert_eq!(ev.id, "01J");
    assert_eq!(ev.name, "app.Ping");
    assert_eq!(ev.version.as_deref(), Some("1.2"));
    assert_eq!(ev.source, "http");
    assert_eq!(ev.time, "2026-11-26T10:00:00Z");
    assert_eq!(ev.meta_str("host"), Some("web-3"));
    assert_eq!(ev.data, json!({"n": 7}));
    assert_eq!(Event::from_value(ev.to_value()).unwrap(), ev);
}

#[test]
fn handler_runs_and_its_effects_are_recorded() {
    let out = invoke(echo, json!({}), PING);
    assert!(out.ok(), "{:?}", out);
    assert_eq!(out.emits, vec![json!({"name": "app.Echo", "data": {"n": 7}})]);
    assert_eq!(
        out.logs,
        vec![(Level::Info, "got app.Ping from http".to_string())]
    );
    assert_eq!(out.failure, None);
}

#[test]
fn missing_optional_fields_get_defaults() {
    let ev = Event::from_json(br#"{"name":"a.B"}"#).unwrap();
    assert_eq!(ev.version, None);
    assert_eq!(ev.data, json!({}));
    assert!(ev.meta.is_empty());
}

#[test]
fn malformed_events_fail_with_a_message_before_the_handler() {
    for (input, why) in [
        ("", "malformed event JSON"),
        ("{\"name\":", "malformed event JSON"),
        ("[1]", "not a JSON object"),
        ("{}", "no \"name\""),
        ("{\"name\":\"\"}", "no \"name\""),
        ("{\"name\":1}", "\"name\" is not a string"),
        ("{\"name\":\"a\",\"meta\":[]}", "\"meta\" is not an object"),
        ("{\"name\":\"a\",\"id\":{}}", "\"id\" is not a string"),
    ] {
        let out = invoke(
            |_: Event| -> Result<(), Error> { panic!("handler ran") },
            json!({}),
            input,
        );
        assert_eq!(out.status, 1);
        let failure = out.failure.unwrap();
        assert!(failure.contains(why), "{:?}: {}", input, failure);
    }
}

#[derive(Deserialize, Debug, PartialEq)]
struct Settings {
    channel: String,
}

#[handler]
fn configured(_ev: Event) -> Result<(), Error> {
    let settings: Settings = config_as()?;
    debug!("config {}", config());
    if settings.channel == "none" {
        fail!("channel {:?} is off", settings.channel);
    }
    Emit::new("app.Sent")
        .meta(json!({"channel": settings.channel}))
        .version("2.0")
        .send()?;
    Ok(())
}

#[test]
fn config_is_read_typed_and_untyped() {
    let out = invoke(configured, json!({"channel": "email"}), PING);
    assert!(out.ok(), "{:?}", out);
    assert_eq!(
        out.emits,
        vec![json!({"name": "app.Sent", "data": {}, "meta": {"channel": "email"}, "version": "2.0"})]
    );
    assert_eq!(
        out.logs[0],
        (Level::Debug, r#"config {"channel":"email"}"#.to_string())
    );
}

#[test]
fn errors_become_the_failure_message() {
    let out = invoke(configured, json!({"channel": "none"}), PING);
    assert_eq!(out.status, 1);
    assert_eq!(out.failure.as_deref(), Some(r#"channel "none" is off"#));
    assert!(out.emits.is_empty());

    let out = invoke(configured, json!({"chanel": "typo"}), PING);
    assert_eq!(out.status, 1);
    let failure = out.failure.unwrap();
    assert!(
        failure.starts_with("bad plugin config: missing field `channel`"),
        "{}",
        failure
    );
}

#[test]
fn data_as_names_the_event_on_mismatch() {
    #[derive(Deserialize, Debug)]
    struct Wanted {
        #[allow(dead_code)]
        user_id: u64,
    }
    let ev = Event::new("app.Ping", json!({"user_id": "x"}));
    let err = ev.data_as::<Wanted>().unwrap_err();
    assert!(
        err.message()
            .starts_with("app.Ping: unexpected data: invalid type"),
        "{}",
        err
    );
}

#[test]
fn any_display_error_type_can_be_returned() {
    let out = invoke(
        |ev: Event| -> Result<(), String> { Err(format!("no {}", ev.name)) },
        json!({}),
        PING,
    );
    assert_eq!(out.failure.as_deref(), Some("no app.Ping"));
}

#[test]
fn emit_codes_map_to_errors() {
    assert_eq!(EmitError::from_code(0), None);
    assert_eq!(EmitError::from_code(-1), Some(EmitError::Malformed));
    assert_eq!(EmitError::from_code(-2), Some(EmitError::TooMany));
    assert_eq!(EmitError::from_code(-3), Some(EmitError::TooLarge));
    assert_eq!(EmitError::from_code(-9), Some(EmitError::Refused(-9)));
    let err: Error = EmitError::TooMany.into();
    assert_eq!(err.message(), "emit refused: too many events (-2)");
}

#[test]
fn emit_encoding_errors_are_reported_not_sent() {
    let meta = Emit::new("a.B").meta(json!([1])).send();
    assert_eq!(meta, Err(EmitError::Encode("meta: not a JSON object".into())));
    let mut bad_keys = std::collections::BTreeMap::new();
    bad_keys.insert(vec![1u8], 1);
    let data = Emit::new("a.B").data(bad_keys).to_json();
    assert!(matches!(data, Err(EmitError::Encode(m)) if m.starts_with("data: ")));
}

#[test]
fn values_are_reexported() {
    let v: Value = json!({"a": 1});
    assert_eq!(v["a"], 1);
}
