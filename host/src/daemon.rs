//! Wiring: config → runtime → plugins → sinks → dispatcher → HTTP, the
//! reload loop (watcher, SIGHUP, `POST /v1/reload`), and the graceful
//! shutdown that drains every accepted event before exiting.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::dispatch::{Dispatcher, Shared};
use crate::http::{self, AppState, Role};
use crate::reload::{self, LoadReport, Loader, SETTLE};
use crate::runtime::Runtime;
use crate::sinks::{self, SinkContext};
use crate::sources::tail::{self, TailHandle};
use crate::telemetry::Stats;
use crate::telemetry::StreamHub;
use crate::watcher::Watcher;

/// Asks the reload loop to load the config and plugins again.
pub struct ReloadRequest {
    /// Plugin files known to be completely written (see `watcher`).
    pub settled: BTreeSet<PathBuf>,
    /// Gets the outcome, for `POST /v1/reload`.
    pub reply: Option<oneshot::Sender<LoadReport>>,
}

/// A running daemon. Dropping it does not stop it: call [`Daemon::shutdown`].
pub struct Daemon {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// Tells the HTTP accept loop and the reload loop to stop.
    shutdown: broadcast::Sender<()>,
    server: JoinHandle<()>,
    admin_server: Option<JoinHandle<()>>,
    state: Arc<AppState>,
    /// What loading started: workers, reloads, watcher, sources.
    core: Core,
}

/// A daemon whose listeners are bound and answering while its plugins are
/// not loaded yet: `/healthz` says alive, `/readyz` says starting, ingest
/// answers 503. [`Starting::load`] makes it a [`Daemon`].
pub struct Starting {
    config: Config,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<AppState>,
    shutdown: broadcast::Sender<()>,
    server: JoinHandle<()>,
    admin_server: Option<JoinHandle<()>>,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
}

impl Daemon {
    /// Binds, loads, and serves: [`Daemon::bind`] then [`Starting::load`].
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        Daemon::bind(config).await?.load().await
    }

    /// Binds the listeners and serves the probes and metrics; nothing is
    /// loaded yet.
    ///
    /// SIGHUP is watched from here on, before anything is loaded: a SIGHUP
    /// while starting must not end the daemon (its default action; issue
    /// 16), and the reload it asks for waits in the queue until the reload
    /// loop runs, once started.
    pub async fn bind(config: Config) -> anyhow::Result<Starting> {
        let listen = config.server.listen;
        let limits = http::ConnLimits {
            header_timeout: config.server.header_timeout,
            max_connections: config.server.max_connections,
            send_timeout: config.server.send_timeout,
        };
        let stats = Arc::new(Stats::default());
        let stream = Arc::new(StreamHub::new(config.stream, &stats.metrics));
        let (shutdown, _) = broadcast::channel(1);
        let (reloads, reload_rx) = mpsc::unbounded_channel();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => {
                tokio::spawn(reload_on_sighup(hup, reloads.clone(), shutdown.subscribe()));
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP"),
        }
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let admin = match config.admin_listen {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a} ([admin] listen)"))?,
            ),
            None => None,
        };
        let state = Arc::new(AppState {
            dispatcher: OnceLock::new(),
            max_body: config.server.max_body,
            body_timeout: config.server.body_timeout,
            reloads,
            stats,
            stream,
            auth: config.auth.clone(),
            stopping: Default::default(),
        });
        let role = if admin.is_some() { Role::Ingest } else { Role::All };
        let server = tokio::spawn(http::serve(
            listener,
            state.clone(),
            role,
            limits,
            shutdown.subscribe(),
        ));
        let (admin_addr, admin_server) = match admin {
            Some(l) => {
                let a = l.local_addr()?;
                tracing::info!(admin = %a, "admin listener: metrics, listings, stream, reload, replay");
                let task = tokio::spawn(http::serve(
                    l,
                    state.clone(),
                    Role::Admin,
                    limits,
                    shutdown.subscribe(),
                ));
                (Some(a), Some(task))
            }
            None => (None, None),
        };
        tracing::info!(listen = %addr, "listening; loading plugins");
        Ok(Starting {
            config,
            addr,
            admin_addr,
            state,
            shutdown,
            server,
            admin_server,
            reload_rx,
        })
    }
}

impl Starting {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Loads the plugins, starts the workers, and begins taking events. On
    /// failure the listeners are closed again.
    pub async fn load(self) -> anyhow::Result<Daemon> {
        let Starting {
            config,
            addr,
            admin_addr,
            state,
            shutdown,
            server,
            admin_server,
            reload_rx,
        } = self;
        match load(config, addr, &state, &shutdown, reload_rx).await {
            Ok(core) => Ok(Daemon {
                addr,
                admin_addr,
                shutdown,
                server,
                admin_server,
                state,
                core,
            }),
            Err(e) => {
                let _ = shutdown.send(());
                let _ = server.await;
                if let Some(a) = admin_server {
                    let _ = a.await;
                }
                Err(e)
            }
        }
    }
}

/// What loading starts.
struct Core {
    dispatcher: Arc<Dispatcher>,
    /// Webhook sinks deliver in the background; shutdown waits for them.
    sink_context: SinkContext,
    reloader: JoinHandle<()>,
    reloads: mpsc::UnboundedSender<ReloadRequest>,
    /// Kept alive for as long as the daemon runs.
    _watcher: Option<Watcher>,
    /// `[[source.tail]]` threads; stopped before the dispatcher closes.
    tails: Vec<TailHandle>,
}

async fn load(
    config: Config,
    addr: SocketAddr,
    state: &Arc<AppState>,
    shutdown: &broadcast::Sender<()>,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
) -> anyhow::Result<Core> {
    let stats = state.stats.clone();
    let reloads = state.reloads.clone();
    let workers = config.server.workers;
    let rt = Runtime::new(workers)?;
    let dead_letters = DeadLetters::open(&config.dead_letter, stats.clone()).context("dead letters")?;
    let queue = config.server.queue;
    let plugins_dir = config.plugins_dir.clone();
    let sink_context = SinkContext::new(
        dead_letters.clone(),
        stats.clone(),
        tokio::runtime::Handle::current(),
    );
    // A compile that a reload stopped waiting for asks for another reload
    // when it ends, which swaps it in (issue 16).
    let compiled = reloads.clone();
    let loader = Arc::new(
        Loader::new(rt, &config.file)
            .with_sink_context(sink_context.clone())
            .with_compile_notify(Arc::new(move || {
                let _ = compiled.send(ReloadRequest {
                    settled: BTreeSet::new(),
                    reply: None,
                });
            })),
    );
    let first = loader.clone();
    let (snapshot, report) = tokio::task::spawn_blocking(move || first.build(config, None, None))
        .await
        .context("loading plugins panicked")??;
    reload::log_report(&report);
    let dispatcher = Dispatcher::start_with(
        snapshot,
        dead_letters,
        queue,
        workers,
        stats,
        state.stream.clone(),
    )
    .context("cannot start workers")?;
    let shared = dispatcher.shared().clone();
    count_load(&shared.stats, &report);
    let (config, d) = (shared.snapshot.load().config.clone(), dispatcher.clone());
    let tails = match tokio::task::spawn_blocking(move || start_tails(&config, &d))
        .await
        .context("starting the tail sources panicked")
        .and_then(|r| r)
    {
        Ok(tails) => tails,
        Err(e) => {
            let d = dispatcher.clone();
            let _ = tokio::task::spawn_blocking(move || d.close()).await;
            return Err(e);
        }
    };

    let reloader = tokio::spawn(reload_loop(
        loader.clone(),
        shared.clone(),
        reload_rx,
        reloads.clone(),
        shutdown.subscribe(),
    ));
    let config_file = shared.snapshot.load().config.file.clone();
    let watcher = match Watcher::start(&plugins_dir, &config_file, reloads.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for changes; reload with SIGHUP or POST /v1/reload");
            None
        }
    };

    if state.dispatcher.set(dispatcher.clone()).is_err() {
        anyhow::bail!("the daemon was loaded twice");
    }
    tracing::info!(%addr, workers, queue, "switchyard listening");
    Ok(Core {
        dispatcher,
        sink_context,
        reloader,
        reloads,
        _watcher: watcher,
        tails,
    })
}

/// Starts one thread per `[[source.tail]]`. Changes to these sections take
/// effect at the next start, not on reload.
fn start_tails(config: &Config, dispatcher: &Arc<Dispatcher>) -> anyhow::Result<Vec<TailHandle>> {
    let mut tails = Vec::new();
    for t in &config.tail_sources {
        // On error, the handles already made stop their threads when dropped.
        let handle = tail::spawn(t.clone(), &config.state_dir, dispatcher.clone())
            .with_context(|| format!("[[source.tail]] path = {:?}", t.path.display().to_string()))?;
        tails.push(handle);
    }
    Ok(tails)
}

impl Daemon {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `[admin] listen` address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.core.dispatcher
    }

    /// Reloads now and returns what happened.
    pub async fn reload(&self) -> anyhow::Result<LoadReport> {
        request_reload(&self.core.reloads).await
    }

    /// Stops accepting, lets open requests finish, handles every queued
    /// event, flushes and fsyncs sinks and dead letters. The [`Stopped`]
    /// says whether everything accepted was written where it belonged.
    pub async fn shutdown(self) -> anyhow::Result<Stopped> {
        tracing::info!("shutting down: no new connections; draining the queue");
        self.state.stopping.store(true, Relaxed);
        // Stream subscriptions never end by themselves: end them first, so
        // that the server's graceful drain does not wait for them.
        self.state.stream.close();
        let _ = self.shutdown.send(());
        self.server.await.context("the HTTP server task panicked")?;
        if let Some(admin) = self.admin_server {
            admin.await.context("the admin HTTP server task panicked")?;
        }
        let Core {
            dispatcher,
            sink_context: sinks,
            reloader,
            _watcher,
            tails,
            ..
        } = self.core;
        reloader.await.context("the reload task panicked")?;
        let sync_errors = tokio::task::spawn_blocking(move || {
            // Sources first: they stop reading, wait for their events in
            // flight and write their last checkpoints while workers run.
            for t in &tails {
                t.request_stop();
            }
            for t in tails {
                t.stop();
            }
            dispatcher.close();
            sinks.close(sinks::http::CLOSE_GRACE);
            sync_all(dispatcher.shared())
        })
        .await
        .context("draining the queue panicked")?;
        let stats = &self.state.stats;
        let stopped = Stopped {
            dead_letters_lost: stats.dead_letters_lost.load(Relaxed),
            sink_lines_unwritten: stats.sink_lines_unwritten.load(Relaxed),
            sync_errors,
        };
        if stopped.clean() {
            tracing::info!("shutdown complete");
        } else {
            tracing::error!(
                dead_letters_lost = stopped.dead_letters_lost,
                sink_lines_unwritten = stopped.sink_lines_unwritten,
                sync_errors = stopped.sync_errors,
                "shutdown complete, but not everything could be written: events a sink could not write are in the dead-letter log; dead letters it could not take are whole in this log"
            );
        }
        Ok(stopped)
    }
}

/// The exit code of `switchyard run` after a graceful stop during which
/// something accepted could not be written where it belonged ([`Stopped`]).
pub const EXIT_UNWRITTEN: u8 = 3;

/// What a graceful stop leaves behind, for the exit code (issue 17): counts
/// over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Dead letters the dead-letter log could not take; each is whole in
    /// the daemon's log (`dead_letters_lost_total`).
    pub dead_letters_lost: u64,
    /// Events sinks could not write, each dead-lettered as `sink_error`.
    pub sink_lines_unwritten: u64,
    /// File sinks and dead-letter log whose final fsync failed.
    pub sync_errors: u64,
}

impl Stopped {
    /// Everything accepted was written where it belonged.
    pub fn clean(&self) -> bool {
        self.dead_letters_lost == 0 && self.sink_lines_unwritten == 0 && self.sync_errors == 0
    }
}

/// Fsyncs every sink and the dead-letter log once nothing writes to them
/// any more; returns how many failed.
fn sync_all(shared: &Shared) -> u64 {
    let mut failed = 0;
    for (name, sink) in &shared.snapshot.load().sinks {
        if let Err(e) = sink.sync() {
            failed += 1;
            tracing::error!(sink = %name, error = %e, "cannot fsync the sink at shutdown");
        }
    }
    if let Err(e) = shared.dead_letters.sync() {
        failed += 1;
        Stats::add(&shared.stats.dead_letter_errors, 1);
        tracing::error!(path = %shared.dead_letters.path().display(), error = %e, "cannot fsync the dead-letter log at shutdown");
    }
    failed
}

/// Sends a reload request and waits for its outcome.
pub async fn request_reload(reloads: &mpsc::UnboundedSender<ReloadRequest>) -> anyhow::Result<LoadReport> {
    let (tx, rx) = oneshot::channel();
    reloads
        .send(ReloadRequest {
            settled: BTreeSet::new(),
            reply: Some(tx),
        })
        .map_err(|_| anyhow::anyhow!("the daemon is shutting down"))?;
    rx.await.context("the reload loop stopped")
}

fn count_load(stats: &Stats, report: &LoadReport) {
    Stats::add(&stats.plugins_compiled, report.compiled as u64);
    Stats::add(&stats.plugins_from_cache, report.from_cache as u64);
    Stats::add(&stats.plugin_load_errors, report.failed.len() as u64);
}

/// Runs reloads one at a time; requests that arrive meanwhile share the next one.
async fn reload_loop(
    loader: Arc<Loader>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ReloadRequest>,
    again: mpsc::UnboundedSender<ReloadRequest>,
    mut shutdown: broadcast::Receiver<()>,
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
        Stats::add(&shared.stats.reloads, 1);
        if !report.config_errors.is_empty() {
            Stats::add(&shared.stats.reload_failures, 1);
        }
        count_load(&shared.stats, &report);
        if !report.deferred.is_empty() {
            let again = again.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE).await;
                let _ = again.send(ReloadRequest {
                    settled: BTreeSet::new(),
                    reply: None,
                });
            });
        }
        for r in batch {
            if let Some(reply) = r.reply {
                let _ = reply.send(report.clone());
            }
        }
    }
}

async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    reloads: mpsc::UnboundedSender<ReloadRequest>,
    mut shutdown: broadcast::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading");
                let _ = reloads.send(ReloadRequest { settled: BTreeSet::new(), reply: None });
            }
            _ = shutdown.recv() => return,
        }
    }
}

/// The process's signal handlers, installed before anything else happens
/// (issue 16): from then on SIGHUP, SIGTERM and SIGINT are never the
/// default action (ending the process), whatever stage start-up is at.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    /// Only held: its handler, once installed, stays for the process's
    /// life; [`Daemon::bind`] watches its own stream to reload.
    _hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a Tokio runtime.
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            _hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    /// Resolves when SIGINT or SIGTERM arrives (or arrived since install).
    pub async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
