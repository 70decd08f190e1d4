//! `type = "http"`: a webhook. Routed events are POSTed in batches (a JSON
//! array, or NDJSON) to a URL, at least once, in the order they were
//! written.
//!
//! Workers never wait on the network: [`Sink::write`] appends to the current
//! batch in memory, and a full batch, or whatever is there at
//! [`Sink::flush`], is handed to one background delivery task per sink,
//! which sends one batch at a time (so batches arrive in order). A failed
//! request (connection error, timeout, HTTP 408, 429 or 5xx) is retried with
//! exponential backoff and jitter; after the last retry, or at once for
//! other statuses (the receiver refused the batch and would again), every
//! event of the batch goes to the dead-letter log with the HTTP status or
//! error. So every event written is delivered or dead-lettered.
//!
//! "Flushed" means handed to the delivery task, not delivered: a worker's
//! flush (and a `?wait=true` answer) does not wait for the receiver. Events
//! not yet delivered are only in memory; at most `max_pending` of them, past
//! which writes fail and the dispatcher dead-letters those events instead.
//! At shutdown, delivery goes on for up to [`CLOSE_GRACE`]; whatever is
//! still undelivered then is dead-lettered, never dropped. Only a crash
//! (SIGKILL, power loss) loses the events still in memory.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::{Sink, SinkContext, SinkError};
use crate::config::{BatchFormat, HttpSinkConfig};
use crate::envelope::Event;
use crate::metrics::SinkMetrics;

/// How long delivery may go on after shutdown begins.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Bytes of a refusing receiver's answer quoted in the dead letter.
const QUOTED_BODY: usize = 300;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub struct HttpSink {
    inner: Arc<Inner>,
    ctx: SinkContext,
}

/// State shared by the sink (workers) and its delivery task.
pub(super) struct Inner {
    name: String,
    config: HttpSinkConfig,
    /// The batch being filled by workers.
    batch: Mutex<Vec<Bytes>>,
    /// `None` once closed: the delivery task finishes what it has and ends.
    tx: Mutex<Option<mpsc::UnboundedSender<Vec<Bytes>>>>,
    /// Events written and not yet delivered or dead-lettered.
    pending: AtomicUsize,
    metrics: Arc<SinkMetrics>,
    /// Set at shutdown: stop retrying at `deadline`.
    closing: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    wake: Notify,
    finished: (Mutex<bool>, Condvar),
}

impl HttpSink {
    pub fn open(name: &str, config: &HttpSinkConfig, ctx: &SinkContext) -> io::Result<HttpSink> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            name: name.to_string(),
            config: config.clone(),
            batch: Mutex::new(Vec::with_capacity(config.batch)),
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(0),
            metrics: ctx.stats.metrics.sink(name),
            closing: AtomicBool::new(false),
            deadline: Mutex::new(None),
            wake: Notify::new(),
            finished: (Mutex::new(false), Condvar::new()),
        });
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        ctx.register_webhook(&inner);
        ctx.runtime
            .spawn(deliver_all(inner.clone(), rx, client, ctx.clone()));
        tracing::info!(sink = name, url = %config.url, "webhook sink open");
        Ok(HttpSink {
            inner,
            ctx: ctx.clone(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// Hands a batch to the delivery task; gives it back if closed.
    fn send(&self, batch: Vec<Bytes>) -> Result<(), Vec<Bytes>> {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(batch).map_err(|e| e.0),
            None => Err(batch),
        }
    }

    /// Stops accepting; delivery goes on until `deadline`.
    pub(super) fn close(&self, deadline: Instant) {
        let rest = std::mem::take(&mut *lock(&self.batch));
        if !rest.is_empty() {
            // Cannot fail: the sender is still there.
            let _ = self.send(rest);
        }
        *lock(&self.deadline) = Some(deadline);
        self.closing.store(true, Relaxed);
        lock(&self.tx).take();
        self.wake.notify_one();
    }

    /// Blocks until the delivery task has ended, or `timeout` passes.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let (done, cv) = &self.finished;
        let guard = lock(done);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |finished| !*finished)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn past_deadline(&self) -> bool {
        self.closing.load(Relaxed) && lock(&self.deadline).is_some_and(|d| Instant::now() >= d)
    }
}

impl Sink for HttpSink {
    fn write(&self, event_json: &[u8]) -> Result<(), SinkError> {
        let inner = &self.inner;
        let waiting = inner.pending.load(Relaxed);
        if waiting >= inner.config.max_pending {
            let error = io::Error::other(format!(
                "{waiting} events already wait for delivery to {} (max_pending); this one was not taken",
                inner.config.url
            ));
            return Err(SinkError::one(error, event_json));
        }
        let full = {
            let mut batch = lock(&inner.batch);
            batch.push(Bytes::copy_from_slice(event_json));
            inner.pending.fetch_add(1, Relaxed);
            inner.metrics.pending.inc();
            if batch.len() >= inner.config.batch {
                Some(std::mem::replace(
                    &mut *batch,
                    Vec::with_capacity(inner.config.batch),
                ))
            } else {
                None
            }
        };
        if let Some(full) = full {
            if let Err(mut back) = inner.send(full) {
                // This event is the last one; the caller dead-letters it.
                back.pop();
                let error = self.refuse(back, 1);
                return Err(SinkError::one(error, event_json));
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), SinkError> {
        let rest = std::mem::take(&mut *lock(&self.inner.batch));
        if rest.is_empty() {
            return Ok(());
        }
        match self.inner.send(rest) {
            Ok(()) => Ok(()),
            // Already dead-lettered: nothing is handed back.
            Err(back) => Err(SinkError {
                error: self.refuse(back, 0),
                unwritten: Vec::new(),
            }),
        }
    }
}

impl HttpSink {
    /// A batch that cannot reach the delivery task (the sink was closed,
    /// which only happens once workers have stopped): its events, already
    /// accepted, go to dead letters here; `also` more are left to the caller.
    fn refuse(&self, back: Vec<Bytes>, also: usize) -> io::Error {
        let n = back.len() + also;
        self.inner.pending.fetch_sub(n, Relaxed);
        self.inner.metrics.pending.dec_by(n as i64);
        self.inner.metrics.errors.inc_by(back.len() as u64);
        dead_letter(
            &self.ctx,
            &self.inner.name,
            &back,
            "the webhook sink was closed before delivery",
        );
        io::Error::other("the webhook sink is closed")
    }
}

impl Drop for HttpSink {
    /// A sink replaced by a reload: its delivery task finishes what it has.
    fn drop(&mut self) {
        let rest = std::mem::take(&mut *lock(&self.inner.batch));
        if !rest.is_empty() {
            let _ = self.inner.send(rest);
        }
        lock(&self.inner.tx).take();
    }
}

async fn deliver_all(
    inner: Arc<Inner>,
    mut rx: mpsc::UnboundedReceiver<Vec<Bytes>>,
    client: HttpClient,
    ctx: SinkContext,
) {
    while let Some(batch) = rx.recv().await {
        let n = batch.len();
        if let Err(why) = deliver(&inner, &client, &batch).await {
            let message = format!("webhook {}: {why}", inner.config.url);
            tracing::error!(sink = %inner.name, events = n, error = %message, "batch not delivered; dead-lettered");
            inner.metrics.errors.inc_by(n as u64);
            let (ctx, name) = (ctx.clone(), inner.name.clone());
            let written =
                tokio::task::spawn_blocking(move || dead_letter(&ctx, &name, &batch, &message)).await;
            if let Err(e) = written {
                tracing::error!(sink = %inner.name, error = %e, "writing dead letters panicked");
            }
        }
        inner.pending.fetch_sub(n, Relaxed);
        inner.metrics.pending.dec_by(n as i64);
    }
    let (done, cv) = &inner.finished;
    *lock(done) = true;
    cv.notify_all();
}

/// Sends one batch, retrying; the error says why it was given up.
async fn deliver(inner: &Inner, client: &HttpClient, batch: &[Bytes]) -> Result<(), String> {
    let c = &inner.config;
    let (body, content_type) = encode(batch, c.format);
    let attempts = c.retries + 1;
    let mut last = String::new();
    let mut retry_after: Option<Duration> = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let delay = backoff(
                c.backoff,
                c.max_backoff,
                attempt - 1,
                retry_after,
                c.max_retry_after,
            );
            if !sleep_unless_closed(inner, delay).await {
                return Err(format!(
                    "{last} (attempt {} of {attempts}); not retried: the daemon is shutting down",
                    attempt - 1
                ));
            }
            inner.metrics.retries.inc();
        }
        if inner.past_deadline() {
            let why = if last.is_empty() {
                "not sent".to_string()
            } else {
                last
            };
            return Err(format!("{why}; the daemon is shutting down"));
        }
        let mut req = Request::post(c.url.clone())
            .header(CONTENT_TYPE, content_type)
            .header(USER_AGENT, concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        for (k, v) in &c.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        retry_after = None;
        let outcome = tokio::time::timeout(c.timeout, async {
            let resp = client.request(req).await?;
            let status = resp.status();
            let after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            // Read the answer so the connection can be reused; keep a bit of
            // it to quote when the receiver refuses the batch.
            let text = match Limited::new(resp.into_body(), 64 << 10).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Ok::<_, hyper_util::client::legacy::Error>((status, after, text))
        })
        .await;
        match outcome {
            Ok(Ok((status, _, _))) if status.is_success() => {
                tracing::debug!(sink = %inner.name, events = batch.len(), attempt, "batch delivered");
                inner.metrics.writes.inc_by(batch.len() as u64);
                return Ok(());
            }
            Ok(Ok((status, after, text))) => {
                let quoted = quote(&text);
                last = format!("HTTP {status}{quoted}");
                if !retryable(status) {
                    return Err(format!("{last} (not retried: the receiver refused the batch)"));
                }
                retry_after = after;
                if let Some(asked) = after.filter(|a| *a > c.max_retry_after) {
                    tracing::warn!(sink = %inner.name, asked_s = asked.as_secs(), max_retry_after_s = c.max_retry_after.as_secs(), "the receiver asked to wait longer than max_retry_after; retrying after max_retry_after");
                }
            }
            Ok(Err(e)) => last = error_chain(&e),
            Err(_) => {
                last = format!(
                    "no answer within {} (sink timeout)",
                    humantime::format_duration(c.timeout)
                )
            }
        }
        tracing::warn!(sink = %inner.name, attempt, attempts, error = %last, "webhook request failed");
    }
    Err(format!("{last} after {attempts} attempts"))
}

/// Waits `delay`, or less if shutdown's deadline comes first; `false` when
/// the deadline has passed and retrying should stop.
async fn sleep_unless_closed(inner: &Inner, delay: Duration) -> bool {
    let until = crate::config::units::tokio_instant_after(Instant::now(), delay);
    loop {
        let deadline = *lock(&inner.deadline);
        let wake_at = match deadline {
            Some(d) if d < until => d,
            _ => until,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = inner.wake.notified() => continue,
        }
        if inner.past_deadline() {
            return false;
        }
        if Instant::now() >= until {
            return true;
        }
    }
}

fn encode(batch: &[Bytes], format: BatchFormat) -> (Bytes, &'static str) {
    let size: usize = batch.iter().map(|b| b.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(size);
    match format {
        BatchFormat::Json => {
            out.push(b'[');
            for (i, e) in batch.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(e);
            }
            out.push(b']');
            (out.into(), "application/json")
        }
        BatchFormat::Ndjson => {
            for e in batch {
                out.extend_from_slice(e);
                out.push(b'\n');
            }
            (out.into(), "application/x-ndjson")
        }
    }
}

/// Worth trying again: the receiver was unavailable, overloaded or slow.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Delay before retry `n` (1-based): `base · 2ⁿ⁻¹`, capped at `cap`
/// (`max_backoff`), then drawn uniformly from its upper half so that many
/// senders do not retry in step; and at least what the receiver asked for
/// with `Retry-After`, up to `max_retry_after`, which may exceed
/// `max_backoff` (issue 17: a 429 asking for 2 s with `max_backoff = "1s"`
/// waits 2 s).
pub fn backoff(
    base: Duration,
    cap: Duration,
    n: u32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX));
    let d = exp.min(cap);
    let half = d / 2;
    let jittered = half + half.mul_f64(fastrand::f64());
    match retry_after {
        Some(asked) => jittered.max(asked.min(max_retry_after)),
        None => jittered,
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date, taken
/// as the time from `now` until then (zero when past). Anything else is
/// ignored.
fn parse_retry_after(v: &HeaderValue, now: std::time::SystemTime) -> Option<Duration> {
    let text = v.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

fn quote(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let cut: String = t.chars().take(QUOTED_BODY).collect();
    let more = if cut.len() < t.len() { "…" } else { "" };
    format!(": {cut}{more}")
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Writes each event of an undeliverable batch to the dead-letter log.
fn dead_letter(ctx: &SinkContext, sink: &str, batch: &[Bytes], message: &str) {
    let dl = &ctx.dead_letters;
    for json in batch {
        match serde_json::from_slice::<Event>(json) {
            // A failed write is counted, and the letters it could not write
            // are carried in the log, by the dead-letter log itself.
            Ok(event) => {
                let _ = dl.write_sink(&event, None, sink, message);
            }
            Err(e) => {
                crate::stats::Stats::add(&ctx.stats.sink_lines_unwritten, 1);
                tracing::error!(sink, error = %e, message, event = %String::from_utf8_lossy(json), "an undeliverable event is not an envelope; it is whole in this log line");
            }
        };
    }
    let _ = dl.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(1));
        let backoff = |base, cap, n, asked| backoff(base, cap, n, asked, Duration::from_secs(60));
        for _ in 0..100 {
            let d1 = backoff(base, cap, 1, None);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = backoff(base, cap, 3, None);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d9 = backoff(base, cap, 9, None);
            assert!(d9 >= Duration::from_millis(500) && d9 <= cap, "{d9:?}");
            assert!(backoff(base, cap, 40, None) <= cap, "no overflow past 2^32");
            let asked = backoff(base, cap, 1, Some(Duration::from_millis(700)));
            assert!(asked >= Duration::from_millis(700) && asked <= cap, "{asked:?}");
            let beyond = backoff(base, cap, 1, Some(Duration::from_secs(2)));
            assert_eq!(
                beyond,
                Duration::from_secs(2),
                "Retry-After beyond max_backoff is honoured"
            );
            assert_eq!(
                backoff(base, cap, 1, Some(Duration::from_secs(3600))),
                Duration::from_secs(60),
                "up to max_retry_after"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let parse = |s: &str| parse_retry_after(&HeaderValue::from_str(s).unwrap(), now);
        assert_eq!(parse("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:49:40 GMT"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:49:47 GMT"),
            Some(Duration::from_secs(10)),
            "RFC 850 form"
        );
        assert_eq!(
            parse("Sun Nov  6 08:50:37 1994"),
            Some(Duration::from_secs(60)),
            "asctime form"
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:00:00 GMT"),
            Some(Duration::ZERO),
            "in the past"
        );
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("soon"), None);
    }

    #[test]
    fn encodes_batches() {
        let b = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{\"b\":2}")];
        assert_eq!(encode(&b, BatchFormat::Json).0, &b"[{\"a\":1},{\"b\":2}]"[..]);
        assert_eq!(encode(&b, BatchFormat::Ndjson).0, &b"{\"a\":1}\n{\"b\":2}\n"[..]);
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(!retryable(StatusCode::BAD_REQUEST));
        assert_eq!(quote("  "), "");
        assert_eq!(quote("no"), ": no");
    }
}
