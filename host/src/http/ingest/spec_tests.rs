//! The examples of the CloudEvents HTTP protocol binding 1.0.2 and JSON event
//! format 1.0.2, and each of their normative rules, on ingest (issue 17,
//! item 3). Where the spec elides a value ("... base64 encoded string ...",
//! "... application data ..."), a concrete one stands in.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::StatusCode;
use serde_json::{json, Value};

use super::{events, IngestError};
use crate::event::Event;

/// The attribute rules of the core spec and the JSON format, one by one.
mod rules;

fn request(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn one(h: &HeaderMap, body: &[u8]) -> Event {
    let mut evs = events(h, body).unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(evs.len(), 1);
    evs.remove(0)
}

fn refused(h: &HeaderMap, body: &[u8]) -> IngestError {
    events(h, body).unwrap_err()
}

const STRUCTURED: &str = "application/cloudevents+json; charset=utf-8";

fn structured(v: Value) -> Event {
    one(
        &request(&[("content-type", STRUCTURED)]),
        v.to_string().as_bytes(),
    )
}

fn structured_err(v: Value) -> String {
    refused(
        &request(&[("content-type", STRUCTURED)]),
        v.to_string().as_bytes(),
    )
    .message
}

/// The headers of the JSON format's examples re-encoded in binary mode.
fn example_headers(id: &str, content_type: &str) -> HeaderMap {
    request(&[
        ("ce-specversion", "1.0"),
        ("ce-type", "com.example.someevent"),
        ("ce-source", "/mycontext"),
        ("ce-id", id),
        ("ce-time", "2018-04-05T17:31:00Z"),
        ("ce-comexampleextension1", "value"),
        ("ce-comexampleothervalue", "5"),
        ("content-type", content_type),
    ])
}

/// A structured event and its binary re-encoding are the same event (the
/// integer extension is a string in headers: they carry no types).
fn assert_same(structured: &Event, binary: &Event) {
    assert_eq!(structured.name, binary.name);
    assert_eq!(structured.id, binary.id);
    assert_eq!(structured.time, binary.time);
    assert_eq!(structured.data, binary.data);
    let mut meta = structured.meta.clone();
    meta.insert("comexampleothervalue".into(), json!("5"));
    assert_eq!(meta, binary.meta);
}

#[test]
fn http_binding_binary_example() {
    let h = request(&[
        ("ce-specversion", "1.0"),
        ("ce-type", "com.example.someevent"),
        ("ce-time", "2018-04-05T03:56:24Z"),
        ("ce-id", "1234-1234-1234"),
        ("ce-source", "/mycontext/subcontext"),
        ("content-type", "application/json; charset=utf-8"),
    ]);
    let e = one(&h, br#"{"app": "data"}"#);
    assert_eq!(e.name, "com.example.someevent");
    assert_eq!(e.id, "1234-1234-1234");
    assert_eq!(e.time, "2018-04-05T03:56:24Z");
    assert_eq!(e.meta["ce_source"], "/mycontext/subcontext");
    assert_eq!(e.meta["ce_datacontenttype"], "application/json; charset=utf-8");
    assert_eq!(e.data, json!({"app": "data"}));
}

#[test]
fn http_binding_header_names_are_case_insensitive() {
    let h = request(&[
        ("CE-SpecVersion", "1.0"),
        ("Ce-Type", "a.B"),
        ("CE-ID", "1"),
        ("ce-Source", "/s"),
    ]);
    assert_eq!(one(&h, b"").name, "a.B");
    // An empty body is no data: JSON null, whatever the Content-Type.
    assert_eq!(one(&h, b"").data, serde_json::Value::Null);
    let mut text = h.clone();
    text.insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(one(&text, b"").data, serde_json::Value::Null);
}

#[test]
fn http_binding_percent_encoding_example_and_rules() {
    let with = |value: &str| {
        request(&[
            ("ce-specversion", "1.0"),
            ("ce-type", "a.B"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-subject", value),
        ])
    };
    let subject = |value: &str| one(&with(value), b"").meta["ce_subject"].clone();
    assert_eq!(
        subject("Euro%20%E2%82%AC%20%F0%9F%98%80"),
        "Euro \u{20ac} \u{1f600}"
    );
    assert_eq!(subject("euro%e2%82%ac"), "euro\u{20ac}", "lower-case hex decodes");
    assert_eq!(subject("%41%42c"), "ABc", "unnecessary encoding is accepted");
    // Older senders quoted instead of encoding: quoted strings are undone first.
    assert_eq!(subject(r#""two words""#), "two words");
    assert_eq!(subject(r#"a"\"q\""b"#), "a\"q\"b");
    assert_eq!(subject(r#""100%25""#), "100%");
    for (bad, why) in [
        ("%C0%A0", "not UTF-8"),
        ("%FF", "not UTF-8"),
        ("%G1", "%HH escape"),
        ("50%", "%HH escape"),
        ("\"open", "unterminated quoted string"),
        ("%0A", "must not contain the character '\\n'"),
    ] {
        let e = refused(&with(bad), b"");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains(why), "{bad}: {}", e.message);
        assert!(e.message.contains("subject"), "{bad}: {}", e.message);
    }
    let mut h = with("x");
    h.insert("ce-subject", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    let e = refused(&h, b"");
    assert!(
        e.message
            .contains("header ce-subject: byte 0xc3 is not printable ASCII"),
        "{}",
        e.message
    );
}

#[test]
fn http_binding_binary_header_rules() {
    let base = [
        ("ce-specversion", "1.0"),
        ("ce-type", "a.B"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
    ];
    let with = |extra: (&str, &str)| {
        let mut all = base.to_vec();
        all.push(extra);
        request(&all)
    };
    let e = refused(&with(("ce-datacontenttype", "application/json")), b"{}");
    assert!(
        e.message.starts_with("header ce-datacontenttype:"),
        "{}",
        e.message
    );
    let e = refused(&with(("ce-my-ext", "x")), b"");
    assert!(
        e.message
            .contains("\"my-ext\" is not a CloudEvents attribute name"),
        "{}",
        e.message
    );
    let e = refused(&with(("ce-id", "2")), b"");
    assert_eq!(e.message, "header ce-id is given more than once");
    let e = refused(&with(("ce-data", "x")), b"");
    assert!(
        e.message
            .starts_with("header ce-data: in binary mode the body is the data"),
        "{}",
        e.message
    );
    // Missing required attributes name their header.
    for missing in ["ce-type", "ce-id", "ce-source"] {
        let h = request(
            &base
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            refused(&h, b"").message,
            format!("binary CloudEvent: missing header {missing}")
        );
    }
    // ce-* headers without ce-specversion are not silently ignored.
    let h = request(&[("content-type", "application/json"), ("ce-type", "a.B")]);
    let e = refused(&h, br#"{"name":"a.B"}"#);
    assert!(
        e.message.starts_with("header ce-type without ce-specversion"),
        "{}",
        e.message
    );
    // Binary JSON data that does not parse is refused, naming it.
    let json = with(("content-type", "application/vnd.x+json"));
    assert!(refused(&json, b"{oops")
        .message
        .starts_with("CloudEvent data: invalid JSON"));
}

#[test]
fn content_type_decides_the_mode_even_with_ce_headers() {
    // The bug of issue 17: a structured event also carrying ce-* headers.
    let body = json!({"specversion": "1.0", "type": "com.example.someevent", "source": "/s",
                      "id": "s1", "data": {"k": 1}});
    let h = request(&[
        ("content-type", STRUCTURED),
        ("ce-specversion", "1.0"),
        ("ce-type", "other.Type"),
        ("ce-id", "h1"),
        ("ce-source", "/h"),
    ]);
    let e = one(&h, body.to_string().as_bytes());
    assert_eq!((e.name.as_str(), e.id.as_str()), ("com.example.someevent", "s1"));
    assert_eq!(e.data, json!({"k": 1}));
    // And a batch with such headers stays a batch.
    let mut h = h;
    h.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents-batch+json"),
    );
    let batch = json!([body, {"specversion": "1.0", "type": "b.B", "source": "/s", "id": "s2"}]);
    let evs = events(&h, batch.to_string().as_bytes()).unwrap();
    assert_eq!(
        evs.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    // Event formats not read here are 415, not taken as binary.
    for ct in [
        "application/cloudevents+avro",
        "application/cloudevents-batch+protobuf",
    ] {
        let e = refused(&request(&[("content-type", ct), ("ce-specversion", "1.0")]), b"x");
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert!(e.message.contains(ct), "{}", e.message);
    }
}

#[test]
fn http_binding_structured_and_batched_examples() {
    let e = structured(json!({"specversion": "1.0", "type": "com.example.someevent",
                              "source": "/s", "id": "1", "data": {"app": 1}}));
    assert_eq!(e.data, json!({"app": 1}));
    let h = request(&[(
        "content-type",
        "application/cloudevents-batch+json; charset=utf-8",
    )]);
    let batch = json!([
        {"specversion": "1.0", "type": "com.example.someevent", "source": "/s", "id": "1", "data": {}},
        {"specversion": "1.0", "type": "com.example.someotherevent", "source": "/s", "id": "2", "data": {}}
    ]);
    let evs = events(&h, batch.to_string().as_bytes()).unwrap();
    assert_eq!(evs[1].name, "com.example.someotherevent");
    assert!(events(&h, b"[]").unwrap().is_empty(), "the batch MAY be empty");
}

#[test]
fn json_format_binary_data_example() {
    let s = structured(json!({
        "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
        "id": "A234-1234-1234", "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value", "comexampleothervalue": 5,
        "datacontenttype": "application/vnd.apache.thrift.binary",
        "data_base64": "gAEAAQ=="
    }));
    assert_eq!(s.data, json!("gAEAAQ=="));
    assert_eq!(s.meta["ce_data_base64"], true);
    assert_eq!(s.meta["comexampleothervalue"], 5);
    let b = one(
        &example_headers("A234-1234-1234", "application/vnd.apache.thrift.binary"),
        &[0x80, 0x01, 0x00, 0x01],
    );
    assert_same(&s, &b);
}

#[test]
fn json_format_xml_string_data_example() {
    let s = structured(json!({
        "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
        "id": "B234-1234-1234", "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value", "comexampleothervalue": 5,
        "unsetextension": null,
        "datacontenttype": "application/xml", "data": "<much wow=\"xml\"/>"
    }));
    assert_eq!(s.data, json!("<much wow=\"xml\"/>"));
    assert!(!s.meta.contains_key("unsetextension"), "null is unset");
    let b = one(
        &example_headers("B234-1234-1234", "application/xml"),
        br#"<much wow="xml"/>"#,
    );
    assert_same(&s, &b);
}

#[test]
fn json_format_json_object_data_example() {
    let data = json!({"appinfoA": "abc", "appinfoB": 123, "appinfoC": true});
    let s = structured(json!({
        "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
        "subject": null, "id": "C234-1234-1234", "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value", "comexampleothervalue": 5,
        "datacontenttype": "application/json", "data": data
    }));
    assert!(!s.meta.contains_key("ce_subject"));
    let b = one(
        &example_headers("C234-1234-1234", "application/json"),
        b"{\n  \"appinfoA\" : \"abc\",\n  \"appinfoB\" : 123,\n  \"appinfoC\" : true\n}",
    );
    assert_same(&s, &b);
}

#[test]
fn json_format_string_data_without_content_type_example() {
    let mut s = structured(json!({
        "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
        "subject": null, "id": "D234-1234-1234", "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value", "comexampleothervalue": 5,
        "data": "I'm just a string"
    }));
    assert_eq!(
        s.data,
        json!("I'm just a string"),
        "a JSON string, not parsed further"
    );
    let b = one(
        &example_headers("D234-1234-1234", "application/json"),
        br#""I'm just a string""#,
    );
    // Binary mode states the implied application/json explicitly.
    s.meta
        .insert("ce_datacontenttype".into(), json!("application/json"));
    assert_same(&s, &b);
    // Without the quotes it is not application/json: refused.
    let e = refused(&example_headers("D", "application/json"), b"I'm just a string");
    assert!(
        e.message.starts_with("CloudEvent data: invalid JSON"),
        "{}",
        e.message
    );
}

#[test]
fn json_batch_format_example() {
    let h = request(&[("content-type", "application/cloudevents-batch+json")]);
    let batch = json!([
        {"specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext/4",
         "id": "B234-1234-1234", "time": "2018-04-05T17:31:00Z",
         "comexampleextension1": "value", "comexampleothervalue": 5,
         "datacontenttype": "application/vnd.apache.thrift.binary", "data_base64": "gAEAAQ=="},
        {"specversion": "1.0", "type": "com.example.someotherevent", "source": "/mycontext/9",
         "id": "C234-1234-1234", "time": "2018-04-05T17:31:05Z",
         "comexampleextension1": "value", "comexampleothervalue": 5,
         "datacontenttype": "application/json",
         "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": true}}
    ]);
    let evs = events(&h, batch.to_string().as_bytes()).unwrap();
    assert_eq!(evs[0].meta["ce_source"], "/mycontext/4");
    assert_eq!(evs[1].data["appinfoB"], 123);
    let e = refused(&h, br#"{"specversion":"1.0"}"#);
    assert_eq!(
        e.message,
        "a CloudEvents batch must be a JSON array, got an object"
    );
}
