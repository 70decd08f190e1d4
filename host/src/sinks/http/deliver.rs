//! The delivery task of one webhook sink: batches sent one at a time, in
//! order, each retried (see [`super::retry`]) until delivered or given up;
//! what is given up is dead-lettered here.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::Request;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::retry::{backoff, parse_retry_after, retryable};
use super::{lock, Batch, Delivery, HttpClient};
use crate::config::BatchFormat;
use crate::event::Event;
use crate::sinks::SinkContext;

/// Bytes of a refusing receiver's answer quoted in the dead letter.
const QUOTED_BODY: usize = 300;

pub(super) async fn deliver_all(
    inner: Arc<Delivery>,
    mut rx: mpsc::UnboundedReceiver<Batch>,
    client: HttpClient,
    ctx: SinkContext,
) {
    while let Some(Batch { lines: batch, end }) = rx.recv().await {
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
        inner.taken(end);
    }
    inner.finished();
}

/// Sends one batch, retrying; the error says why it was given up.
async fn deliver(inner: &Delivery, client: &HttpClient, batch: &[Bytes]) -> Result<(), String> {
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
async fn sleep_unless_closed(inner: &Delivery, delay: Duration) -> bool {
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
pub(super) fn dead_letter(ctx: &SinkContext, sink: &str, batch: &[Bytes], message: &str) {
    let dl = &ctx.dead_letters;
    for json in batch {
        match serde_json::from_slice::<Event>(json) {
            // A failed write is counted, and the letters it could not write
            // are carried in the log, by the dead-letter log itself.
            Ok(event) => {
                let _ = dl.write_sink(&event, None, sink, message);
            }
            Err(e) => {
                crate::telemetry::Stats::add(&ctx.stats.sink_lines_unwritten, 1);
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
    fn encodes_batches() {
        let b = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{\"b\":2}")];
        assert_eq!(encode(&b, BatchFormat::Json).0, &b"[{\"a\":1},{\"b\":2}]"[..]);
        assert_eq!(encode(&b, BatchFormat::Ndjson).0, &b"{\"a\":1}\n{\"b\":2}\n"[..]);
        assert_eq!(quote("  "), "");
        assert_eq!(quote("no"), ": no");
    }
}
