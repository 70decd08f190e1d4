//! Turning a request body into events: JSON, JSON arrays, NDJSON,
//! CloudEvents (structured, batch, binary) and eventlib's form. Pure: no
//! I/O, every error names the entry at fault.

use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::{Map, Value};

mod binary;
mod form;

use crate::event::{self, Event};

/// A refusal to send back to the producer.
#[derive(Debug, PartialEq)]
pub struct IngestError {
    pub status: StatusCode,
    pub message: String,
}

pub(super) fn bad(message: impl Into<String>) -> IngestError {
    IngestError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

pub(super) const SOURCE: &str = "http";

const MEDIA_TYPES: &str = "application/json, application/x-ndjson, application/cloudevents+json, \
     application/cloudevents-batch+json, or a binary-mode CloudEvent (ce-* headers)";

/// The media type without parameters, lowercased; `None` when absent.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(CONTENT_TYPE).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

pub(super) fn parse_json(body: &[u8], what: &str) -> Result<Value, IngestError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("{what}: invalid JSON: {e}")))
}

/// The events of a `POST /v1/events` body. A batch is all or nothing.
///
/// Whether [`events`] reads this request as a binary-mode CloudEvent: a
/// `ce-specversion` header and a Content-Type that is not a CloudEvents format.
fn is_binary(headers: &HeaderMap) -> bool {
    headers.contains_key("ce-specversion")
        && !media_type(headers).is_some_and(|m| m.starts_with("application/cloudevents"))
}

/// [`events`], after bounding a binary-mode event (body and `ce-*` header
/// values together) by `max_body`: 413 past it.
pub fn events_within(headers: &HeaderMap, body: &[u8], max_body: u64) -> Result<Vec<Event>, IngestError> {
    if is_binary(headers) {
        binary::check_size(headers, body.len(), max_body)?;
    }
    events(headers, body)
}

/// The Content-Type decides the mode (CloudEvents HTTP binding 1.0.2, 3):
/// `application/cloudevents-batch…` is a batch and `application/cloudevents…`
/// one structured event (only their `+json` formats are read; others are
/// 415), whatever `ce-*` headers come along; any other type with a
/// `ce-specversion` header is a binary-mode event; otherwise the body is
/// envelopes (JSON, NDJSON). `ce-*` headers without `ce-specversion` are
/// refused rather than ignored (issue 17, item 3).
pub fn events(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Event>, IngestError> {
    let media = media_type(headers);
    let media = media.as_deref().unwrap_or("application/json");
    let unsupported = |what: &str| IngestError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: format!("unsupported {what} {media:?}: send {MEDIA_TYPES}"),
    };
    if media.starts_with("application/cloudevents") {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad("empty body: a structured CloudEvent or a batch is JSON"));
        }
        return match media {
            "application/cloudevents+json" => structured(parse_json(body, "body")?)
                .map(|e| vec![e])
                .map_err(bad),
            "application/cloudevents-batch+json" => match parse_json(body, "body")? {
                Value::Array(items) => batch(items, structured),
                other => Err(bad(format!(
                    "a CloudEvents batch must be a JSON array, got {}",
                    event::json_type(&other)
                ))),
            },
            _ => Err(unsupported("CloudEvents format")),
        };
    }
    if is_binary(headers) {
        return binary::event(headers, body).map(|e| vec![e]);
    }
    if let Some(name) = headers.keys().find(|k| k.as_str().starts_with("ce-")) {
        return Err(bad(format!(
            "header {name} without ce-specversion: a binary-mode CloudEvent carries ce-specversion; \
             a structured one is sent as application/cloudevents+json"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("empty body: send one event as a JSON object, or a batch"));
    }
    match media {
        "application/json" | "text/json" => match parse_json(body, "body")? {
            Value::Array(items) => batch(items, |v| Event::from_input(v, SOURCE)),
            one => Event::from_input(one, SOURCE)
                .map(|e| vec![e])
                .map_err(|e| bad(e.to_string())),
        },
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => ndjson(body),
        _ => Err(unsupported("media type")),
    }
}

fn batch<E: std::fmt::Display>(
    items: Vec<Value>,
    parse: impl Fn(Value) -> Result<Event, E>,
) -> Result<Vec<Event>, IngestError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse(v).map_err(|e| bad(format!("event [{i}]: {e}; the batch was refused"))))
        .collect()
}

fn ndjson(body: &[u8]) -> Result<Vec<Event>, IngestError> {
    let mut out = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let n = i + 1;
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| bad(format!("line {n}: invalid JSON: {e}; the batch was refused")))?;
        let ev =
            Event::from_input(v, SOURCE).map_err(|e| bad(format!("line {n}: {e}; the batch was refused")))?;
        out.push(ev);
    }
    Ok(out)
}

fn structured(v: Value) -> Result<Event, String> {
    match v {
        Value::Object(obj) => Event::from_cloudevent(obj, SOURCE).map_err(|e| e.to_string()),
        other => Err(format!(
            "a CloudEvent must be a JSON object, got {}",
            event::json_type(&other)
        )),
    }
}

/// eventlib's `POST /event/log?__event__=app.Name&k=v`: pairs from the query
/// string and a urlencoded body; `__event__` is the name, the rest is `data`.
pub fn eventlib(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Event, IngestError> {
    let mut pairs = form::pairs(query.unwrap_or("").as_bytes(), "query string")?;
    if !body.is_empty() {
        match media_type(headers).as_deref() {
            None | Some("application/x-www-form-urlencoded") => {
                pairs.extend(form::pairs(body, "body")?);
            }
            Some(other) => {
                return Err(IngestError {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    message: format!(
                        "unsupported media type {other:?} for /event/log: send \
                         application/x-www-form-urlencoded, or post JSON to /v1/events"
                    ),
                })
            }
        }
    }
    let mut name = None;
    let mut data = Map::new();
    for (k, v) in pairs {
        if k == "__event__" {
            name = Some(v);
        } else {
            data.insert(k, Value::String(v));
        }
    }
    let name = name.ok_or_else(|| {
        bad("missing __event__: the eventlib form is POST /event/log?__event__=app.EventName&key=value")
    })?;
    let mut obj = Map::new();
    obj.insert("name".into(), Value::String(name));
    obj.insert("data".into(), Value::Object(data));
    Event::from_input(Value::Object(obj), SOURCE).map_err(|e| bad(format!("__event__: {e}")))
}

#[cfg(test)]
mod spec_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ct(t: &str) -> HeaderMap {
        headers(&[("content-type", t)])
    }

    fn err(h: &HeaderMap, body: &str) -> IngestError {
        events(h, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn json_object_and_array() {
        let one = events(&ct("application/json; charset=utf-8"), br#"{"name":"a.B"}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].source, "http");
        let many = events(
            &HeaderMap::new(),
            br#"[{"name":"a.B"},{"name":"a.C","data":{"x":1}}]"#,
        )
        .unwrap();
        assert_eq!(
            many.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["a.B", "a.C"]
        );
        assert!(events(&HeaderMap::new(), b"[]").unwrap().is_empty());
    }

    #[test]
    fn batch_errors_name_the_entry() {
        let e = err(&ct("application/json"), r#"[{"name":"a"},{"nme":"b"}]"#);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.message, "event [1]: missing \"name\"; the batch was refused");
        let e = err(&ct("application/x-ndjson"), "{\"name\":\"a\"}\n\n{\"name\":\n");
        assert!(e.message.starts_with("line 3: invalid JSON: "), "{}", e.message);
        let e = err(
            &ct("application/x-ndjson"),
            "{\"name\":\"a\"}\r\n{\"name\":7}\r\n",
        );
        assert_eq!(
            e.message,
            "line 2: \"name\" must be a string, got a number; the batch was refused"
        );
    }

    /// Found by the `ingest_body` fuzz target (issue 17): a number with many
    /// digits parsed to a float that its own serialisation did not give back,
    /// so handlers and sinks saw another value than the router matched on.
    /// Every accepted event must read back from its JSON as it was.
    #[test]
    fn accepted_events_read_back_exactly_fuzz_regression() {
        // The crash input, then other floats that are hard to parse exactly.
        let crash = concat!(
            r#"[{"name":"Click","data":{"dealralue":5,"zzzzzeal_id":22222222222222222222444444444444"#,
            "44444444444444444444444444444444444444777774444444444444444444444444444444444444444444",
            r#"44444444444444227}}]"#
        );
        let others = r#"[{"name":"a.B","data":{"f":0.1,"g":1e-320,"h":-1.7976931348623157e308,"i":9007199254740993.0}}]"#;
        for body in [crash, others] {
            for ev in events(&ct("application/json"), body.as_bytes()).unwrap() {
                let back: Event = serde_json::from_slice(&ev.to_json()).unwrap();
                assert_eq!(back, ev);
            }
        }
    }

    #[test]
    fn ndjson_skips_blank_lines_and_crlf() {
        let evs = events(
            &ct("application/x-ndjson"),
            b"{\"name\":\"a\"}\r\n\r\n{\"name\":\"b\"}",
        )
        .unwrap();
        assert_eq!(evs.len(), 2);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            err(&ct("application/json"), " ").message,
            "empty body: send one event as a JSON object, or a batch"
        );
        let e = err(&ct("text/plain"), "hi");
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.message.starts_with("unsupported media type \"text/plain\""));
        assert!(err(&ct("application/json"), "{oops")
            .message
            .starts_with("body: invalid JSON: key must be a string at line 1 column 2"));
        assert_eq!(
            err(&ct("application/json"), "42").message,
            "an event must be a JSON object, got a number"
        );
    }

    #[test]
    fn cloudevents_structured_and_batch() {
        let e = events(
            &ct("application/cloudevents+json"),
            br#"{"specversion":"1.0","type":"shop.Order","source":"/s","id":"x1","data":{"n":1}}"#,
        )
        .unwrap();
        assert_eq!((e[0].name.as_str(), e[0].id.as_str()), ("shop.Order", "x1"));
        assert_eq!(e[0].meta["ce_source"], "/s");
        let e = err(&ct("application/cloudevents+json"), r#"{"type":"a"}"#);
        assert_eq!(e.message, "missing \"specversion\"");
        let b = events(
            &ct("application/cloudevents-batch+json"),
            br#"[{"specversion":"1.0","type":"a.A","source":"/s","id":"1"},{"specversion":"1.0","type":"a.B","source":"/s","id":"2"}]"#,
        )
        .unwrap();
        assert_eq!(b.len(), 2);
        let e = err(
            &ct("application/cloudevents-batch+json"),
            r#"[{"specversion":"1.0","type":"a.A","source":"/s","id":"1"},{"specversion":"1.0"}]"#,
        );
        assert_eq!(e.message, "event [1]: missing \"type\"; the batch was refused");
    }

    #[test]
    fn cloudevents_binary() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-type", "shop.Paid"),
            ("ce-id", "b1"),
            ("ce-source", "/pay"),
            ("ce-traceparent", "00-1"),
            ("content-type", "application/json"),
        ]);
        let e = events(&h, br#"{"amount":5}"#).unwrap();
        assert_eq!(e[0].name, "shop.Paid");
        assert_eq!(e[0].id, "b1");
        assert_eq!(e[0].data, json!({"amount": 5}));
        assert_eq!(e[0].meta["ce_source"], "/pay");
        assert_eq!(e[0].meta["traceparent"], "00-1");
        assert_eq!(e[0].meta["ce_datacontenttype"], "application/json");
        let base = [
            ("ce-specversion", "1.0"),
            ("ce-type", "t.T"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
        ];
        let with = |extra: &[(&'static str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            headers(&all)
        };
        let text = with(&[("content-type", "text/plain")]);
        assert_eq!(events(&text, b"hello").unwrap()[0].data, json!("hello"));
        let bin = with(&[("content-type", "application/octet-stream")]);
        let e = events(&bin, &[0xff, 0x00]).unwrap();
        assert_eq!(e[0].data, json!("/wA="));
        assert_eq!(e[0].meta["ce_data_base64"], true);
        let missing = headers(&[("ce-specversion", "1.0")]);
        assert_eq!(
            events(&missing, b"").unwrap_err().message,
            "binary CloudEvent: missing header ce-type"
        );
    }

    #[test]
    fn eventlib_form() {
        let e = eventlib(
            Some("__event__=deals.DealClick&deal_id=7&user=bo%20b"),
            &HeaderMap::new(),
            b"",
        )
        .unwrap();
        assert_eq!(e.name, "deals.DealClick");
        assert_eq!(e.data, json!({"deal_id": "7", "user": "bo b"}));
        let form = ct("application/x-www-form-urlencoded");
        let e = eventlib(None, &form, b"__event__=a.B&k=v").unwrap();
        assert_eq!((e.name.as_str(), e.data.clone()), ("a.B", json!({"k": "v"})));
        // Bytes that are not UTF-8 once decoded are refused, naming where.
        let form = ct("application/x-www-form-urlencoded");
        for (query, body, expect) in [
            (
                None,
                &b"__event__=a.B&%ff=%fe"[..],
                "/event/log body: the key of pair 2 is not UTF-8 once percent-decoded (\"%ff\")",
            ),
            (
                None,
                b"__event__=a.B&k=%fe",
                "/event/log body: the value of \"k\" is not UTF-8",
            ),
            (
                None,
                b"__event__=a.B&k=\xff",
                "/event/log body: the value of \"k\" is not UTF-8",
            ),
            (
                Some("__event__=a.B&%C3=1"),
                b"",
                "/event/log query string: the key of pair 2 is not UTF-8",
            ),
            (
                Some("__event__=a.B&k=%e2%82"),
                b"",
                "/event/log query string: the value of \"k\" is not UTF-8",
            ),
        ] {
            let e = eventlib(query, &form, body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with(expect), "{}", e.message);
        }
        let e = eventlib(Some("__event__=a.B&%E2%82%AC+x=caf%C3%A9&lone%"), &form, b"").unwrap();
        assert_eq!(e.data, json!({"€ x": "café", "lone%": ""}));
        let e = eventlib(Some("k=v"), &HeaderMap::new(), b"").unwrap_err();
        assert!(e.message.starts_with("missing __event__"));
        let e = eventlib(Some("__event__="), &HeaderMap::new(), b"").unwrap_err();
        assert_eq!(e.message, "__event__: \"name\" must not be empty");
        assert_eq!(
            eventlib(None, &ct("application/json"), b"{}").unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
