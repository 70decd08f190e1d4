//! Wiring: config → runtime → plugins → sinks → dispatcher → HTTP, and the
//! graceful shutdown that drains every accepted event before exiting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::dispatch::{Dispatcher, Snapshot};
use crate::http::{self, AppState};
use crate::router::Router;
use crate::runtime::Runtime;
use crate::{registry, sinks};

/// A running daemon. Dropping it does not stop it: call [`Daemon::shutdown`].
pub struct Daemon {
    addr: SocketAddr,
    dispatcher: Arc<Dispatcher>,
    /// Tells the HTTP accept loop to stop.
    shutdown: broadcast::Sender<()>,
    server: JoinHandle<()>,
}

/// Builds the routing snapshot: compiles every plugin, opens every sink.
pub fn build_snapshot(rt: &Runtime, config: Config) -> anyhow::Result<Snapshot> {
    let plugins = registry::load_all(rt, &config)
        .with_context(|| format!("cannot list plugins in {}", config.plugins_dir.display()))?;
    let mut plugin_errors = BTreeMap::new();
    for e in &plugins.errors {
        tracing::error!(error = %e, "plugin not loaded");
        let name = match e {
            crate::runtime::PluginError::Read { name, .. }
            | crate::runtime::PluginError::Compile { name, .. }
            | crate::runtime::PluginError::Abi { name, .. }
            | crate::runtime::PluginError::Instantiate { name, .. } => name.clone(),
        };
        plugin_errors.insert(name, e.to_string());
    }
    for p in plugins.loaded.values() {
        tracing::info!(plugin = %p.name, kind = p.kind.as_str(), file = %p.path.display(), "plugin loaded");
    }
    let mut open = BTreeMap::new();
    for (name, sink) in &config.sinks {
        let s = sinks::open(sink).with_context(|| format!("sink {name:?}"))?;
        open.insert(name.clone(), Arc::from(s));
    }
    Ok(Snapshot {
        router: Router::new(config.routes.clone()),
        config: Arc::new(config),
        plugins: plugins.loaded,
        plugin_errors,
        sinks: open,
    })
}

impl Daemon {
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        let workers = config.server.workers;
        let rt = Runtime::new(workers)?;
        let dead_letters = DeadLetters::open(&config.dead_letter).context("dead letters")?;
        let listen = config.server.listen;
        let header_timeout = config.server.header_timeout;
        let max_body = config.server.max_body;
        let queue = config.server.queue;
        let snapshot = tokio::task::spawn_blocking(move || build_snapshot(&rt, config))
            .await
            .context("loading plugins panicked")??;
        let dispatcher =
            Dispatcher::start(snapshot, dead_letters, queue, workers).context("cannot start workers")?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = broadcast::channel(1);
        let state = Arc::new(AppState {
            dispatcher: dispatcher.clone(),
            max_body,
        });
        let server = tokio::spawn(http::serve(listener, state, header_timeout, rx));
        tracing::info!(%addr, workers, queue, "switchyard listening");
        Ok(Daemon {
            addr,
            dispatcher,
            shutdown,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Stops accepting, lets open requests finish, handles every queued
    /// event, flushes sinks and dead letters.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        tracing::info!("shutting down: no new connections; draining the queue");
        let _ = self.shutdown.send(());
        self.server.await.context("the HTTP server task panicked")?;
        let dispatcher = self.dispatcher.clone();
        tokio::task::spawn_blocking(move || dispatcher.close())
            .await
            .context("draining the queue panicked")?;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
