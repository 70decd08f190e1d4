//! The daemon's lifecycle: bind the listeners (probes answer at once),
//! load config → runtime → plugins → sinks → pipeline → sources, serve;
//! reload on the watcher, SIGHUP and `POST /v1/reload`; and the graceful
//! shutdown that drains every accepted event before exiting.
//!
//! Shutdown runs in two steps, each a [`Trigger`] of the one shutdown
//! signal type. First every task that takes events in or asks for
//! reloads (HTTP accept loops, sources, the reload loop, the watcher, the
//! SIGHUP task) stops and drops its [`crate::shutdown::Shutdown`], sources
//! once what they submitted is handled and their position saved; workers
//! keep running meanwhile. Then the pipeline's trigger closes the queue
//! and the workers drain it; sinks close within their grace (their
//! flushers stop through that close), and outputs are fsynced.
//!
//! - `core`: what loading starts; [`PluginLoader`] loads plugins (for
//!   `check` too); `reload` builds snapshots and runs reloads; `watcher` notices changes;
//!   `signals` the process signals. Which files are plugins is the config's
//!   rule ([`crate::config::plugin_files`]).

mod core;
mod plugins;
mod reload;
mod signals;
mod watcher;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::core::Core;
use self::reload::{ReloadRequest, ReloadSender};
use crate::config::Config;
use crate::http::{self, AppState, Role};
use crate::shutdown::Trigger;
use crate::sinks;
use crate::telemetry::Stats;
use crate::telemetry::StreamHub;

pub use plugins::PluginLoader;
pub use reload::LoadReport;
pub use signals::Signals;

/// A running daemon. Dropping it does not stop it: call [`Daemon::shutdown`].
pub struct Daemon {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// Stops everything that takes events in or asks for reloads.
    trigger: Trigger,
    server: JoinHandle<()>,
    admin_server: Option<JoinHandle<()>>,
    state: Arc<AppState>,
    /// What loading started: workers, reloads, sources.
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
    trigger: Trigger,
    server: JoinHandle<()>,
    admin_server: Option<JoinHandle<()>>,
    reloads: ReloadSender,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
}

impl Daemon {
    /// Binds, loads, and serves: [`Daemon::bind`] then [`Starting::load`].
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        Daemon::bind(config).await?.load().await
    }

    /// Binds the listeners and serves the probes and metrics; nothing is
    /// loaded yet. SIGHUP is watched from here on (see `signals`).
    pub async fn bind(config: Config) -> anyhow::Result<Starting> {
        let listen = config.server.listen;
        let limits = http::ConnLimits {
            header_timeout: config.server.header_timeout,
            max_connections: config.server.max_connections,
            send_timeout: config.server.send_timeout,
        };
        let stats = Arc::new(Stats::default());
        let stream = Arc::new(StreamHub::new(config.stream, &stats.metrics));
        let trigger = Trigger::new();
        // Stream subscriptions never end by themselves: they end when
        // shutdown begins, so that the server's graceful drain does not
        // wait for them.
        trigger.observer().on_shutdown({
            let stream = stream.clone();
            move || stream.close()
        });
        let (tx, reload_rx) = mpsc::unbounded_channel();
        let reloads = ReloadSender(tx);
        signals::reload_on_sighup(reloads.clone(), trigger.subscribe());
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
            pipeline: OnceLock::new(),
            max_body: config.server.max_body,
            body_timeout: config.server.body_timeout,
            reloads: Arc::new(reloads.clone()),
            stats,
            stream,
            starting_auth: config.auth.clone(),
            shutdown: trigger.observer(),
        });
        let role = if admin.is_some() { Role::Ingest } else { Role::All };
        let server = tokio::spawn(http::serve(
            listener,
            state.clone(),
            role,
            limits,
            trigger.subscribe(),
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
                    trigger.subscribe(),
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
            trigger,
            server,
            admin_server,
            reloads,
            reload_rx,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `[admin] listen` address, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The daemon's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.state.stats
    }

    /// Stops accepting, lets open requests finish, handles every queued
    /// event, flushes and fsyncs sinks and dead letters. The [`Stopped`]
    /// says whether everything accepted was written where it belonged.
    pub async fn shutdown(self) -> anyhow::Result<Stopped> {
        tracing::info!("shutting down: no new connections; draining the queue");
        self.trigger.fire();
        self.server.await.context("the HTTP server task panicked")?;
        if let Some(admin) = self.admin_server {
            admin.await.context("the admin HTTP server task panicked")?;
        }
        let Core {
            pipeline,
            sink_context: sinks,
            reloader,
            sources,
            drain,
            ..
        } = self.core;
        reloader.await.context("the reload task panicked")?;
        // Sources stop reading, wait for their events in flight and write
        // their last checkpoints while workers run; the watcher stops.
        self.trigger.complete().await;
        // Then the queue closes, and the workers drain it.
        drain.complete().await;
        let sync_errors = tokio::task::spawn_blocking(move || {
            for s in sources {
                s.join();
            }
            pipeline.join();
            let deadline = std::time::Instant::now() + sinks::http::CLOSE_GRACE;
            pipeline.shared().close_sinks(deadline);
            // Webhooks a reload replaced deliver what they hold within the
            // same grace.
            sinks.close(sinks::http::CLOSE_GRACE);
            let failed = pipeline.shared().sync_all();
            // Sinks closed and synced: the disk queue writes its last acks.
            pipeline.finish();
            failed
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

impl Starting {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Loads the plugins, starts the workers and sources, and begins taking
    /// events. On failure the listeners are closed again.
    pub async fn load(self) -> anyhow::Result<Daemon> {
        let Starting {
            config,
            addr,
            admin_addr,
            state,
            trigger,
            server,
            admin_server,
            reloads,
            reload_rx,
        } = self;
        match core::load(config, addr, &state, &trigger, reloads, reload_rx).await {
            Ok(core) => Ok(Daemon {
                addr,
                admin_addr,
                trigger,
                server,
                admin_server,
                state,
                core,
            }),
            Err(e) => {
                trigger.fire();
                let _ = server.await;
                if let Some(a) = admin_server {
                    let _ = a.await;
                }
                trigger.complete().await;
                Err(e)
            }
        }
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
