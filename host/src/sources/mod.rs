//! Event sources besides HTTP ingest, behind one [`Source`] trait. Each
//! runs on a thread of its own, hands events to the [`Submitter`] (waiting
//! for room: its backpressure), learns through it when they are handled
//! (to advance its position), and stops on the daemon's [`Shutdown`]
//! before the queue closes, so that what it submitted is handled and its
//! position saved.
//!
//! A new kind of source is one folder here (with its config type in
//! `config`) and one arm in [`start_all`].

pub mod tail;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;

use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::pipeline::{Shared, Submitter};
use crate::shutdown::Shutdown;
use crate::telemetry::Stats;

/// What a source is given to run.
#[derive(Clone)]
pub struct SourceContext {
    /// Where events go; says when they are accepted and handled.
    pub submitter: Arc<dyn Submitter>,
    /// For what is read but is not an event (a line that does not parse).
    pub dead_letters: DeadLetters,
    pub stats: Arc<Stats>,
    /// What handled events were written to (sinks, dead letters): made
    /// durable before a source records a position past them.
    pub outputs: Arc<Shared>,
    /// `[state] dir`: where sources keep their positions.
    pub state_dir: PathBuf,
}

/// One running source of events.
pub trait Source: Send + 'static {
    /// The source, for logs: its kind and what it reads.
    fn describe(&self) -> String;

    /// Reads and submits until `shutdown` begins; then waits for what it
    /// submitted to be handled, saves its position and returns, dropping
    /// `shutdown` last. Blocking: runs on a thread of its own.
    fn run(self: Box<Self>, shutdown: Shutdown);
}

/// A source's thread.
pub struct Running {
    name: String,
    thread: JoinHandle<()>,
}

impl Running {
    /// Waits for the thread to end (after shutdown), logging a panic. Blocking.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!(source = %self.name, "the source thread panicked");
        }
    }
}

/// Starts `source` on a thread of its own. Errors: the thread cannot start.
pub fn spawn(source: Box<dyn Source>, shutdown: Shutdown) -> std::io::Result<Running> {
    let name = source.describe();
    let thread = std::thread::Builder::new()
        .name("source".into())
        .spawn(move || source.run(shutdown))?;
    Ok(Running { name, thread })
}

/// Starts every source `config` declares, each positioned before this
/// returns. Changes to these sections take effect at the next start, not on
/// reload. On error, the sources already started stop when `shutdown`
/// fires.
pub fn start_all(config: &Config, ctx: &SourceContext, shutdown: &Shutdown) -> anyhow::Result<Vec<Running>> {
    let mut running = Vec::new();
    for t in &config.tail_sources {
        let what = || format!("[[source.tail]] path = {:?}", t.path.display().to_string());
        let source = tail::open(t.clone(), ctx).with_context(what)?;
        running.push(spawn(Box::new(source), shutdown.clone()).with_context(what)?);
    }
    Ok(running)
}
