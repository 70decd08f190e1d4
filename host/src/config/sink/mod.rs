//! `[sink.NAME]`: where routed events go besides handlers, one module per
//! sink type with its settings and their validation; the writers are in
//! `sinks/`. [`SinkConfig`] is tagged by the table's `type`.
//!
//! The table as written is one serde struct, [`RawSink`], with the keys of
//! every type, split by `type` only once read. A serde-tagged enum
//! (`#[serde(tag = "type")]`) cannot carry the spans every message points
//! with: tried with toml 0.9, a `Spanned` key inside one fails with
//! "invalid type: string \"x\", expected a spanned value" (serde buffers the
//! table as untyped content first), and an unknown type reads "unknown
//! variant `kafka`, expected `file` or `stdout`" instead of the message
//! users have. With one struct, a key no type has is refused by serde with
//! the list of every key a sink may have (as it always was), and a key of
//! another type is refused by name ("only \"http\" sinks do").
//!
//! Adding a sink type: a module here with its settings type and
//! validation, its keys in [`RawSink`], an arm in [`SinkConfig`] and in
//! [`Validator::sinks`], and its writer in `sinks/` (see there).

mod file;
mod http;
mod stdout;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

pub use file::FileSinkConfig;
pub use http::{BatchFormat, HttpSinkConfig};

use super::validate::Validator;

/// A validated `[sink.NAME]`, by its `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    /// `type = "file"`: append NDJSON, one envelope per line.
    File(FileSinkConfig),
    /// `type = "stdout"`: one envelope per line on the daemon's stdout.
    Stdout,
    /// `type = "http"`: batches POSTed to a webhook, retried,
    /// dead-lettered when undeliverable.
    Http(HttpSinkConfig),
}

/// The sink types, as `type` names them, for messages.
const KNOWN: &str = "\"file\", \"stdout\", \"http\"";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// `type = "file"` only.
    pub path: Option<Spanned<String>>,
    // `type = "http"` only; see `HttpSinkConfig`.
    pub url: Option<Spanned<String>>,
    pub batch: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub max_backoff: Option<Spanned<String>>,
    pub max_retry_after: Option<Spanned<String>>,
    pub format: Option<Spanned<String>>,
    pub headers: Option<http::RawHeaders>,
    pub max_pending: Option<Spanned<i64>>,
}

impl Validator<'_> {
    /// Every `[sink.NAME]`; those with errors are left out.
    pub fn sinks(
        &mut self,
        raw: &BTreeMap<String, Spanned<RawSink>>,
        base: &Path,
    ) -> BTreeMap<String, SinkConfig> {
        let mut sinks = BTreeMap::new();
        for (name, sink) in raw {
            let s = sink.get_ref();
            let kind = s.kind.get_ref().as_str();
            if kind != "http" {
                self.no_http_keys(name, kind, s);
            }
            let parsed = match kind {
                "http" => self.http_sink(name, s, sink.span()).map(SinkConfig::Http),
                "file" => self.file_sink(name, s, sink.span(), base).map(SinkConfig::File),
                "stdout" => self.stdout_sink(name, s).then_some(SinkConfig::Stdout),
                other => {
                    self.error(
                        Some(s.kind.span()),
                        format!("sink.{name}.type: unknown sink type {other:?} (known: {KNOWN})"),
                    );
                    None
                }
            };
            if let Some(parsed) = parsed {
                sinks.insert(name.clone(), parsed);
            }
        }
        sinks
    }
}
