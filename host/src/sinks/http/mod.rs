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
//! which writes fail and the pipeline's workers dead-letter those events instead.
//! At shutdown, delivery goes on for up to [`CLOSE_GRACE`]; whatever is
//! still undelivered then is dead-lettered, never dropped. Only a crash
//! (SIGKILL, power loss) loses the events still in memory.

mod deliver;
mod retry;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::{Sink, SinkContext, SinkError};
use crate::config::HttpSinkConfig;
use crate::telemetry::SinkMetrics;
use deliver::{dead_letter, deliver_all};

/// How long delivery may go on after shutdown begins.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// How long past its deadline a closed delivery is waited for: by then it
/// only writes dead letters.
pub const DEAD_LETTER_SLACK: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub struct HttpSink {
    inner: Arc<Delivery>,
    ctx: SinkContext,
}

/// State shared by the sink (workers) and its delivery task, which outlives
/// the sink when a reload replaces it (it finishes what it holds).
pub(super) struct Delivery {
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
        let inner = Arc::new(Delivery {
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

impl Delivery {
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

    /// Blocks until the delivery task has ended, or `timeout` passes;
    /// whether it ended.
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

    /// Hands over the batch being filled, lets delivery go on until
    /// `deadline`, and waits for the delivery task to end. Nothing is handed
    /// back: what is not delivered by then is dead-lettered by the task.
    fn close(&self, deadline: std::time::Instant) -> Result<(), SinkError> {
        self.inner.close(Instant::from_std(deadline));
        let wait = deadline
            .saturating_duration_since(std::time::Instant::now())
            .saturating_add(DEAD_LETTER_SLACK);
        if self.inner.wait(wait) {
            Ok(())
        } else {
            Err(SinkError {
                error: io::Error::other(format!(
                    "webhook delivery to {} did not finish; undelivered events may be lost",
                    self.inner.config.url
                )),
                unwritten: Vec::new(),
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BatchFormat;
    use crate::dead_letter::DeadLetters;
    use crate::telemetry::Stats;

    /// Closing with a deadline: a receiver that cannot be reached is retried
    /// until then, and the event is then dead-lettered (never dropped)
    /// before `close` returns.
    #[test]
    fn close_dead_letters_what_is_not_delivered_by_the_deadline() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let dl_path = dir.path().join("dead.ndjson");
        let ctx = SinkContext::new(
            DeadLetters::open(&dl_path, stats.clone()).unwrap(),
            stats.clone(),
            rt.handle().clone(),
        );
        // A port nothing listens on: every attempt fails at once.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = HttpSinkConfig {
            url: format!("http://{addr}/").parse().unwrap(),
            batch: 10,
            timeout: Duration::from_secs(1),
            retries: 1000,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
            format: BatchFormat::Json,
            headers: Vec::new(),
            max_pending: 10,
        };
        let sink = HttpSink::open("hook", &config, &ctx).unwrap();
        let event = br#"{"id":"01J","name":"t.Event","source":"http","time":"2026-01-01T00:00:00Z"}"#;
        sink.write(event).unwrap();
        let start = std::time::Instant::now();
        sink.close(start + Duration::from_millis(300)).unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(300),
            "retried until the deadline"
        );
        let letters = std::fs::read_to_string(&dl_path).unwrap();
        assert_eq!(letters.lines().count(), 1, "{letters}");
        assert!(letters.contains("\"kind\":\"sink_error\""), "{letters}");
        assert!(letters.contains("the daemon is shutting down"), "{letters}");
        assert_eq!(stats.sink_lines_unwritten.load(Relaxed), 1);
        // A closed sink delivers nothing more: what reaches it is
        // dead-lettered by the flush that would have handed it over.
        sink.write(event).unwrap();
        assert!(sink.flush().unwrap_err().unwritten.is_empty());
        let letters = std::fs::read_to_string(&dl_path).unwrap();
        assert!(letters.contains("closed before delivery"), "{letters}");
    }
}
