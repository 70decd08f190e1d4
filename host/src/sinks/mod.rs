//! Where routed events go besides handlers: one module per sink type behind
//! the [`Sink`] trait, opened from the type-tagged [`SinkConfig`].
//!
//! A sink type's settings and their validation live in `config/sink/`
//! (config is the bottom layer, so the sinks import their settings, never
//! the other way round); its writer lives here. Adding a sink type: its
//! settings in `config/sink/NAME.rs` with one arm in
//! `config::SinkConfig` (and in the `type` dispatch beside it), its writer
//! in `sinks/NAME.rs` (or a folder) with one arm in [`open`].

mod file;
pub mod http;
mod stdout;

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use crate::ndjson::SinkError;
pub use http::HttpSink;

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
    /// can close them all.
    webhooks: Arc<Mutex<Vec<Weak<http::Delivery>>>>,
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

    fn register_webhook(&self, delivery: &Arc<http::Delivery>) {
        let mut all = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(delivery));
    }

    /// At shutdown, once workers have stopped: lets every webhook delivery
    /// (those of replaced sinks too) go on for up to `grace`, dead-letters
    /// the rest, and waits (blocking) until each has ended. All are told
    /// first, then waited for, so that they finish side by side.
    pub fn close(&self, grace: Duration) {
        let all: Vec<Arc<http::Delivery>> = self
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
        SinkConfig::File(c) => Box::new(file::open(name, c, ctx)?),
        SinkConfig::Stdout => Box::new(stdout::open(name, ctx)),
        SinkConfig::Http(c) => {
            let ctx = ctx.ok_or_else(|| io::Error::other("an http sink runs only inside the daemon"))?;
            Box::new(HttpSink::open(name, c, ctx)?)
        }
    })
}
