//! What the workers share: the [`Snapshot`] (config, router, plugins,
//! sinks; swapped whole on reload, so an event runs on one version of
//! everything) and the outputs every event may write to (dead letters,
//! counters, the live stream). Other modules reach it only through the
//! methods of [`Shared`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::router::Router;
use crate::runtime::Plugin;
use crate::sinks::Sink;
use crate::telemetry::Stats;
use crate::telemetry::StreamHub;

/// Everything routing needs, swapped whole on reload.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub router: Router,
    pub plugins: BTreeMap<String, Arc<Plugin>>,
    /// Plugin files that did not load, with the reason, for listings.
    pub plugin_errors: BTreeMap<String, String>,
    pub sinks: BTreeMap<String, Arc<dyn Sink>>,
}

/// State the workers share.
pub struct Shared {
    snapshot: ArcSwap<Snapshot>,
    pub(super) dead_letters: DeadLetters,
    pub(super) stats: Arc<Stats>,
    /// Live subscribers of `GET /v1/stream`.
    pub(super) stream: Arc<StreamHub>,
}

impl Shared {
    /// Shares `snapshot`; its plugins', routes' and sinks' series exist
    /// from now on (reading 0 rather than being absent).
    pub(super) fn new(
        snapshot: Snapshot,
        dead_letters: DeadLetters,
        stats: Arc<Stats>,
        stream: Arc<StreamHub>,
    ) -> Shared {
        for name in snapshot.plugins.keys() {
            stats.metrics.plugin(name);
        }
        for route in snapshot.router.routes() {
            stats.metrics.route(&route.name);
        }
        for name in snapshot.sinks.keys() {
            stats.metrics.sink(name);
        }
        Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            dead_letters,
            stats,
            stream,
        }
    }

    /// The snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Swaps `snapshot` in whole: events already running finish on the old one.
    pub fn replace(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Fsyncs every sink and the dead-letter log: what handled events
    /// wrote is then durable. Stops at the first failure, naming it.
    pub fn sync_outputs(&self) -> std::io::Result<()> {
        for (name, sink) in &self.snapshot.load().sinks {
            sink.sync()
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot fsync sink {name:?}: {e}")))?;
        }
        self.dead_letters
            .sync()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot fsync the dead-letter log: {e}")))
    }

    /// Closes every serving sink once the workers have stopped
    /// ([`Sink::close`]): what a sink still holds is written, or delivered
    /// until `deadline` (webhooks, which dead-letter the rest). Lines a
    /// sink hands back unwritten go to dead letters as `sink_error`.
    pub fn close_sinks(&self, deadline: std::time::Instant) {
        for (name, sink) in &self.snapshot.load().sinks {
            if let Err(e) = sink.close(deadline) {
                let metrics = self.stats.metrics.sink(name);
                super::worker::divert(self, &metrics, name, None, e);
            }
        }
    }

    /// Fsyncs every sink and the dead-letter log once nothing writes to
    /// them any more (at shutdown), logging each failure; returns how many
    /// failed.
    pub fn sync_all(&self) -> u64 {
        let mut failed = 0;
        for (name, sink) in &self.snapshot.load().sinks {
            if let Err(e) = sink.sync() {
                failed += 1;
                tracing::error!(sink = %name, error = %e, "cannot fsync the sink at shutdown");
            }
        }
        if let Err(e) = self.dead_letters.sync() {
            failed += 1;
            Stats::add(&self.stats.dead_letter_errors, 1);
            tracing::error!(path = %self.dead_letters.path().display(), error = %e, "cannot fsync the dead-letter log at shutdown");
        }
        failed
    }

    /// Opens file sinks and the dead-letter log again by their paths,
    /// whatever the config says: SIGHUP after logrotate renamed them (its
    /// `postrotate` convention) must make them write to new files even when
    /// the config is invalid or unchanged (issue 17).
    pub fn reopen_files(&self) {
        for (name, sink) in &self.snapshot.load().sinks {
            if let Err(e) = sink.reopen() {
                tracing::error!(sink = %name, error = %e, "cannot reopen the sink's file; it keeps writing to the one it has");
            }
        }
        if let Err(e) = self.dead_letters.reopen() {
            tracing::error!(path = %self.dead_letters.path().display(), error = %e, "cannot reopen the dead-letter log; it keeps writing to the one it has");
        }
    }
}
