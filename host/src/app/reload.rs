//! Loading and reloading: a complete snapshot (config, plugins, sinks)
//! built off the hot path, reusing what has not changed; the requests
//! (watcher, SIGHUP, compiles that ended, `POST /v1/reload`), the loop that
//! runs them one at a time, and the reload itself: the config read again
//! and a new snapshot swapped in whole; events already running finish on
//! the old one. If the config is invalid the old snapshot keeps serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use super::plugins::{PluginLoader, SETTLE};
use crate::config::Config;
use crate::http::{ReloadOutcome, Reloads};
use crate::pipeline::{Shared, Snapshot, Waiting};
use crate::router::Router;
use crate::shutdown::Shutdown;
use crate::sinks::{self, Sink, SinkContext};
use crate::telemetry::Stats;

/// Builds snapshots; one per daemon, shared by the start and every reload.
pub struct Loader {
    plugins: PluginLoader,
    /// The config file a reload reads again.
    config_path: PathBuf,
    /// One load at a time: reloads from the watcher, SIGHUP and the API queue up.
    serial: Mutex<()>,
    /// For sinks that deliver in the background (webhooks).
    sink_context: SinkContext,
    /// The config the daemon started with: settings only a restart applies
    /// are told against it, not against the last reload, so that every
    /// reload reports them until the daemon restarts.
    started: OnceLock<Arc<Config>>,
}

impl Loader {
    pub fn new(plugins: PluginLoader, config_path: &Path, sink_context: SinkContext) -> Loader {
        Loader {
            plugins,
            config_path: config_path.to_path_buf(),
            serial: Mutex::new(()),
            sink_context,
            started: OnceLock::new(),
        }
    }

    /// Builds a snapshot from `config`, reusing unchanged plugins and sinks
    /// of `previous`. `settled` are files known to be completely written;
    /// `None` takes every file as it is (at start, nothing is being swapped).
    /// Errors: the plugins folder cannot be listed, a sink cannot be opened.
    pub fn build(
        &self,
        config: Config,
        previous: Option<&Snapshot>,
        settled: Option<&BTreeSet<PathBuf>>,
    ) -> anyhow::Result<(Snapshot, LoadReport)> {
        let mut report = LoadReport {
            warnings: config.warnings.to_string().lines().map(str::to_string).collect(),
            ..LoadReport::default()
        };
        let plugins = self.plugins.load(&config, previous, settled, &mut report)?;
        let mut open: BTreeMap<String, Arc<dyn Sink>> = BTreeMap::new();
        for (name, sink) in &config.sinks {
            let reuse = previous
                .filter(|p| p.config.sinks.get(name) == Some(sink))
                .and_then(|p| p.sinks.get(name));
            let s = match reuse {
                Some(s) => s.clone(),
                None => Arc::from(
                    sinks::open(name, sink, Some(&self.sink_context))
                        .with_context(|| format!("sink {name:?}"))?,
                ),
            };
            open.insert(name.clone(), s);
        }
        let snapshot = Snapshot {
            router: Router::new(config.routes.clone()),
            config: Arc::new(config),
            plugins: plugins.loaded,
            plugin_errors: plugins.errors,
            sinks: open,
        };
        if previous.is_none() {
            let _ = self.started.set(snapshot.config.clone());
        }
        Ok((snapshot, report))
    }

    /// Reads the config file and the plugins again and swaps the result in.
    pub fn reload(&self, shared: &Shared, settled: &BTreeSet<PathBuf>) -> LoadReport {
        let _one_at_a_time = self.serial.lock().unwrap_or_else(|p| p.into_inner());
        let previous = shared.snapshot();
        shared.reopen_files();
        let config = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(errors) => {
                let report = LoadReport {
                    config_errors: errors.to_string().lines().map(str::to_string).collect(),
                    ..LoadReport::default()
                };
                for e in &report.config_errors {
                    tracing::error!(error = %e, "config not reloaded; the previous one keeps serving");
                }
                return report;
            }
        };
        let started = self.started.get().unwrap_or(&previous.config);
        let restart_only = crate::config::restart_only_changes(started, &config);
        for setting in &restart_only {
            tracing::warn!(setting = %setting, "changed in the config: it takes effect at the next restart");
        }
        match self.build(config, Some(&previous), Some(settled)) {
            Ok((snapshot, mut report)) => {
                shared.replace(snapshot);
                report.swapped = true;
                report.restart_only = restart_only;
                log_report(&report);
                report
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload failed; the previous config and plugins keep serving");
                LoadReport {
                    config_errors: vec![format!("{e:#}")],
                    ..LoadReport::default()
                }
            }
        }
    }
}

/// Asks the reload loop to load the config and plugins again.
pub struct ReloadRequest {
    /// Plugin files known to be completely written (see `watcher`).
    pub settled: BTreeSet<PathBuf>,
    /// Gets the outcome, for `POST /v1/reload`.
    pub reply: Option<oneshot::Sender<LoadReport>>,
}

impl ReloadRequest {
    /// A request nobody waits on, with no file known complete.
    pub fn plain() -> ReloadRequest {
        ReloadRequest {
            settled: BTreeSet::new(),
            reply: None,
        }
    }
}

/// Where reload requests go: the reload loop's queue.
#[derive(Clone)]
pub struct ReloadSender(pub mpsc::UnboundedSender<ReloadRequest>);

impl ReloadSender {
    /// Sends a reload request and waits for its outcome. Errors: the
    /// daemon is shutting down.
    pub async fn request(&self) -> anyhow::Result<LoadReport> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(ReloadRequest {
                settled: BTreeSet::new(),
                reply: Some(tx),
            })
            .map_err(|_| anyhow::anyhow!("the daemon is shutting down"))?;
        rx.await.context("the reload loop stopped")
    }

    /// Asks for a reload without waiting for it.
    pub fn send(&self, request: ReloadRequest) -> Result<(), ReloadRequest> {
        self.0.send(request).map_err(|e| e.0)
    }
}

/// `POST /v1/reload` reloads through the loop like every other request.
impl Reloads for ReloadSender {
    fn reload(&self) -> Waiting<'_, anyhow::Result<ReloadOutcome>> {
        Box::pin(async move {
            let report = self.request().await?;
            Ok(ReloadOutcome {
                ok: report.ok(),
                report: serde_json::to_value(&report).unwrap_or_default(),
            })
        })
    }
}

/// What one load did, for logs, counters and `POST /v1/reload`.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LoadReport {
    /// Every config error, one per line; the old snapshot kept serving.
    pub config_errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Plugins loaded or replaced by a new version.
    pub loaded: Vec<String>,
    /// Plugins whose file is gone.
    pub unloaded: Vec<String>,
    /// Plugins that failed to load (their previous version, if any, serves on).
    pub failed: BTreeMap<String, String>,
    /// Changed files left for a later load because they may still be written.
    pub deferred: Vec<String>,
    /// Plugins still compiling in the background, with how far along: their
    /// previous version (if any) keeps serving, and a reload follows when
    /// the compile ends (issue 16).
    pub compiling: BTreeMap<String, String>,
    pub compiled: usize,
    pub from_cache: usize,
    pub reused: usize,
    /// Whether a new snapshot was swapped in.
    pub swapped: bool,
    /// Settings that differ from those the daemon started with and that
    /// only a restart applies (`server.workers`, `stream.buffer`, ...: see
    /// [`crate::config::restart_only_changes`]; issue 11).
    pub restart_only: Vec<String>,
}

impl LoadReport {
    pub fn ok(&self) -> bool {
        self.config_errors.is_empty() && self.failed.is_empty()
    }
}

/// Adds what a load did to the counters.
pub(super) fn count_load(stats: &Stats, report: &LoadReport) {
    Stats::add(&stats.plugins_compiled, report.compiled as u64);
    Stats::add(&stats.plugins_from_cache, report.from_cache as u64);
    Stats::add(&stats.plugin_load_errors, report.failed.len() as u64);
}

/// Runs reloads one at a time until shutdown; requests that arrive
/// meanwhile share the next one.
pub(super) async fn reload_loop(
    loader: Arc<Loader>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ReloadRequest>,
    again: ReloadSender,
    mut shutdown: Shutdown,
) {
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r { Some(r) => r, None => return },
            _ = shutdown.recv() => return,
        };
        let mut batch = vec![first];
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        let settled: BTreeSet<PathBuf> = batch.iter().flat_map(|r| r.settled.iter().cloned()).collect();
        let (l, s) = (loader.clone(), shared.clone());
        let report = match tokio::task::spawn_blocking(move || l.reload(&s, &settled)).await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "reload panicked; the previous config and plugins keep serving");
                LoadReport {
                    config_errors: vec![format!("reload panicked: {e}")],
                    ..LoadReport::default()
                }
            }
        };
        let stats = shared.stats();
        Stats::add(&stats.reloads, 1);
        if !report.config_errors.is_empty() {
            Stats::add(&stats.reload_failures, 1);
        }
        count_load(stats, &report);
        if !report.deferred.is_empty() {
            let again = again.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE).await;
                let _ = again.send(ReloadRequest::plain());
            });
        }
        for r in batch {
            if let Some(reply) = r.reply {
                let _ = reply.send(report.clone());
            }
        }
    }
}

pub fn log_report(report: &LoadReport) {
    for w in &report.warnings {
        tracing::warn!(warning = %w, "config");
    }
    for (name, e) in &report.failed {
        tracing::error!(plugin = %name, error = %e, "plugin not loaded; its previous version, if any, keeps serving");
    }
    for name in &report.loaded {
        tracing::info!(plugin = %name, "plugin loaded");
    }
    for name in &report.unloaded {
        tracing::info!(plugin = %name, "plugin unloaded: its file is gone");
    }
    for name in &report.deferred {
        tracing::info!(plugin = %name, "plugin file changed moments ago; loading it once it settles");
    }
    for (name, how) in &report.compiling {
        tracing::info!(plugin = %name, status = %how, "plugin still compiling; its previous version, if any, keeps serving");
    }
    tracing::info!(
        compiled = report.compiled,
        from_cache = report.from_cache,
        reused = report.reused,
        "plugins ready"
    );
}
