//! The dispatcher: a bounded queue between ingest and a pool of worker
//! threads that run the wasm. Wasm never runs on the async reactor.
//!
//! Admission is all or nothing: a batch takes as many permits as it has
//! events, or none (503). A permit is returned once its event has been fully
//! handled: handlers run, emitted events routed, sinks and dead letters
//! flushed. Replies (`?wait=true`, tail checkpoints) are sent only then.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use crate::config::Config;
use crate::dead_letter::{reason, DeadLetters};
use crate::envelope::{self, Event};
use crate::router::Router;
use crate::runtime::{self, Emitted, Invocation, Level, Plugin};
use crate::sinks::Sink;
use crate::stats::Stats;

/// Jobs a worker completes before it flushes and replies even if more wait.
const MAX_PENDING_REPLIES: usize = 256;

/// Everything routing needs, swapped whole on reload.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub router: Router,
    pub plugins: BTreeMap<String, Arc<Plugin>>,
    /// Plugin files that did not load, with the reason, for listings.
    pub plugin_errors: BTreeMap<String, String>,
    pub sinks: BTreeMap<String, Arc<dyn Sink>>,
}

/// One event to handle, and who wants to know when it is done.
pub struct Job {
    pub event: Event,
    pub reply: Option<oneshot::Sender<EventReport>>,
}

impl Job {
    pub fn new(event: Event) -> Job {
        Job { event, reply: None }
    }

    /// A job whose report arrives on the returned receiver once handled.
    pub fn with_reply(event: Event) -> (Job, oneshot::Receiver<EventReport>) {
        let (tx, rx) = oneshot::channel();
        (
            Job {
                event,
                reply: Some(tx),
            },
            rx,
        )
    }
}

/// What happened to an event and everything it caused.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    pub id: String,
    pub name: String,
    /// Routes that took the event.
    pub routes: Vec<String>,
    /// Each handler run (or not run) for this event and the events it emitted.
    pub handlers: Vec<HandlerResult>,
    /// Ids of events emitted (directly or further down) and routed.
    pub emitted: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandlerResult {
    /// The event the handler ran on: the reported one or one it caused.
    pub event: String,
    pub route: String,
    pub plugin: Option<String>,
    /// `ok`, a failure kind, or a dead-letter reason.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubmitError {
    #[error("the queue is full ({capacity} events waiting); retry later")]
    Full { capacity: usize },
    #[error(
        "a batch of {len} events is larger than the whole queue ({capacity} events); send smaller batches"
    )]
    TooLarge { len: usize, capacity: usize },
    #[error("the daemon is shutting down")]
    Closed,
}

/// State the workers share.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub dead_letters: DeadLetters,
    pub stats: Stats,
    /// Free places in the queue.
    permits: Semaphore,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    capacity: usize,
    /// `None` once closed: workers drain what is queued and stop.
    tx: RwLock<Option<Sender<Job>>>,
    workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Dispatcher {
    pub fn start(
        snapshot: Snapshot,
        dead_letters: DeadLetters,
        capacity: usize,
        workers: usize,
    ) -> std::io::Result<Arc<Dispatcher>> {
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            dead_letters,
            stats: Stats::default(),
            permits: Semaphore::new(capacity),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let (shared, rx) = (shared.clone(), rx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{i}"))
                    .stack_size(runtime::WORKER_STACK)
                    .spawn(move || worker(&shared, &rx))?,
            );
        }
        Ok(Arc::new(Dispatcher {
            shared,
            capacity,
            tx: RwLock::new(Some(tx)),
            workers: std::sync::Mutex::new(handles),
        }))
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events accepted and not yet fully handled.
    pub fn depth(&self) -> usize {
        self.capacity - self.shared.permits.available_permits()
    }

    /// Queues all of `jobs` or none of them, without waiting.
    pub fn try_submit(&self, jobs: Vec<Job>) -> Result<(), SubmitError> {
        let len = jobs.len();
        if len > self.capacity {
            return Err(SubmitError::TooLarge {
                len,
                capacity: self.capacity,
            });
        }
        let n = u32::try_from(len).map_err(|_| SubmitError::TooLarge {
            len,
            capacity: self.capacity,
        })?;
        let permit = self.shared.permits.try_acquire_many(n).map_err(|e| match e {
            tokio::sync::TryAcquireError::Closed => SubmitError::Closed,
            tokio::sync::TryAcquireError::NoPermits => SubmitError::Full {
                capacity: self.capacity,
            },
        })?;
        permit.forget();
        self.send(jobs)
    }

    /// Queues all of `jobs`, waiting for room (for sources that can pause).
    pub async fn submit(&self, jobs: Vec<Job>) -> Result<(), SubmitError> {
        let len = jobs.len();
        let n = u32::try_from(len.min(self.capacity)).unwrap_or(u32::MAX);
        if len > self.capacity {
            return Err(SubmitError::TooLarge {
                len,
                capacity: self.capacity,
            });
        }
        let permit = self
            .shared
            .permits
            .acquire_many(n)
            .await
            .map_err(|_| SubmitError::Closed)?;
        permit.forget();
        self.send(jobs)
    }

    fn send(&self, jobs: Vec<Job>) -> Result<(), SubmitError> {
        let n = jobs.len();
        let guard = self.tx.read().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else {
            self.shared.permits.add_permits(n);
            return Err(SubmitError::Closed);
        };
        Stats::add(&self.shared.stats.ingested, n as u64);
        for job in jobs {
            tx.send(job)
                .expect("workers hold the receiver until the sender is dropped");
        }
        Ok(())
    }

    /// Stops admission, lets the workers drain every queued event, flush
    /// sinks and dead letters, and waits for them to finish.
    pub fn close(&self) {
        self.shared.permits.close();
        self.tx.write().unwrap_or_else(|p| p.into_inner()).take();
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            if h.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

fn worker(shared: &Shared, rx: &Receiver<Job>) {
    let mut done: Vec<Option<oneshot::Sender<EventReport>>> = Vec::new();
    let mut reports: Vec<EventReport> = Vec::new();
    while let Ok(job) = rx.recv() {
        let snapshot = shared.snapshot.load_full();
        let report = handle_event(shared, &snapshot, job.event, job.reply.is_some());
        done.push(job.reply);
        reports.push(report);
        if rx.is_empty() || done.len() >= MAX_PENDING_REPLIES {
            complete(shared, &snapshot, &mut done, &mut reports);
        }
    }
    let snapshot = shared.snapshot.load_full();
    complete(shared, &snapshot, &mut done, &mut reports);
}

/// Flushes what the finished events wrote, then tells their producers.
fn complete(
    shared: &Shared,
    snapshot: &Snapshot,
    done: &mut Vec<Option<oneshot::Sender<EventReport>>>,
    reports: &mut Vec<EventReport>,
) {
    for (name, sink) in &snapshot.sinks {
        if let Err(e) = sink.flush() {
            Stats::add(&shared.stats.sink_errors, 1);
            tracing::error!(sink = %name, error = %e, "cannot flush sink");
        }
    }
    if let Err(e) = shared.dead_letters.flush() {
        Stats::add(&shared.stats.dead_letter_errors, 1);
        tracing::error!(path = %shared.dead_letters.path().display(), error = %e, "cannot flush dead letters");
    }
    let n = done.len();
    for (reply, report) in done.drain(..).zip(reports.drain(..)) {
        if let Some(reply) = reply {
            let _ = reply.send(report);
        }
    }
    shared.permits.add_permits(n);
}

struct Cascade<'a> {
    shared: &'a Shared,
    snapshot: &'a Snapshot,
    report: EventReport,
    /// Whether anyone reads the report; if not, only counters are kept.
    detailed: bool,
}

/// Routes one event and, breadth first, every event its handlers emit.
fn handle_event(shared: &Shared, snapshot: &Snapshot, root: Event, detailed: bool) -> EventReport {
    let mut c = Cascade {
        shared,
        snapshot,
        report: EventReport {
            id: root.id.clone(),
            name: root.name.clone(),
            routes: Vec::new(),
            handlers: Vec::new(),
            emitted: Vec::new(),
        },
        detailed,
    };
    let mut queue = VecDeque::from([(root, 0u32)]);
    let mut is_root = true;
    while let Some((event, hops)) = queue.pop_front() {
        for child in c.route(&event, hops, is_root) {
            queue.push_back((child, hops + 1));
        }
        is_root = false;
    }
    c.report
}

impl Cascade<'_> {
    /// Runs every matching route on `event`; returns the events to route next.
    fn route(&mut self, event: &Event, hops: u32, is_root: bool) -> Vec<Event> {
        let stats = &self.shared.stats;
        let matches = self.snapshot.router.route(event);
        if matches.is_empty() {
            Stats::add(&stats.unmatched, 1);
            tracing::debug!(event = %event.id, name = %event.name, "no route matched");
            return Vec::new();
        }
        let json = event.to_json();
        let mut children = Vec::new();
        let mut written: Vec<&str> = Vec::new();
        for m in &matches {
            let route = m.route.name.as_str();
            if is_root {
                self.report.routes.push(route.to_string());
            }
            if !m.missing.is_empty() {
                let msg = format!("missing required data keys: {}", m.missing.join(", "));
                self.dead_letter(event, route, None, reason::MISSING_KEYS, &msg);
                continue;
            }
            for name in &m.route.handlers {
                let Some(plugin) = self.snapshot.plugins.get(name) else {
                    let why = self
                        .snapshot
                        .plugin_errors
                        .get(name)
                        .map_or("no such plugin file", String::as_str);
                    let msg = format!("plugin {name:?} is not loaded: {why}");
                    self.dead_letter(event, route, Some(name), reason::UNAVAILABLE, &msg);
                    continue;
                };
                let inv = plugin.invoke(&json);
                log_invocation(event, plugin, &inv);
                match inv.outcome {
                    Ok(()) => {
                        Stats::add(&stats.invocations_ok, 1);
                        self.result(event, route, Some(name), "ok", None, Some(inv.fuel_used));
                        for emitted in inv.emitted {
                            let child = child_event(event, &plugin.name, hops + 1, emitted);
                            if hops + 1 > self.snapshot.config.hop_limit {
                                let msg = format!(
                                    "emitted {} hops from the root event, over the hop limit of {}",
                                    hops + 1,
                                    self.snapshot.config.hop_limit
                                );
                                self.dead_letter(&child, route, Some(name), reason::HOP_LIMIT, &msg);
                            } else {
                                Stats::add(&stats.emitted, 1);
                                if self.detailed {
                                    self.report.emitted.push(child.id.clone());
                                }
                                children.push(child);
                            }
                        }
                    }
                    Err(f) => {
                        Stats::add(stats.failure(f.kind), 1);
                        tracing::warn!(plugin = %name, event = %event.id, route, kind = %f.kind, error = %f.message, "handler failed");
                        self.dead_letter(event, route, Some(name), f.kind.as_str(), &f.message);
                        if let Some(last) = self.report.handlers.last_mut() {
                            last.fuel_used = Some(inv.fuel_used);
                        }
                    }
                }
            }
            for sink in &m.route.sinks {
                if written.contains(&sink.as_str()) {
                    continue;
                }
                written.push(sink);
                let result = match self.snapshot.sinks.get(sink) {
                    Some(s) => s.write(&json),
                    None => Err(std::io::Error::other("sink is not open")),
                };
                if let Err(e) = result {
                    Stats::add(&stats.sink_errors, 1);
                    tracing::error!(sink = %sink, event = %event.id, error = %e, "sink write failed");
                    let msg = format!("sink {sink:?}: {e}");
                    self.dead_letter(event, route, None, reason::SINK_ERROR, &msg);
                }
            }
        }
        children
    }

    fn result(
        &mut self,
        event: &Event,
        route: &str,
        plugin: Option<&str>,
        outcome: &str,
        message: Option<&str>,
        fuel: Option<u64>,
    ) {
        if self.detailed {
            self.report.handlers.push(HandlerResult {
                event: event.id.clone(),
                route: route.to_string(),
                plugin: plugin.map(str::to_string),
                outcome: outcome.to_string(),
                message: message.map(str::to_string),
                fuel_used: fuel,
            });
        }
    }

    fn dead_letter(&mut self, event: &Event, route: &str, plugin: Option<&str>, kind: &str, message: &str) {
        self.result(event, route, plugin, kind, Some(message), None);
        let dl = &self.shared.dead_letters;
        match dl.write(event, Some(route), plugin, kind, message) {
            Ok(()) => Stats::add(&self.shared.stats.dead_letters, 1),
            Err(e) => {
                Stats::add(&self.shared.stats.dead_letter_errors, 1);
                tracing::error!(event = %event.id, path = %dl.path().display(), error = %e, kind, message, "cannot write dead letter; the event is only in this log line: {}", String::from_utf8_lossy(&event.to_json()));
            }
        }
    }
}

/// An event emitted while handling `parent`, with its causation trail.
fn child_event(parent: &Event, plugin: &str, hops: u32, emitted: Emitted) -> Event {
    let Emitted {
        name,
        version,
        mut meta,
        data,
    } = emitted;
    let from_plugin = parent.source.starts_with("plugin:");
    let root_id = match parent.meta.get("root_id") {
        Some(Value::String(r)) if from_plugin => r.clone(),
        _ => parent.id.clone(),
    };
    let mut trail = match parent.meta.get("trail") {
        Some(Value::Array(t)) if from_plugin => t.clone(),
        _ => Vec::new(),
    };
    trail.push(Value::String(format!("{}@{}", parent.name, parent.id)));
    meta.insert("parent_id".into(), Value::String(parent.id.clone()));
    meta.insert("root_id".into(), Value::String(root_id));
    meta.insert("hops".into(), Value::from(hops));
    meta.insert("trail".into(), Value::Array(trail));
    Event {
        id: envelope::new_id(),
        name,
        version,
        source: format!("plugin:{plugin}"),
        time: envelope::now(),
        meta,
        data,
    }
}

/// Forwards a plugin's log lines to the daemon's log, with plugin and event.
pub fn log_invocation(event: &Event, plugin: &Plugin, inv: &Invocation) {
    let (p, e) = (plugin.name.as_str(), event.id.as_str());
    for line in &inv.logs {
        let m = line.message.as_str();
        match line.level {
            Level::Trace => tracing::trace!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Info => tracing::info!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Error => tracing::error!(target: "plugin", plugin = p, event = e, "{m}"),
        }
    }
    if inv.dropped_logs > 0 {
        tracing::warn!(
            plugin = p,
            event = e,
            dropped = inv.dropped_logs,
            "plugin log lines over the per-invocation cap were dropped"
        );
    }
}
