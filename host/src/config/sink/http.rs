//! `type = "http"` sinks: a webhook's settings and their validation (the
//! sink itself: `sinks::http`).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use toml::Spanned;

use super::RawSink;
use crate::config::validate::Validator;

/// How a webhook request body holds its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// A JSON array of envelopes (`application/json`).
    Json,
    /// One envelope per line (`application/x-ndjson`).
    Ndjson,
}

/// Default of `max_retry_after`: a receiver may ask for up to a minute.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `[sink.NAME] type = "http"`: POSTs batches of envelopes to a URL.
#[derive(Clone, PartialEq)]
pub struct HttpSinkConfig {
    pub url: hyper::Uri,
    /// Most events per request.
    pub batch: usize,
    /// Per request, connecting included.
    pub timeout: Duration,
    /// Attempts after the first before the batch goes to dead letters.
    pub retries: u32,
    /// Delay before the first retry; doubles per retry, with jitter.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// The longest wait a receiver's `Retry-After` is honoured for (it may
    /// exceed `max_backoff`; issue 17). A longer one is waited this long.
    pub max_retry_after: Duration,
    pub format: BatchFormat,
    /// Extra request headers (values may come from `${ENV}`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Events written and not yet delivered beyond which writes are refused
    /// (and those events dead-lettered) rather than held in memory.
    pub max_pending: usize,
}

impl fmt::Debug for HttpSinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values often carry credentials: names only.
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSinkConfig")
            .field("url", &self.url)
            .field("batch", &self.batch)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("format", &self.format)
            .field("headers", &headers)
            .field("max_pending", &self.max_pending)
            .finish()
    }
}

/// The keys only an `http` sink takes, for refusing them elsewhere.
fn http_keys(s: &RawSink) -> Vec<(&'static str, Range<usize>)> {
    let mut v = Vec::new();
    let mut add = |k: &'static str, span: Option<Range<usize>>| {
        if let Some(span) = span {
            v.push((k, span));
        }
    };
    add("url", s.url.as_ref().map(|x| x.span()));
    add("batch", s.batch.as_ref().map(|x| x.span()));
    add("timeout", s.timeout.as_ref().map(|x| x.span()));
    add("retries", s.retries.as_ref().map(|x| x.span()));
    add("backoff", s.backoff.as_ref().map(|x| x.span()));
    add("max_backoff", s.max_backoff.as_ref().map(|x| x.span()));
    add("max_retry_after", s.max_retry_after.as_ref().map(|x| x.span()));
    add("format", s.format.as_ref().map(|x| x.span()));
    add("headers", s.headers.as_ref().map(|x| x.span()));
    add("max_pending", s.max_pending.as_ref().map(|x| x.span()));
    v
}

impl Validator<'_> {
    /// Refuses `http`-only keys on other sink types.
    pub fn no_http_keys(&mut self, name: &str, kind: &str, s: &RawSink) {
        for (key, span) in http_keys(s) {
            self.error(
                Some(span),
                format!("sink.{name}.{key}: a {kind:?} sink takes no {key} (only \"http\" sinks do)"),
            );
        }
    }

    pub fn http_sink(&mut self, name: &str, s: &RawSink, span: Range<usize>) -> Option<HttpSinkConfig> {
        let before = self.errors.len();
        if let Some(path) = &s.path {
            self.error(
                Some(path.span()),
                format!("sink.{name}.path: an \"http\" sink takes no path (it has a url)"),
            );
        }
        let url = match &s.url {
            None => {
                self.error(Some(span), format!("sink.{name}: type \"http\" needs a url"));
                None
            }
            Some(u) => self.check(u.span(), &format!("sink.{name}.url"), parse_url(u.get_ref())),
        };
        let what = |k: &str| format!("sink.{name}.{k}");
        let batch = self.int(&s.batch, &what("batch"), 1..100_001, 100) as usize;
        let timeout = self.duration(&s.timeout, &what("timeout"), Duration::from_secs(10));
        let retries = self.int(&s.retries, &what("retries"), 0..101, 5) as u32;
        let backoff = self.duration(&s.backoff, &what("backoff"), Duration::from_millis(200));
        let max_backoff = self.duration(&s.max_backoff, &what("max_backoff"), Duration::from_secs(30));
        if max_backoff < backoff {
            if let Some(mb) = &s.max_backoff {
                self.error(
                    Some(mb.span()),
                    format!(
                        "sink.{name}.max_backoff: must not be shorter than backoff ({})",
                        humantime::format_duration(backoff)
                    ),
                );
            }
        }
        let max_retry_after = self.duration(
            &s.max_retry_after,
            &what("max_retry_after"),
            DEFAULT_MAX_RETRY_AFTER,
        );
        let format = match s.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "json")) => BatchFormat::Json,
            Some((_, "ndjson")) => BatchFormat::Ndjson,
            Some((f, other)) => {
                self.error(
                    Some(f.span()),
                    format!("sink.{name}.format: unknown format {other:?} (known: \"json\", \"ndjson\")"),
                );
                BatchFormat::Json
            }
        };
        let mut headers = Vec::new();
        for (key, value) in s.headers.as_ref().map(|h| h.get_ref()).into_iter().flatten() {
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| format!("{key:?} is not a valid header name"))
                .and_then(|n| {
                    if matches!(
                        n.as_str(),
                        "content-type" | "content-length" | "host" | "transfer-encoding"
                    ) {
                        Err(format!("{key:?} is set by switchyard"))
                    } else {
                        Ok(n)
                    }
                })
                .and_then(|n| {
                    HeaderValue::from_str(value.get_ref())
                        .map(|v| (n, v))
                        .map_err(|_| format!("the value of {key:?} is not a valid header value"))
                });
            if let Some(h) = self.check(value.span(), &what("headers"), header) {
                headers.push(h);
            }
        }
        let max_pending = self.int(&s.max_pending, &what("max_pending"), 1..100_000_001, 100_000) as usize;
        if self.errors.len() > before {
            return None;
        }
        Some(HttpSinkConfig {
            url: url?,
            batch,
            timeout,
            retries,
            backoff,
            max_backoff,
            max_retry_after,
            format,
            headers,
            max_pending,
        })
    }
}

/// An `http://host:port/path` URL (plain HTTP: put a TLS-terminating proxy
/// in front of an `https://` endpoint).
pub fn parse_url(text: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = text.parse().map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{text:?}: https is not supported by the built-in client; send to a local TLS-terminating proxy over http"
            ))
        }
        _ => return Err(format!("invalid URL {text:?}: expected http://HOST[:PORT]/PATH")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid URL {text:?}: no host"));
    }
    Ok(uri)
}

/// Raw keys added to `[sink.NAME]` for `http` sinks (see [`RawSink`]).
pub type RawHeaders = Spanned<BTreeMap<String, Spanned<String>>>;
