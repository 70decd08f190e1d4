//! The operations part of router.toml: `[admin]`, `[auth]`, `[stream]`,
//! `[plugins] log_rate/log_burst` and `type = "http"` sinks. Raw types and
//! their validation, kept apart from the routing config.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::raw::RawSink;
use super::Validator;
use crate::http::auth::Token;
use crate::http::stream::StreamConfig;
use crate::log_limit::LogLimit;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `{ env = "VAR" }` or `{ file = "path" }`; a plain string is refused.
    pub ingest: Option<Spanned<toml::Value>>,
    pub admin: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub buffer: Option<Spanned<i64>>,
    pub max_subscribers: Option<Spanned<i64>>,
    pub cutoff_grace: Option<Spanned<String>>,
}

/// Bearer tokens; `None` means that scope is open.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Required on `POST /v1/events` and `POST /event/log`.
    pub ingest: Option<Token>,
    /// Required on `/metrics`, `/v1/*` listings, `/v1/stream`, `/v1/replay`.
    pub admin: Option<Token>,
}

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
    pub(super) fn listen_addr(&mut self, value: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        let parsed = value.get_ref().parse::<SocketAddr>().map_err(|_| {
            format!(
                "invalid address {:?}: expected IP:PORT, like \"127.0.0.1:7601\"",
                value.get_ref()
            )
        });
        self.check(value.span(), what, parsed)
    }

    pub(super) fn admin(&mut self, raw: &RawAdmin, server: SocketAddr) -> Option<SocketAddr> {
        let listen = raw.listen.as_ref()?;
        let addr = self.listen_addr(listen, "admin.listen")?;
        if addr == server && addr.port() != 0 {
            self.error(
                Some(listen.span()),
                format!("admin.listen: {addr} is also [server] listen; give the admin listener its own port"),
            );
            return None;
        }
        Some(addr)
    }

    pub(super) fn auth(&mut self, raw: &RawAuth, base: &Path) -> AuthConfig {
        AuthConfig {
            ingest: raw
                .ingest
                .as_ref()
                .and_then(|v| self.token(v, "auth.ingest", base)),
            admin: raw.admin.as_ref().and_then(|v| self.token(v, "auth.admin", base)),
        }
    }

    fn token(&mut self, value: &Spanned<toml::Value>, what: &str, base: &Path) -> Option<Token> {
        let span = value.span();
        let how = "write { env = \"VARIABLE\" } or { file = \"/path/to/token\" }";
        let table = match value.get_ref() {
            toml::Value::String(_) => {
                self.error(
                    Some(span),
                    format!("{what}: the token itself must not be in router.toml; {how}"),
                );
                return None;
            }
            toml::Value::Table(t) => t,
            other => {
                self.error(
                    Some(span),
                    format!("{what}: expected a table, got a {}; {how}", other.type_str()),
                );
                return None;
            }
        };
        let entry = match (table.len(), table.get("env"), table.get("file")) {
            (1, Some(toml::Value::String(var)), None) => Ok((true, var.clone())),
            (1, None, Some(toml::Value::String(file))) => Ok((false, file.clone())),
            _ => Err(()),
        };
        let Ok((is_env, name)) = entry else {
            self.error(
                Some(span),
                format!("{what}: {how}, exactly one of them, as a string"),
            );
            return None;
        };
        let secret = if is_env {
            match super::env::var(&name) {
                Some(v) => v,
                None => {
                    self.error(
                        Some(span),
                        format!("{what}: environment variable {name} is not set"),
                    );
                    return None;
                }
            }
        } else {
            let path: PathBuf = base.join(&name);
            match std::fs::read_to_string(&path) {
                Ok(v) => v,
                Err(e) => {
                    self.error(
                        Some(span),
                        format!("{what}: cannot read token file {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        };
        // A file's trailing newline is not part of the token.
        let secret = secret.trim();
        let from = if is_env {
            format!("environment variable {name}")
        } else {
            format!("token file {}", base.join(&name).display())
        };
        if secret.is_empty() {
            self.error(Some(span), format!("{what}: {from} is empty"));
            return None;
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                Some(span),
                format!("{what}: {from} holds whitespace inside the token; a bearer token is one word"),
            );
            return None;
        }
        Some(Token::new(secret))
    }

    pub(super) fn stream(&mut self, raw: &RawStream) -> StreamConfig {
        let d = StreamConfig::default();
        StreamConfig {
            buffer: self.int(&raw.buffer, "stream.buffer", 1..1_000_001, d.buffer as i64) as usize,
            max_subscribers: self.int(
                &raw.max_subscribers,
                "stream.max_subscribers",
                1..100_001,
                d.max_subscribers as i64,
            ) as usize,
            cutoff_grace: self.duration(&raw.cutoff_grace, "stream.cutoff_grace", d.cutoff_grace),
        }
    }

    pub(super) fn log_limit(&mut self, p: &super::raw::RawPlugins) -> LogLimit {
        let d = LogLimit::default();
        LogLimit {
            rate: self.int(&p.log_rate, "plugins.log_rate", 0..1_000_001, d.rate.into()) as u32,
            burst: self.int(&p.log_burst, "plugins.log_burst", 1..1_000_001, d.burst.into()) as u32,
            bytes: self.size(&p.log_bytes, "plugins.log_bytes", 0..(1 << 40), d.bytes),
            bytes_burst: self.size(
                &p.log_bytes_burst,
                "plugins.log_bytes_burst",
                1..(1 << 40),
                d.bytes_burst,
            ),
        }
    }

    /// Refuses `http`-only keys on other sink types.
    pub(super) fn no_http_keys(&mut self, name: &str, kind: &str, s: &RawSink) {
        for (key, span) in http_keys(s) {
            self.error(
                Some(span),
                format!("sink.{name}.{key}: a {kind:?} sink takes no {key} (only \"http\" sinks do)"),
            );
        }
    }

    pub(super) fn http_sink(
        &mut self,
        name: &str,
        s: &RawSink,
        span: Range<usize>,
    ) -> Option<HttpSinkConfig> {
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
