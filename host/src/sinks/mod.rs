//! Where routed events go besides handlers. One module per sink type behind
//! the small [`Sink`] trait.

mod file;
pub mod http;
mod stdout;

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub use file::NdjsonFile;
pub use http::HttpSink;
pub use stdout::Stdout;

use crate::config::SinkConfig;
use crate::dead_letter::DeadLetters;
use crate::telemetry::Stats;

/// A destination for routed events, shared by all workers.
pub trait Sink: Send + Sync {
    /// Appends one envelope (compact JSON, no newline). May buffer, and may
    /// write lines buffered earlier (by any worker): the error hands back
    /// every line that could not be written, which may or may not include
    /// this one.
    fn write(&self, event_json: &[u8]) -> Result<(), SinkError>;
    /// Pushes buffered lines to the operating system; the error hands back
    /// those that could not be written.
    fn flush(&self) -> Result<(), SinkError>;
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

/// A write or flush that failed, with the lines it could not write (each
/// one whole envelope, without its newline), so that the caller can put
/// them elsewhere: nothing accepted ends up nowhere (issue 17).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SinkError {
    pub error: io::Error,
    pub unwritten: Vec<Vec<u8>>,
}

impl SinkError {
    /// `line` could not be written, for `error`.
    pub fn one(error: io::Error, line: &[u8]) -> SinkError {
        SinkError {
            error,
            unwritten: vec![line.to_vec()],
        }
    }
}

/// What sinks that deliver in the background (webhooks) need from the
/// daemon: where undeliverable events go, counters, a runtime to run on.
#[derive(Clone)]
pub struct SinkContext {
    pub dead_letters: DeadLetters,
    pub stats: Arc<Stats>,
    pub runtime: tokio::runtime::Handle,
    /// Every webhook sink opened, also those a reload replaced (they finish
    /// delivering what they hold), so that shutdown can wait for all.
    webhooks: Arc<Mutex<Vec<Weak<http::Inner>>>>,
}

impl SinkContext {
    pub fn new(dead_letters: DeadLetters, stats: Arc<Stats>, runtime: tokio::runtime::Handle) -> SinkContext {
        SinkContext {
            dead_letters,
            stats,
            runtime,
            webhooks: Arc::default(),
        }
    }

    fn register_webhook(&self, inner: &Arc<http::Inner>) {
        let mut all = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(inner));
    }

    /// At shutdown, once workers have stopped: lets every webhook sink
    /// deliver for up to `grace`, dead-letters the rest, and waits
    /// (blocking) until each delivery task has ended.
    pub fn close(&self, grace: Duration) {
        let all: Vec<Arc<http::Inner>> = self
            .webhooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let deadline = crate::config::units::tokio_instant_after(tokio::time::Instant::now(), grace);
        for w in &all {
            w.close(deadline);
        }
        for w in &all {
            // Past the deadline a task only writes dead letters; allow for that.
            if !w.wait(grace.saturating_add(Duration::from_secs(30))) {
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
        SinkConfig::File { path } => {
            let file = NdjsonFile::open(path)?;
            match ctx {
                Some(ctx) => Box::new(file.counting(ctx.stats.metrics.sink(name).writes.clone())),
                None => Box::new(file),
            }
        }
        SinkConfig::Stdout => Box::new(Stdout),
        SinkConfig::Http(c) => {
            let ctx = ctx.ok_or_else(|| io::Error::other("an http sink runs only inside the daemon"))?;
            Box::new(HttpSink::open(name, c, ctx)?)
        }
    })
}
