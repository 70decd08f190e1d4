//! Where routed events go besides handlers: one module per sink type behind
//! the [`Sink`] trait, opened from the type-tagged [`SinkConfig`].
//!
//! A sink type's settings and their validation live in `config/sink/`
//! (config is the bottom layer, so the sinks import their settings, never
//! the other way round); its writer lives here. Adding a sink type: its
//! settings in `config/sink/NAME.rs` with one arm in
//! `config::SinkConfig` (and in the `type` dispatch beside it), its writer
//! in `sinks/NAME.rs` (or a folder) with one arm in [`open`].
//!
//! [`SinkContext::settle`] is the sinks' half of issue 12's end-to-end
//! acknowledgement: the disk queue calls it before it releases handled
//! events, so that an event leaves the queue only once every sink took it
//! (file sinks fsynced, webhooks delivered or dead-lettered, dead letters
//! fsynced). It reaches every file and webhook sink opened in the daemon,
//! also those a reload replaced.

mod file;
pub mod http;
mod stdout;

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use crate::ndjson::SinkError;
pub use http::HttpSink;

use crate::config::SinkConfig;
use crate::dead_letter::DeadLetters;
use crate::ndjson::NdjsonFile;
use crate::telemetry::Stats;

/// A destination for routed events, shared by all workers.
pub trait Sink: Send + Sync {
    /// Appends one envelope (compact JSON, no newline). May buffer, and may
    /// write lines buffered earlier (by any worker): the error hands back
    /// every line that could not be written, which may or may not include
    /// this one.
    fn write(&self, event_json: &[u8]) -> Result<(), SinkError>;
    /// Pushes buffered lines to the operating system (or, for a webhook, to
    /// its delivery task); the error hands back those that could not be
    /// written.
    fn flush(&self) -> Result<(), SinkError>;
    /// Takes no more events and finishes with what it holds: blocks until
    /// everything written is where it goes, or, for sinks that deliver in
    /// the background, until `deadline` (then what is left is
    /// dead-lettered, never dropped, and the call returns once that is
    /// done). Called once workers have stopped.
    fn close(&self, deadline: Instant) -> Result<(), SinkError>;
    /// Makes what was flushed survive a power loss (fsync), for sinks
    /// that can; called before a tail checkpoint is written and at the end
    /// of a graceful stop.
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    /// Opens the sink's file again by its path (SIGHUP, reload: logrotate's
    /// `postrotate` convention); a no-op for sinks without one.
    fn reopen(&self) -> io::Result<()> {
        Ok(())
    }
}

/// What sinks that deliver in the background (webhooks) need from the
/// daemon: where undeliverable events go, counters, a runtime to run on.
#[derive(Clone)]
pub struct SinkContext {
    pub dead_letters: DeadLetters,
    pub stats: Arc<Stats>,
    pub runtime: tokio::runtime::Handle,
    /// Every webhook delivery started, also those of sinks a reload
    /// replaced (they finish delivering what they hold), so that shutdown
    /// can close them all and [`SinkContext::settle`] wait for them all.
    webhooks: Arc<Mutex<Vec<Weak<http::Delivery>>>>,
    /// Every file sink open, also those a reload replaced that a worker
    /// still holds, for [`SinkContext::settle`] to fsync (a file sink
    /// dropped fsyncs itself).
    files: Arc<Mutex<Vec<Weak<NdjsonFile>>>>,
    /// Files whose failed fsync was logged: an fsync failure is for good
    /// (see `NdjsonFile::sync`), logged once, counted each time.
    sync_failed: Arc<Mutex<HashSet<PathBuf>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The live entries of a registry, pruning the dead ones.
fn alive<T>(registry: &Mutex<Vec<Weak<T>>>) -> Vec<Arc<T>> {
    let mut all = lock(registry);
    all.retain(|w| w.strong_count() > 0);
    all.iter().filter_map(Weak::upgrade).collect()
}

impl SinkContext {
    pub fn new(dead_letters: DeadLetters, stats: Arc<Stats>, runtime: tokio::runtime::Handle) -> SinkContext {
        SinkContext {
            dead_letters,
            stats,
            runtime,
            webhooks: Arc::default(),
            files: Arc::default(),
            sync_failed: Arc::default(),
        }
    }

    fn register_webhook(&self, delivery: &Arc<http::Delivery>) {
        let mut all = lock(&self.webhooks);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(delivery));
    }

    fn register_file(&self, file: &Arc<NdjsonFile>) {
        let mut all = lock(&self.files);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(file));
    }

    /// Blocks until everything sinks and dead letters took before the call
    /// is durable or taken: every webhook (those of replaced sinks too) has
    /// had a 2xx for, or dead-lettered, each event written to it before the
    /// call; then every file sink and the dead-letter log are fsynced. What
    /// workers flushed before the call is covered (the disk queue calls
    /// this before it releases events handled before the call, issue 12).
    ///
    /// A webhook whose receiver is down keeps this waiting until it
    /// delivers, or gives the batch up (dead letters); at shutdown
    /// [`SinkContext::close`] ends every delivery, and with it the wait.
    ///
    /// Returns false when an fsync failed (logged once per file, counted
    /// in `sink_sync_errors_total`): what was written may not survive a
    /// power loss, and never will count as durable in this process (see
    /// `NdjsonFile::sync`), so the events must stay in the queue (handled
    /// again after a restart), as a tail checkpoint does not pass them.
    pub fn settle(&self) -> bool {
        for w in alive(&self.webhooks) {
            w.settle(self);
        }
        let mut durable = true;
        for file in alive(&self.files) {
            if let Err(e) = file.sync() {
                durable = false;
                self.sync_failed(file.path(), &e);
            }
        }
        // Letters buffered by others than workers (the queue's own) are
        // written first; one that cannot be is counted and carried whole in
        // the daemon's log by the dead-letter log itself.
        let _ = self.dead_letters.flush();
        if let Err(e) = self.dead_letters.sync() {
            durable = false;
            self.sync_failed(self.dead_letters.path(), &e);
        }
        durable
    }

    fn sync_failed(&self, path: &std::path::Path, e: &io::Error) {
        Stats::add(&self.stats.sink_sync_errors, 1);
        if lock(&self.sync_failed).insert(path.to_path_buf()) {
            tracing::error!(path = %path.display(), error = %e, "cannot fsync: what it took does not count as durable until a restart; the disk queue keeps those events");
        }
    }

    /// At shutdown, once workers have stopped: lets every webhook delivery
    /// (those of replaced sinks too) go on for up to `grace`, dead-letters
    /// the rest, and waits (blocking) until each has ended. All are told
    /// first, then waited for, so that they finish side by side.
    pub fn close(&self, grace: Duration) {
        let all = alive(&self.webhooks);
        let deadline = crate::config::units::tokio_instant_after(tokio::time::Instant::now(), grace);
        for w in &all {
            w.close(deadline);
        }
        for w in &all {
            // Past the deadline a task only writes dead letters; allow for that.
            if !w.wait(grace.saturating_add(http::DEAD_LETTER_SLACK)) {
                tracing::error!(
                    sink = w.name(),
                    "webhook delivery did not finish; undelivered events may be lost"
                );
            }
        }
    }
}

/// Opens a sink. `ctx` is needed by webhook sinks (the daemon has one; the
/// offline commands have none and open no webhooks).
pub fn open(name: &str, config: &SinkConfig, ctx: Option<&SinkContext>) -> io::Result<Box<dyn Sink>> {
    Ok(match config {
        SinkConfig::File(c) => Box::new(file::FileSink::open(name, c, ctx)?),
        SinkConfig::Stdout => Box::new(stdout::open(name, ctx)),
        SinkConfig::Http(c) => {
            let ctx = ctx.ok_or_else(|| io::Error::other("an http sink runs only inside the daemon"))?;
            Box::new(HttpSink::open(name, c, ctx)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use super::*;
    use crate::config::{BatchFormat, HttpSinkConfig};

    const EVENT: &[u8] = br#"{"id":"01J","name":"t.Event","source":"http","time":"2026-01-01T00:00:00Z"}"#;

    fn context(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> SinkContext {
        let stats = Arc::new(Stats::default());
        SinkContext::new(
            DeadLetters::open(&dir.join("dead.ndjson"), stats.clone()).unwrap(),
            stats,
            rt.handle().clone(),
        )
    }

    fn webhook(url: String) -> SinkConfig {
        SinkConfig::Http(HttpSinkConfig {
            url: url.parse().unwrap(),
            batch: 10,
            timeout: Duration::from_secs(1),
            retries: 1000,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(1),
            format: BatchFormat::Ndjson,
            headers: Vec::new(),
            max_pending: 100,
        })
    }

    /// A receiver answering 503 until `up` is set, then 200; the bodies it
    /// answered 200 to are sent on the channel.
    fn receiver(up: Arc<AtomicBool>) -> (String, std::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let status = if up.load(SeqCst) {
                    let _ = tx.send(body);
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        (url, rx)
    }

    /// Settling waits until what was written before the call is delivered
    /// (issue 12): not while the receiver answers 503, and at once after
    /// its 2xx; the batch being filled is handed over by the settle itself.
    #[test]
    fn settle_waits_until_the_receiver_took_what_was_written() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&rt, dir.path());
        let up = Arc::new(AtomicBool::new(false));
        let (url, delivered) = receiver(up.clone());
        let sink = open("hook", &webhook(url), Some(&ctx)).unwrap();
        sink.write(EVENT).unwrap();
        let settled = Arc::new(AtomicBool::new(false));
        let settling = std::thread::spawn({
            let (ctx, settled) = (ctx.clone(), settled.clone());
            move || {
                ctx.settle();
                settled.store(true, SeqCst);
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!settled.load(SeqCst), "settled while the receiver answered 503");
        up.store(true, SeqCst);
        settling.join().unwrap();
        let body = delivered.try_recv().expect("delivered before settle returned");
        assert_eq!(body, [EVENT, b"\n"].concat());
        // Nothing written since: settling again does not wait.
        let start = Instant::now();
        ctx.settle();
        assert!(start.elapsed() < Duration::from_secs(1));
        drop(sink);
    }

    /// A settle waiting on a receiver that is down ends at shutdown:
    /// `close` dead-letters what is left, and the wait is over.
    #[test]
    fn settle_ends_when_shutdown_dead_letters_the_rest() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(&rt, dir.path());
        let (url, _never) = receiver(Arc::new(AtomicBool::new(false)));
        let sink = open("hook", &webhook(url), Some(&ctx)).unwrap();
        sink.write(EVENT).unwrap();
        // A reload replaces the sink: its delivery goes on, and is settled.
        drop(sink);
        let settling = std::thread::spawn({
            let ctx = ctx.clone();
            move || ctx.settle()
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!settling.is_finished(), "settled while nothing was delivered");
        ctx.close(Duration::from_millis(100));
        settling.join().unwrap();
        let letters = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
        assert_eq!(letters.lines().count(), 1, "{letters}");
        assert!(letters.contains("\"kind\":\"sink_error\""), "{letters}");
    }
}
