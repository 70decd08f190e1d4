//! Binary-mode CloudEvents (HTTP binding 1.0.2, 3.1): attributes in `ce-*`
//! headers, percent-encoded; `Content-Type` is `datacontenttype`; the body is
//! the data. Assembled into the JSON event format's shape and checked by
//! [`crate::event::cloudevents::to_event`], so both modes obey one set of
//! rules (issue 17, item 3).

use base64::Engine as _;
use hyper::header::{HeaderMap, CONTENT_TYPE};
use serde_json::{Map, Value};

use hyper::StatusCode;

use super::{bad, parse_json, IngestError, SOURCE};
use crate::event::cloudevents::{decode_header_value, is_json_media, valid_attribute_name};
use crate::event::{EnvelopeError, Event};

/// The attributes of `ce-*` headers (names lower-cased by HTTP, values
/// percent-decoded), each once. Errors name the header.
pub fn attributes(headers: &HeaderMap) -> Result<Map<String, Value>, IngestError> {
    let mut obj = Map::new();
    for name in headers.keys() {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if attr == "datacontenttype" {
            return Err(bad(
                "header ce-datacontenttype: in binary mode Content-Type carries datacontenttype \
                 (HTTP binding 3.1.1), ce-datacontenttype must not be sent",
            ));
        }
        if attr == "data" || attr == "data_base64" {
            return Err(bad(format!(
                "header {name}: in binary mode the body is the data, not a header"
            )));
        }
        if !valid_attribute_name(attr) {
            return Err(bad(format!(
                "header {name}: {attr:?} is not a CloudEvents attribute name \
                 (lower-case letters and digits only)"
            )));
        }
        let mut values = headers.get_all(name).iter();
        let raw = values.next().map(|v| v.as_bytes()).unwrap_or_default();
        if values.next().is_some() {
            return Err(bad(format!("header {name} is given more than once")));
        }
        if let Some(b) = raw
            .iter()
            .find(|b| !(b.is_ascii_graphic() || **b == b' ' || **b == b'\t'))
        {
            return Err(bad(format!(
                "header {name}: byte 0x{b:02x} is not printable ASCII; percent-encode it"
            )));
        }
        let value = decode_header_value(raw).map_err(|e| bad(format!("header {name}: {e}")))?;
        obj.insert(attr.to_string(), Value::String(value));
    }
    Ok(obj)
}

/// Bounds a binary-mode event by `max_body` (bytes): its body plus the
/// percent-decoded values of its `ce-*` headers, which become attributes of
/// the event, so headers cannot carry what the body may not (issue 17
/// follow-up). Errors: 413 naming `max_body`. Headers that do not decode are
/// left to [`event`] to report.
pub fn check_size(headers: &HeaderMap, body_len: usize, max_body: u64) -> Result<(), IngestError> {
    let Ok(attrs) = attributes(headers) else {
        return Ok(());
    };
    let in_headers: usize = attrs.values().map(|v| v.as_str().map_or(0, str::len)).sum();
    let total = (body_len + in_headers) as u64;
    if total <= max_body {
        return Ok(());
    }
    Err(IngestError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "binary CloudEvent of {total} bytes ({body_len} in the body, {in_headers} in ce-* headers) \
             is larger than max_body ({max_body} bytes): in binary mode the ce-* header values count \
             toward max_body"
        ),
    })
}

/// One binary-mode event from its headers and body. An empty body is no
/// data; a JSON `Content-Type` (or none) makes the body a JSON value; any
/// other type keeps UTF-8 text as a string and other bytes as `data_base64`.
pub fn event(headers: &HeaderMap, body: &[u8]) -> Result<Event, IngestError> {
    let mut obj = attributes(headers)?;
    let content_type = match headers.get(CONTENT_TYPE) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| bad("header content-type: not visible ASCII"))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    if let Some(ct) = &content_type {
        obj.insert("datacontenttype".into(), Value::String(ct.clone()));
    }
    if !body.is_empty() {
        if content_type.as_deref().is_none_or(is_json_media) {
            obj.insert("data".into(), parse_json(body, "CloudEvent data")?);
        } else {
            match std::str::from_utf8(body) {
                Ok(text) => obj.insert("data".into(), Value::String(text.to_string())),
                Err(_) => obj.insert(
                    "data_base64".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                ),
            };
        }
    }
    Event::from_cloudevent(obj, SOURCE).map_err(|e| match e {
        EnvelopeError::Missing(attr) => bad(format!("binary CloudEvent: missing header ce-{attr}")),
        e => bad(format!("binary CloudEvent: {e}")),
    })
}
