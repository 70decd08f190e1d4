//! The validator every part of router.toml is checked with: it collects
//! every error (and warning) with its place in the file instead of stopping
//! at the first, and checks the shapes every section shares (integers in a
//! range, sizes, durations).

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;

use super::units::{parse_duration, parse_size, RawSize};
use super::{ConfigError, ConfigErrors};

pub struct Validator<'s> {
    pub src: &'s str,
    pub errors: Vec<ConfigError>,
    /// Problems that do not stop the config from serving: a route naming a
    /// plugin with no file (its events are dead-lettered as `unavailable`).
    pub warnings: Vec<ConfigError>,
}

impl<'s> Validator<'s> {
    pub fn new(src: &'s str) -> Validator<'s> {
        Validator {
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Validator<'_> {
    pub fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let at = span.map(|s| line_col(self.src, s.start));
        self.errors.push(ConfigError { at, message });
    }

    pub fn warn(&mut self, span: Option<Range<usize>>, message: String) {
        let at = span.map(|s| line_col(self.src, s.start));
        self.warnings.push(ConfigError { at, message });
    }

    pub fn finish(mut self, file: &Path) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.at);
        ConfigErrors {
            file: file.to_path_buf(),
            errors: self.errors,
        }
    }

    pub fn check<T>(&mut self, span: Range<usize>, what: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(Some(span), format!("{what}: {msg}"));
                None
            }
        }
    }

    pub fn int(&mut self, value: &Option<Spanned<i64>>, what: &str, range: Range<i64>, default: i64) -> i64 {
        match value {
            None => default,
            Some(s) if range.contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                let msg = if range.end == i64::MAX {
                    format!("must be at least {}, got {}", range.start, s.get_ref())
                } else {
                    format!(
                        "must be from {} to {}, got {}",
                        range.start,
                        range.end - 1,
                        s.get_ref()
                    )
                };
                self.error(Some(s.span()), format!("{what}: {msg}"));
                default
            }
        }
    }

    pub fn size(
        &mut self,
        value: &Option<Spanned<RawSize>>,
        what: &str,
        range: Range<u64>,
        default: u64,
    ) -> u64 {
        let Some(s) = value else { return default };
        let parsed = parse_size(s.get_ref()).and_then(|n| {
            if range.contains(&n) {
                Ok(n)
            } else {
                Err(format!(
                    "must be from {} to {} bytes, got {n}",
                    range.start,
                    range.end - 1
                ))
            }
        });
        self.check(s.span(), what, parsed).unwrap_or(default)
    }

    pub fn duration(&mut self, value: &Option<Spanned<String>>, what: &str, default: Duration) -> Duration {
        let Some(s) = value else { return default };
        let parsed = parse_duration(s.get_ref()).and_then(|d| {
            if d.is_zero() {
                Err("must be longer than zero".to_string())
            } else {
                Ok(d)
            }
        });
        self.check(s.span(), what, parsed).unwrap_or(default)
    }
}

/// The plugins in a folder, for messages.
pub fn listing(known: &BTreeSet<String>) -> String {
    listing_of("plugins", known)
}

/// `plugins: a, b` for messages, or `there are no plugins`.
pub fn listing_of(what: &str, names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!(
            "{what}: {}",
            names.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        )
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A TOML value as the JSON a guest or a predicate sees.
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}
