//! What loading starts, once the listeners answer: the runtime, the first
//! snapshot, the pipeline, the sources, the reload loop and the watcher.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::plugins::PluginLoader;
use super::reload::{self, count_load, log_report, Loader, ReloadRequest, ReloadSender};
use super::watcher;
use crate::config::Config;
use crate::dead_letter::DeadLetters;
use crate::http::AppState;
use crate::pipeline::{Pipeline, QueueSettings, Settle};
use crate::runtime::Runtime;
use crate::shutdown::Trigger;
use crate::sinks::SinkContext;
use crate::sources::{self, Running, SourceContext};

/// What loading starts.
pub(super) struct Core {
    pub(super) pipeline: Arc<Pipeline>,
    /// Webhook sinks deliver in the background; shutdown waits for them.
    pub(super) sink_context: SinkContext,
    pub(super) reloader: JoinHandle<()>,
    /// The sources' threads; they stop on the trigger, before the
    /// pipeline closes.
    pub(super) sources: Vec<Running>,
    /// Closes the queue: the workers drain it and stop (the second step
    /// of shutdown, once the sources and HTTP have stopped).
    pub(super) drain: Trigger,
}

/// Loads and starts everything. On error, what was started is stopped
/// again, except what listens to `trigger` (the caller fires it).
pub(super) async fn load(
    config: Config,
    addr: SocketAddr,
    state: &Arc<AppState>,
    trigger: &Trigger,
    reloads: ReloadSender,
    reload_rx: mpsc::UnboundedReceiver<ReloadRequest>,
) -> anyhow::Result<Core> {
    let stats = state.stats.clone();
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
    let plugins = PluginLoader::background(
        rt,
        Arc::new(move || {
            let _ = compiled.send(ReloadRequest::plain());
        }),
    );
    let loader = Arc::new(Loader::new(plugins, &config.file, sink_context.clone()));
    let first = loader.clone();
    let (snapshot, report) = tokio::task::spawn_blocking(move || first.build(config, None, None))
        .await
        .context("loading plugins panicked")??;
    log_report(&report);
    let drain = Trigger::new();
    let queue_settings = QueueSettings {
        config: snapshot.config.queue,
        capacity: queue,
        state_dir: &snapshot.config.state_dir.clone(),
        settle: settle(sink_context.clone()),
    };
    let pipeline = Pipeline::start(
        snapshot,
        dead_letters.clone(),
        queue_settings,
        workers,
        stats.clone(),
        state.stream.clone(),
        drain.subscribe(),
    )
    .context("cannot start the pipeline")?;
    let shared = pipeline.shared().clone();
    count_load(&stats, &report);
    let config = shared.snapshot().config.clone();
    let ctx = SourceContext {
        submitter: pipeline.clone(),
        dead_letters,
        stats,
        outputs: shared.clone(),
        state_dir: config.state_dir.clone(),
    };
    let shutdown = trigger.subscribe();
    let started = tokio::task::spawn_blocking(move || sources::start_all(&config, &ctx, &shutdown))
        .await
        .context("starting the sources panicked")
        .and_then(|r| r);
    let sources = match started {
        Ok(sources) => sources,
        Err(e) => {
            // The sources already started stop when the caller fires the
            // trigger; the pipeline closes here.
            trigger.fire();
            drain.complete().await;
            let p = pipeline.clone();
            let _ = tokio::task::spawn_blocking(move || p.join()).await;
            return Err(e);
        }
    };

    let reloader = tokio::spawn(reload::reload_loop(
        loader.clone(),
        shared.clone(),
        reload_rx,
        reloads.clone(),
        trigger.subscribe(),
    ));
    let config_file = shared.snapshot().config.file.clone();
    if let Err(e) = watcher::start(&plugins_dir, &config_file, reloads, trigger.subscribe()) {
        tracing::warn!(error = %e, "cannot watch for changes; reload with SIGHUP or POST /v1/reload");
    }

    if state.pipeline.set(pipeline.clone()).is_err() {
        anyhow::bail!("the daemon was loaded twice");
    }
    tracing::info!(%addr, workers, queue, "switchyard listening");
    Ok(Core {
        pipeline,
        sink_context,
        reloader,
        sources,
        drain,
    })
}

/// The disk queue's [`Settle`]: [`SinkContext::settle`], which reaches
/// every file and webhook sink opened (those a reload replaced too) and the
/// dead-letter log, whether or not the pipeline serves yet.
fn settle(sinks: SinkContext) -> Settle {
    Arc::new(move || {
        sinks.settle();
    })
}
