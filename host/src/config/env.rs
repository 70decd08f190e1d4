//! `${VAR}` interpolation in router.toml string values.
//!
//! The file is parsed into a spanned document first; every string value
//! (not keys, not comments) is interpolated in place; only then is the
//! document deserialised. So a variable can never inject TOML syntax, and an
//! unset variable is reported at the string that names it.
//!
//! Syntax: `${NAME}` is the variable's value, an error when it is unset;
//! `${NAME:-default}` is the value, or `default` when unset or empty; `$${`
//! is a literal `${`. Any other `$` is literal. Names are ASCII letters,
//! digits and `_`, not starting with a digit.
//!
//! Hand-written, not `subst` or `shellexpand`: measured on the inputs of
//! the tests below, neither keeps this syntax. subst 0.3.8 expands a bare
//! `$NAME` (a literal `$` today: `"pa$word"` in a header value would change
//! or be refused), takes `${NAME:default}` (so `${NOPE:-x}` gives `-x`),
//! refuses `"cost $5"` ("Missing variable name") and has no `$${`.
//! shellexpand 3.1.2 also expands a bare `$NAME`, gives `""` for
//! `${EMPTY:-e}` where this gives `e` (the default also stands for an empty
//! value), and passes `"${HOST"` and `"${9x}"` through unchanged where this
//! refuses them. Neither names the variable and the fix in its message the
//! way [`expand`] does.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

/// An error to report at a place in the file.
pub type Located = (Option<Range<usize>>, String);

/// Reads an environment variable (overridable in tests).
pub fn var(name: &str) -> Option<String> {
    #[cfg(test)]
    if let Some(v) = tests::OVERRIDE.with(|o| o.borrow().as_ref().map(|m| m.get(name).cloned())) {
        return v;
    }
    std::env::var(name).ok()
}

/// Parses, interpolates and deserialises a document: TOML syntax and
/// deserialisation errors come back alone (as before); interpolation
/// errors come back all at once.
pub fn from_str<T: for<'de> Deserialize<'de>>(src: &str) -> Result<T, Vec<Located>> {
    let mut doc = DeTable::parse(src).map_err(|e| vec![(e.span(), e.message().trim_end().to_string())])?;
    let mut errors = Vec::new();
    interpolate_table(doc.get_mut(), "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    T::deserialize(toml::de::Deserializer::from(doc))
        .map_err(|e| vec![(e.span(), e.message().trim_end().to_string())])
}

fn interpolate_table(table: &mut DeTable<'_>, path: &str, errors: &mut Vec<Located>) {
    for (key, value) in table.iter_mut() {
        let here = if path.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{path}.{}", key.get_ref())
        };
        interpolate_value(value, &here, errors);
    }
}

fn interpolate_value(value: &mut Spanned<DeValue<'_>>, path: &str, errors: &mut Vec<Located>) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) if s.contains('$') => match expand(s, var) {
            Ok(new) => *s = DeString::Owned(new),
            Err(msg) => errors.push((Some(span), format!("{path}: {msg}"))),
        },
        DeValue::Table(t) => interpolate_table(t, path, errors),
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

/// Expands one string; the error names the variable at fault.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(format!(
                    "unterminated \"${{\" in {text:?} (write \"$${{\" for a literal \"${{\")"
                ));
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(format!(
                    "invalid variable name {name:?} in \"${{{inner}}}\" (letters, digits and _, not starting with a digit)"
                ));
            }
            match (lookup(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (referenced as \"${{{name}}}\"; \
                         set it, or write \"${{{name}:-default}}\")"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    thread_local! {
        /// Per-test environment: tests run in parallel threads, and
        /// `std::env::set_var` would race with every other test.
        pub(crate) static OVERRIDE: RefCell<Option<HashMap<String, String>>> = const { RefCell::new(None) };
    }

    /// Runs `f` with exactly these variables visible to [`var`].
    pub(crate) fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        OVERRIDE.with(|o| {
            *o.borrow_mut() = Some(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        });
        let out = f();
        OVERRIDE.with(|o| *o.borrow_mut() = None);
        out
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("web-3".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion() {
        assert_eq!(expand("http://${HOST}:80/x", env).unwrap(), "http://web-3:80/x");
        assert_eq!(
            expand("${NOPE:-fallback}/${EMPTY:-e}", env).unwrap(),
            "fallback/e"
        );
        assert_eq!(
            expand("cost $5, $${HOST} is literal", env).unwrap(),
            "cost $5, ${HOST} is literal"
        );
        assert_eq!(expand("no dollars", env).unwrap(), "no dollars");
        assert_eq!(
            expand("${NOPE}", env).unwrap_err(),
            "environment variable NOPE is not set (referenced as \"${NOPE}\"; set it, or write \"${NOPE:-default}\")"
        );
        assert!(expand("${HOST", env)
            .unwrap_err()
            .starts_with("unterminated \"${\""));
        assert!(expand("${9x}", env)
            .unwrap_err()
            .starts_with("invalid variable name \"9x\""));
    }
}
