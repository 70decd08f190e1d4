//! CloudEvents 1.0.2 on ingest (issue 17, item 3): the rules of the core
//! spec (required attributes, naming, type system), of the JSON event format
//! (`data` versus `data_base64`, `datacontenttype`, `null` as unset) and the
//! header-value decoding of the HTTP binding, applied to what producers send.
//! Pure: no I/O, every error names the attribute at fault.
//!
//! Mapping onto the envelope: `type`→`name`, `id`, `time`, `data`; `source`,
//! `subject` and `datacontenttype` go to `meta` as `ce_source`, `ce_subject`,
//! `ce_datacontenttype`; `dataschema` and extensions to `meta` as they are;
//! `data_base64` stays base64 in `data`, with `meta.ce_data_base64 = true`.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{check_name, json_type, take_time, EnvelopeError, Event};

/// The attributes whose type is String, URI-reference, URI or Timestamp:
/// the JSON format maps them to JSON strings only.
const STRING_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

fn attr(name: &str, problem: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Attribute {
        name: name.to_string(),
        problem: problem.into(),
    }
}

/// CloudEvents attribute names: lower-case ASCII letters and digits only
/// (spec 1.0.2, "Attribute Naming Convention").
pub fn valid_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether a media type declares JSON data: `*/json` or `*/*+json`,
/// parameters ignored (JSON format 1.0.2, 3.1.1).
pub fn is_json_media(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some((_, sub)) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

/// A String value: no control characters (U+0000-U+001F, U+007F-U+009F)
/// and no Unicode noncharacters. (Unpaired surrogates cannot reach a Rust
/// string: the JSON parser and UTF-8 decoding refuse them.)
fn check_string(value: &str) -> Result<(), String> {
    match value.chars().find(|&c| {
        let n = c as u32;
        c.is_control() || (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
    }) {
        Some(c) => Err(format!("must not contain the character {c:?}")),
        None => Ok(()),
    }
}

/// RFC 3986 URI-reference, as far as its characters and scheme go: only
/// unreserved, reserved and `%HH` escapes; a scheme, when there is one,
/// starts with a letter. `absolute` requires a scheme (type URI).
pub fn check_uri(value: &str, absolute: bool) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!("{value:?} is not a URI: '%' must start a %HH escape"));
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b)) {
            return Err(format!(
                "{value:?} is not a URI: {:?} must be percent-encoded",
                value[i..].chars().next().unwrap_or('?')
            ));
        }
        i += 1;
    }
    let first_delim = value.find(['/', '?', '#']).unwrap_or(value.len());
    match value[..first_delim].find(':') {
        Some(colon) => {
            let scheme = &value[..colon];
            let ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !ok {
                return Err(format!("{value:?} is not a URI: bad scheme {scheme:?}"));
            }
        }
        None if absolute => return Err(format!("{value:?} is not an absolute URI (no scheme)")),
        None => {}
    }
    Ok(())
}

/// RFC 2045/2046 media type: `type/subtype` tokens, then `; name=value`
/// parameters (value a token or a quoted string).
pub fn check_media_type(value: &str) -> Result<(), String> {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let well_formed = essence.split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    if !well_formed {
        return Err(format!("{value:?} is not a media type like \"application/json\""));
    }
    for param in parts {
        let param = param.trim();
        let ok = param.split_once('=').is_some_and(|(k, v)| {
            let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
            token(k.trim_end()) && (token(v.trim_start()) || quoted)
        });
        if !ok {
            return Err(format!("{value:?}: parameter {param:?} is not name=value"));
        }
    }
    Ok(())
}

/// Decodes a binary-mode header value (HTTP binding 1.0.2, 3.1.3.2): first
/// RFC 7230 quoted strings are unquoted (backslash escapes included), then one
/// round of percent-decoding; the bytes must be UTF-8 (so overlong forms such
/// as `%C0%A0` are refused). Lower-case hex is accepted.
pub fn decode_header_value(raw: &[u8]) -> Result<String, String> {
    let mut unquoted = Vec::with_capacity(raw.len());
    let mut in_quotes = false;
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], in_quotes) {
            (b'"', _) => in_quotes = !in_quotes,
            (b'\\', true) => {
                i += 1;
                unquoted.push(*raw.get(i).ok_or("ends inside a backslash escape")?);
            }
            (b, _) => unquoted.push(b),
        }
        i += 1;
    }
    if in_quotes {
        return Err("has an unterminated quoted string".into());
    }
    let mut bytes = Vec::with_capacity(unquoted.len());
    let mut i = 0;
    while i < unquoted.len() {
        if unquoted[i] == b'%' {
            let hex = unquoted
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("has a '%' that does not start a %HH escape")?;
            bytes.push(hex);
            i += 3;
        } else {
            bytes.push(unquoted[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes).map_err(|_| "percent-decodes to bytes that are not UTF-8".to_string())
}

/// Takes a required, non-empty String attribute.
fn required(obj: &mut Map<String, Value>, name: &'static str) -> Result<String, EnvelopeError> {
    match obj.remove(name) {
        Some(Value::String(s)) if s.is_empty() => Err(attr(name, "must not be empty")),
        Some(Value::String(s)) => Ok(s),
        _ => Err(EnvelopeError::Missing(name)),
    }
}

/// Checks every attribute's name and type; drops those that are `null`
/// (unset, JSON format 2.2). `data` and `data_base64` are not attributes.
fn check_attributes(obj: &mut Map<String, Value>) -> Result<(), EnvelopeError> {
    obj.retain(|k, v| !v.is_null() || k == "data");
    for (name, value) in obj.iter() {
        if name == "data" || name == "data_base64" {
            continue;
        }
        if !valid_attribute_name(name) {
            return Err(attr(
                name,
                "is not a CloudEvents attribute name: lower-case letters and digits only",
            ));
        }
        match value {
            Value::String(s) => check_string(s).map_err(|p| attr(name, p))?,
            _ if STRING_ATTRIBUTES.contains(&name.as_str()) => {
                return Err(attr(name, format!("must be a string, got {}", json_type(value))))
            }
            Value::Bool(_) => {}
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => {}
            Value::Number(n) => {
                return Err(attr(
                    name,
                    format!("must be a 32-bit integer (CloudEvents Integer), got {n}"),
                ))
            }
            other => {
                return Err(attr(
                    name,
                    format!("must be a string, boolean or integer, got {}", json_type(other)),
                ))
            }
        }
    }
    Ok(())
}

/// A CloudEvent (JSON event format 1.0.2, as parsed from a structured-mode
/// body, a batch entry, or assembled from binary-mode headers) as an event.
/// `source` is the ingest path. Errors: missing or invalid attributes, each
/// named.
pub fn to_event(mut obj: Map<String, Value>, source: &str) -> Result<Event, EnvelopeError> {
    check_attributes(&mut obj)?;
    match obj.remove("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => return Err(attr("specversion", format!("must be \"1.0\", got {other}"))),
        None => return Err(EnvelopeError::Missing("specversion")),
    }
    let name = required(&mut obj, "type")?;
    check_name(&name).map_err(|p| attr("type", p))?;
    let id = required(&mut obj, "id")?;
    let ce_source = required(&mut obj, "source")?;
    check_uri(&ce_source, false).map_err(|p| attr("source", p))?;
    if let Some(Value::String(s)) = obj.get("subject") {
        if s.is_empty() {
            return Err(attr("subject", "must not be empty"));
        }
    }
    if let Some(Value::String(s)) = obj.get("dataschema") {
        check_uri(s, true).map_err(|p| attr("dataschema", p))?;
    }
    let content_type = match obj.get("datacontenttype") {
        Some(Value::String(s)) => {
            check_media_type(s).map_err(|p| attr("datacontenttype", p))?;
            Some(s.clone())
        }
        _ => None,
    };
    let time = take_time(&mut obj, "time")?;
    // `null` is unset for data and data_base64 alike (JSON format 2.2), and
    // no data at all is JSON `null`, not an object (issue 17 follow-up).
    let unset_if_null = |v: Option<Value>| v.filter(|v| !v.is_null());
    let data = match (
        unset_if_null(obj.remove("data")),
        unset_if_null(obj.remove("data_base64")),
    ) {
        (Some(_), Some(_)) => return Err(attr("data_base64", "must not be given together with \"data\"")),
        (Some(d), None) => match (&content_type, &d) {
            (Some(ct), Value::String(_)) if !is_json_media(ct) => d,
            (Some(ct), other) if !is_json_media(ct) => {
                return Err(attr(
                    "data",
                    format!(
                        "must be a string when datacontenttype {ct:?} is not JSON, got {}",
                        json_type(other)
                    ),
                ))
            }
            _ => d,
        },
        (None, Some(Value::String(b64))) => {
            base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .map_err(|e| attr("data_base64", format!("is not base64: {e}")))?;
            obj.insert("ce_data_base64".into(), Value::Bool(true));
            Value::String(b64)
        }
        (None, Some(other)) => {
            return Err(attr(
                "data_base64",
                format!("must be a string, got {}", json_type(&other)),
            ))
        }
        (None, None) => Value::Null,
    };
    let mut meta = Map::new();
    meta.insert("ce_source".into(), Value::String(ce_source));
    for (key, value) in obj {
        let key = match key.as_str() {
            "subject" | "datacontenttype" => format!("ce_{key}"),
            _ => key,
        };
        meta.insert(key, value);
    }
    Ok(Event {
        id,
        name,
        version: None,
        source: source.to_string(),
        time,
        meta,
        data,
    })
}
