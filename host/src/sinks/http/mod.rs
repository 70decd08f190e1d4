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
//! still undelivered then is dead-lettered, never dropped.
//!
//! Settling (issue 12, end-to-end acknowledgement): every event written
//! gets a sequence number, under the same lock that hands batches to the
//! delivery task, so batches reach the task, and complete, in that order;
//! the task records the number past the last event of each batch it
//! delivered or dead-lettered. [`Delivery::settle`] blocks until that mark
//! passes what was written before the call (or the task has ended). The
//! disk queue releases an event only once its sinks settled, so a crash
//! (SIGKILL) loses nothing a webhook held: the event is handled again after
//! the restart. With the memory queue, a crash loses what is still here.

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
    /// The batch being filled by workers. Batches are handed to the task
    /// under this lock, so they reach it in the order of their events.
    batch: Mutex<Filling>,
    /// `None` once closed: the delivery task finishes what it has and ends.
    tx: Mutex<Option<mpsc::UnboundedSender<Batch>>>,
    /// Events written and not yet delivered or dead-lettered.
    pending: AtomicUsize,
    metrics: Arc<SinkMetrics>,
    /// Set at shutdown: stop retrying at `deadline`.
    closing: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    wake: Notify,
    /// How far the delivery task got, for [`Delivery::settle`] and
    /// [`Delivery::wait`].
    progress: (Mutex<Progress>, Condvar),
}

/// The batch workers are filling.
struct Filling {
    lines: Vec<Bytes>,
    /// Events ever written to this sink: the sequence number the next one
    /// gets.
    written: u64,
}

/// A batch handed to the delivery task.
pub(super) struct Batch {
    lines: Vec<Bytes>,
    /// The sequence number past its last event.
    end: u64,
}

#[derive(Default)]
struct Progress {
    /// Every event numbered below this was delivered or dead-lettered.
    taken: u64,
    /// The delivery task has ended: nothing it held is left.
    finished: bool,
}

impl HttpSink {
    pub fn open(name: &str, config: &HttpSinkConfig, ctx: &SinkContext) -> io::Result<HttpSink> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Delivery {
            name: name.to_string(),
            config: config.clone(),
            batch: Mutex::new(Filling {
                lines: Vec::with_capacity(config.batch),
                written: 0,
            }),
            tx: Mutex::new(Some(tx)),
            pending: AtomicUsize::new(0),
            metrics: ctx.stats.metrics.sink(name),
            closing: AtomicBool::new(false),
            deadline: Mutex::new(None),
            wake: Notify::new(),
            progress: (Mutex::new(Progress::default()), Condvar::new()),
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
    /// Hands the batch being filled to the delivery task (under its lock,
    /// which keeps batches in order); gives the events back if closed.
    fn hand_over(&self, filling: &mut Filling) -> Result<(), Vec<Bytes>> {
        if filling.lines.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            lines: std::mem::replace(&mut filling.lines, Vec::with_capacity(self.config.batch)),
            end: filling.written,
        };
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(batch).map_err(|e| e.0.lines),
            None => Err(batch.lines),
        }
    }

    /// Stops accepting; delivery goes on until `deadline`.
    pub(super) fn close(&self, deadline: Instant) {
        let mut filling = lock(&self.batch);
        // Cannot fail: the sender is still there (or was taken by a drop,
        // which handed the batch over first).
        let _ = self.hand_over(&mut filling);
        *lock(&self.deadline) = Some(deadline);
        self.closing.store(true, Relaxed);
        lock(&self.tx).take();
        drop(filling);
        self.wake.notify_one();
    }

    /// Blocks until every event written before the call was delivered or
    /// dead-lettered, or the delivery task has ended (at shutdown, after
    /// [`SinkContext::close`], which dead-letters what is left; or once a
    /// sink a reload replaced has delivered what it held). Hands over the
    /// batch being filled first. Events that can no longer reach the task
    /// (closed) are dead-lettered here.
    pub(super) fn settle(&self, ctx: &SinkContext) {
        let upto = {
            let mut filling = lock(&self.batch);
            let handed = self.hand_over(&mut filling);
            let upto = filling.written;
            drop(filling);
            if let Err(back) = handed {
                self.refuse(ctx, back, 0);
            }
            upto
        };
        let (progress, cv) = &self.progress;
        let _done = cv
            .wait_while(lock(progress), |p| p.taken < upto && !p.finished)
            .unwrap_or_else(|p| p.into_inner());
    }

    /// The delivery task is done with every event numbered below `end`.
    fn taken(&self, end: u64) {
        let (progress, cv) = &self.progress;
        let mut p = lock(progress);
        p.taken = p.taken.max(end);
        cv.notify_all();
    }

    /// The delivery task has ended.
    fn finished(&self) {
        let (progress, cv) = &self.progress;
        lock(progress).finished = true;
        cv.notify_all();
    }

    /// Blocks until the delivery task has ended, or `timeout` passes;
    /// whether it ended.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let (progress, cv) = &self.progress;
        let (p, _) = cv
            .wait_timeout_while(lock(progress), timeout, |p| !p.finished)
            .unwrap_or_else(|p| p.into_inner());
        p.finished
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn past_deadline(&self) -> bool {
        self.closing.load(Relaxed) && lock(&self.deadline).is_some_and(|d| Instant::now() >= d)
    }

    /// Events that cannot reach the delivery task (the sink was closed,
    /// which only happens once workers have stopped): `back`, already
    /// accepted, go to dead letters here; `also` more are left to the
    /// caller.
    fn refuse(&self, ctx: &SinkContext, back: Vec<Bytes>, also: usize) -> io::Error {
        let n = back.len() + also;
        self.pending.fetch_sub(n, Relaxed);
        self.metrics.pending.dec_by(n as i64);
        self.metrics.errors.inc_by(back.len() as u64);
        dead_letter(
            ctx,
            &self.name,
            &back,
            "the webhook sink was closed before delivery",
        );
        io::Error::other("the webhook sink is closed")
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
        let handed = {
            let mut filling = lock(&inner.batch);
            filling.lines.push(Bytes::copy_from_slice(event_json));
            filling.written += 1;
            inner.pending.fetch_add(1, Relaxed);
            inner.metrics.pending.inc();
            if filling.lines.len() >= inner.config.batch {
                inner.hand_over(&mut filling)
            } else {
                Ok(())
            }
        };
        if let Err(mut back) = handed {
            // This event is the last one; the caller dead-letters it.
            back.pop();
            let error = inner.refuse(&self.ctx, back, 1);
            return Err(SinkError::one(error, event_json));
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), SinkError> {
        let handed = self.inner.hand_over(&mut lock(&self.inner.batch));
        match handed {
            Ok(()) => Ok(()),
            // Already dead-lettered: nothing is handed back.
            Err(back) => Err(SinkError {
                error: self.inner.refuse(&self.ctx, back, 0),
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

impl Drop for HttpSink {
    /// A sink replaced by a reload: its delivery task finishes what it has.
    fn drop(&mut self) {
        let mut filling = lock(&self.inner.batch);
        let handed = self.inner.hand_over(&mut filling);
        lock(&self.inner.tx).take();
        drop(filling);
        if let Err(back) = handed {
            self.inner.refuse(&self.ctx, back, 0);
        }
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
