//! One line of text to one event, as the source's `format` says. Errors
//! say what is wrong with the line; the caller adds file and offset.

use serde_json::{Map, Value};

use crate::config::TailFormat;
use crate::event::{self, check_name, Event};

/// Builds the event for `line` (UTF-8, without its line ending).
pub fn to_event(format: &TailFormat, line: &str, source: &str) -> Result<Event, String> {
    match format {
        TailFormat::Json => {
            let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
            Event::from_input(value, source).map_err(|e| format!("not an event: {e}"))
        }
        TailFormat::Text { name: Some(name) } => {
            let mut data = Map::new();
            data.insert("line".into(), Value::String(line.to_string()));
            Ok(event(name.clone(), source, Value::Object(data)))
        }
        TailFormat::Text { name: None } => {
            let name = line.trim();
            check_name(name).map_err(|p| format!("the line is not an event name: the name {p}"))?;
            Ok(event(name.to_string(), source, Value::Object(Map::new())))
        }
        TailFormat::Regex { pattern, name } => {
            let caps = pattern
                .captures(line)
                .ok_or_else(|| format!("does not match the pattern {:?}", pattern.as_str()))?;
            let name = match (caps.name("name"), name) {
                (Some(m), _) => m.as_str().to_string(),
                (None, Some(n)) => n.clone(),
                (None, None) => return Err("the pattern matched but its `name` group did not".into()),
            };
            check_name(&name).map_err(|p| format!("the captured name {name:?} {p}"))?;
            let mut data = Map::new();
            for group in pattern.capture_names().flatten().filter(|g| *g != "name") {
                if let Some(m) = caps.name(group) {
                    data.insert(group.to_string(), Value::String(m.as_str().to_string()));
                }
            }
            Ok(event(name, source, Value::Object(data)))
        }
    }
}

fn event(name: String, source: &str, data: Value) -> Event {
    Event {
        id: event::new_id(),
        name,
        version: None,
        source: source.to_string(),
        time: event::now(),
        meta: Map::new(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lines() {
        let ev = to_event(
            &TailFormat::Json,
            r#"{"name": "deals.DealClick", "data": {"deal_id": 7}, "source": "spoofed"}"#,
            "tail:a.log",
        )
        .unwrap();
        assert_eq!(
            (ev.name.as_str(), ev.source.as_str()),
            ("deals.DealClick", "tail:a.log")
        );
        assert_eq!(ev.data, json!({"deal_id": 7}));
        let err = |l: &str| to_event(&TailFormat::Json, l, "tail:a.log").unwrap_err();
        assert_eq!(
            err("{\"name\": "),
            "not JSON: EOF while parsing a value at line 1 column 9"
        );
        assert_eq!(err("{\"data\": {}}"), "not an event: missing \"name\"");
        assert_eq!(
            err("[1]"),
            "not an event: an event must be a JSON object, got an array"
        );
    }

    #[test]
    fn text_lines() {
        let named = TailFormat::Text {
            name: Some("app.Impression".into()),
        };
        let ev = to_event(&named, "user 42 saw deal 7", "tail:a.log").unwrap();
        assert_eq!(ev.name, "app.Impression");
        assert_eq!(ev.data, json!({"line": "user 42 saw deal 7"}));
        let bare = TailFormat::Text { name: None };
        let ev = to_event(&bare, "deals.DealClick ", "tail:a.log").unwrap();
        assert_eq!((ev.name.as_str(), &ev.data), ("deals.DealClick", &json!({})));
        assert!(to_event(&bare, "two words", "tail:a.log")
            .unwrap_err()
            .starts_with("the line is not an event name: the name must not contain ' '"));
    }

    #[test]
    fn regex_lines() {
        let re = TailFormat::Regex {
            pattern: regex::Regex::new(
                r"^(?P<time>\S+) (?P<name>[\w.]+) user=(?P<user>\d+)(?: deal=(?P<deal>\d+))?$",
            )
            .unwrap(),
            name: None,
        };
        let ev = to_event(&re, "10:00 deals.DealClick user=42 deal=7", "tail:a.log").unwrap();
        assert_eq!(ev.name, "deals.DealClick");
        assert_eq!(ev.data, json!({"time": "10:00", "user": "42", "deal": "7"}));
        let ev = to_event(&re, "10:00 app.Login user=42", "tail:a.log").unwrap();
        assert_eq!(
            ev.data,
            json!({"time": "10:00", "user": "42"}),
            "unmatched optional group left out"
        );
        assert!(to_event(&re, "garbage", "tail:a.log")
            .unwrap_err()
            .starts_with("does not match the pattern"));
        let fixed = TailFormat::Regex {
            pattern: regex::Regex::new(r"^GET (?P<path>\S+)$").unwrap(),
            name: Some("web.Get".into()),
        };
        let ev = to_event(&fixed, "GET /x", "tail:a.log").unwrap();
        assert_eq!((ev.name.as_str(), &ev.data), ("web.Get", &json!({"path": "/x"})));
    }
}
