//! The dispatcher: a bounded queue between ingest and a pool of worker
//! threads that run the wasm. Wasm never runs on the async reactor.
//!
//! Admission is all or nothing: a batch takes as many permits as it has
//! events, or none (503). A permit is returned once its event has been fully
//! handled: handlers run, emitted events routed, sinks and dead letters
//! flushed. Replies (`?wait=true`, tail checkpoints) are sent only then.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use crate::config::Config;
use crate::dead_letter::{DeadLetterKind, DeadLetters};
use crate::envelope::{self, Event};
use crate::config::StreamConfig;
use crate::config::LogLimit;
use crate::router::Router;
use crate::runtime::{self, CascadeBudget, Emitted, Invocation, Level, Plugin, Refused, Warm};
use crate::sinks::{Sink, SinkError};
use crate::telemetry::Stats;
use crate::telemetry::{Metrics, PluginMetrics, SinkMetrics, StreamHub};

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
    /// Whether the report lists the event, its routes and handler outcomes;
    /// without, the report is empty: its arrival says "done", and building
    /// it costs nothing.
    pub detailed: bool,
}

impl Job {
    pub fn new(event: Event) -> Job {
        Job {
            event,
            reply: None,
            detailed: false,
        }
    }

    /// A job whose report arrives on the returned receiver once handled.
    pub fn with_reply(event: Event) -> (Job, oneshot::Receiver<EventReport>) {
        let (tx, rx) = oneshot::channel();
        (
            Job {
                event,
                reply: Some(tx),
                detailed: true,
            },
            rx,
        )
    }

    /// A job whose (bare) report arrives once it has been fully handled:
    /// for producers that only need to know when (tail checkpoints).
    pub fn with_ack(event: Event) -> (Job, oneshot::Receiver<EventReport>) {
        let (mut job, rx) = Job::with_reply(event);
        job.detailed = false;
        (job, rx)
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
    /// A dead letter may not have reached the dead-letter log while this
    /// event was handled (it is then whole in the daemon's log): a durable
    /// producer (a tail checkpoint) must not pass the event (issue 17).
    #[serde(skip)]
    pub unwritten: bool,
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
    /// The first 12 hex digits of the sha256 of the plugin version that ran,
    /// so a deploy can be followed event by event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
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
    pub stats: Arc<Stats>,
    /// Live subscribers of `GET /v1/stream`.
    pub stream: Arc<StreamHub>,
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
        let stats = Arc::new(Stats::default());
        let stream = Arc::new(StreamHub::new(StreamConfig::default(), &stats.metrics));
        Dispatcher::start_with(snapshot, dead_letters, capacity, workers, stats, stream)
    }

    /// Like [`Dispatcher::start`], with counters and a stream hub that exist
    /// before it (the daemon serves `/metrics` while plugins load).
    pub fn start_with(
        snapshot: Snapshot,
        dead_letters: DeadLetters,
        capacity: usize,
        workers: usize,
        stats: Arc<Stats>,
        stream: Arc<StreamHub>,
    ) -> std::io::Result<Arc<Dispatcher>> {
        // Series that exist from the start read 0 rather than being absent.
        for name in snapshot.plugins.keys() {
            stats.metrics.plugin(name);
        }
        for route in snapshot.router.routes() {
            stats.metrics.route(&route.name);
        }
        for name in snapshot.sinks.keys() {
            stats.metrics.sink(name);
        }
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            dead_letters,
            stats,
            stream,
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
        count_ingested(&self.shared.stats, &jobs);
        for job in jobs {
            tx.send(job)
                .expect("workers hold the receiver until the sender is dropped");
        }
        Ok(())
    }

    /// Whether every worker thread is still running.
    pub fn workers_alive(&self) -> bool {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        !workers.is_empty() && workers.iter().all(|h| !h.is_finished())
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

/// Counts accepted events per source; a batch nearly always has one source,
/// so this is one handle lookup per batch, not per event.
fn count_ingested(stats: &Stats, jobs: &[Job]) {
    let mut i = 0;
    while i < jobs.len() {
        let source = jobs[i].event.source.as_str();
        let run = jobs[i..].iter().take_while(|j| j.event.source == source).count();
        stats.metrics.source(source).inc_by(run as u64);
        i += run;
    }
}

/// Metric handles one worker has resolved, by name, in maps only its thread
/// touches: counting an event takes no lock and no shared reference count.
#[derive(Default)]
struct Handles {
    routes: std::collections::HashMap<String, prometheus_client::metrics::counter::Counter>,
    plugins: std::collections::HashMap<String, Arc<PluginMetrics>>,
    sinks: std::collections::HashMap<String, Arc<SinkMetrics>>,
}

impl Handles {
    fn route(&mut self, m: &Metrics, name: &str) -> &prometheus_client::metrics::counter::Counter {
        if !self.routes.contains_key(name) {
            self.routes.insert(name.to_string(), m.route(name));
        }
        &self.routes[name]
    }

    fn plugin(&mut self, m: &Metrics, name: &str) -> &PluginMetrics {
        if !self.plugins.contains_key(name) {
            self.plugins.insert(name.to_string(), m.plugin(name));
        }
        &self.plugins[name]
    }

    fn sink(&mut self, m: &Metrics, name: &str) -> &SinkMetrics {
        if !self.sinks.contains_key(name) {
            self.sinks.insert(name.to_string(), m.sink(name));
        }
        &self.sinks[name]
    }
}

/// What one worker keeps from one event to the next.
#[derive(Default)]
struct Local {
    handles: Handles,
    /// Instances kept for `instance = "reuse"` plugins.
    warm: Warm,
    /// The buffer each event's JSON is written into, kept so that its
    /// allocation is reused.
    json: Vec<u8>,
}

fn worker(shared: &Shared, rx: &Receiver<Job>) {
    let mut done: Vec<Option<oneshot::Sender<EventReport>>> = Vec::new();
    let mut reports: Vec<EventReport> = Vec::new();
    let mut local = Local::default();
    // The snapshot the kept instances were last checked against: after a
    // reload, those of plugin versions no longer loaded are dropped.
    let mut seen: *const Snapshot = std::ptr::null();
    // Letters lost before the events in `done` were handled.
    let mut lost_before = 0;
    loop {
        // Never block with replies pending: another worker may have taken
        // the job that made the queue look non-empty, and a producer that
        // waits for these replies before sending more (a tail source
        // draining a file, `?wait=true`) would wait forever.
        let job = if done.is_empty() {
            rx.recv().ok()
        } else {
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    let snapshot = shared.snapshot.load_full();
                    complete(shared, &snapshot, &mut done, &mut reports, lost_before);
                    continue;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => None,
            }
        };
        let Some(job) = job else { break };
        if done.is_empty() {
            lost_before = shared.stats.dead_letters_lost.load(Relaxed);
        }
        let snapshot = shared.snapshot.load_full();
        if !std::ptr::eq(seen, Arc::as_ptr(&snapshot)) {
            seen = Arc::as_ptr(&snapshot);
            local
                .warm
                .retain(|id| snapshot.plugins.values().any(|p| p.id() == id));
        }
        let report = handle_event(shared, &snapshot, &mut local, job.event, job.detailed);
        done.push(job.reply);
        reports.push(report);
        if rx.is_empty() || done.len() >= MAX_PENDING_REPLIES {
            complete(shared, &snapshot, &mut done, &mut reports, lost_before);
        }
    }
    let snapshot = shared.snapshot.load_full();
    complete(shared, &snapshot, &mut done, &mut reports, lost_before);
}

/// Flushes what the finished events wrote, then tells their producers.
/// When letters were lost since `lost_before` (by this worker's flush or
/// another's), each report says so: one of them may be these events'.
fn complete(
    shared: &Shared,
    snapshot: &Snapshot,
    done: &mut Vec<Option<oneshot::Sender<EventReport>>>,
    reports: &mut Vec<EventReport>,
    lost_before: u64,
) {
    for (name, sink) in &snapshot.sinks {
        if let Err(e) = sink.flush() {
            divert(shared, &shared.stats.metrics.sink(name), name, None, e);
        }
    }
    // Letters that cannot be written are counted and carried in the log by
    // the dead-letter log itself.
    let _ = shared.dead_letters.flush();
    if shared.stats.dead_letters_lost.load(Relaxed) > lost_before {
        for r in reports.iter_mut() {
            r.unwritten = true;
        }
    }
    // The events are handled: they leave the queue before anyone is told,
    // so a producer that reads the queue depth after its answer sees them gone.
    shared.permits.add_permits(done.len());
    for (reply, report) in done.drain(..).zip(reports.drain(..)) {
        if let Some(reply) = reply {
            let _ = reply.send(report);
        }
    }
}

struct Cascade<'a> {
    shared: &'a Shared,
    snapshot: &'a Snapshot,
    local: &'a mut Local,
    report: EventReport,
    /// Whether anyone reads the report; if not, only counters are kept.
    detailed: bool,
    /// Events this root event has caused so far (emitted by a successful
    /// handler, routed or dead-lettered as `hop_limit`), at most
    /// `[router] max_cascade`: what bounds the work list below.
    caused: u64,
    /// Bytes of emitted JSON of those events, at most `max_cascade_bytes`.
    caused_bytes: u64,
    /// Emits refused to guests for the budget, and who made them (route,
    /// plugin), in order of first refusal.
    refused: Refused,
    refused_by: Vec<(String, String)>,
}

/// Routes one event and, breadth first, every event its handlers emit.
///
/// The work list only ever holds events within the root's cascade budget
/// (`[router] max_cascade` events and `max_cascade_bytes` bytes, issue 16):
/// each handler is told what is left of it and its emits past it are
/// refused at the `emit` call, so a self-routed fan-out costs at most that
/// many events and bytes in memory and invocations, whatever the tree's
/// size, and one `cascade_limit` dead letter (the root event) at the end.
fn handle_event(
    shared: &Shared,
    snapshot: &Snapshot,
    local: &mut Local,
    root: Event,
    detailed: bool,
) -> EventReport {
    let mut c = Cascade {
        shared,
        snapshot,
        local,
        // A bare report is only ever waited on, never read: it costs nothing.
        report: EventReport {
            id: if detailed { root.id.clone() } else { String::new() },
            name: if detailed {
                root.name.clone()
            } else {
                String::new()
            },
            routes: Vec::new(),
            handlers: Vec::new(),
            emitted: Vec::new(),
            unwritten: false,
        },
        detailed,
        caused: 0,
        caused_bytes: 0,
        refused: Refused::default(),
        refused_by: Vec::new(),
    };
    let mut queue: VecDeque<(Event, u32)> = c.route(&root, 0, true).into_iter().map(|e| (e, 1)).collect();
    while let Some((event, hops)) = queue.pop_front() {
        for child in c.route(&event, hops, false) {
            queue.push_back((child, hops + 1));
        }
    }
    if c.refused.emits > 0 {
        c.over_budget(&root);
    }
    c.report
}

impl Cascade<'_> {
    /// Runs every matching route on `event`; returns the events to route next.
    fn route(&mut self, event: &Event, hops: u32, is_root: bool) -> Vec<Event> {
        let stats = &self.shared.stats;
        let stream = &self.shared.stream;
        let matches = self.snapshot.router.route(event);
        if matches.is_empty() {
            Stats::add(&stats.unmatched, 1);
            if stream.is_active() {
                stream.publish(&event.name, &event.to_json());
            }
            tracing::debug!(event = %event.id, name = %event.name, "no route matched");
            return Vec::new();
        }
        let mut json = std::mem::take(&mut self.local.json);
        event.write_json(&mut json);
        stream.publish(&event.name, &json);
        let mut children = Vec::new();
        let mut written: Vec<&str> = Vec::new();
        for m in &matches {
            let route = m.route.name.as_str();
            self.local.handles.route(&stats.metrics, route).inc();
            if is_root && self.detailed {
                self.report.routes.push(route.to_string());
            }
            if !m.missing.is_empty() {
                let msg = format!("missing required data keys: {}", m.missing.join(", "));
                self.dead_letter(event, route, None, DeadLetterKind::MissingKeys, &msg);
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
                    self.dead_letter(event, route, Some(name), DeadLetterKind::Unavailable, &msg);
                    continue;
                };
                let cfg = &self.snapshot.config;
                let budget = CascadeBudget {
                    events: u64::from(cfg.max_cascade).saturating_sub(self.caused),
                    bytes: cfg.max_cascade_bytes.saturating_sub(self.caused_bytes),
                };
                let inv = plugin.invoke_in_cascade(&mut self.local.warm, &json, budget);
                if inv.cascade_refused.emits > 0 {
                    self.refused.emits += inv.cascade_refused.emits;
                    self.refused.bytes += inv.cascade_refused.bytes;
                    if !self.refused_by.iter().any(|(r, p)| r == route && p == name) {
                        self.refused_by.push((route.to_string(), name.clone()));
                    }
                }
                let pm = self.local.handles.plugin(&stats.metrics, name);
                pm.invocation(
                    inv.outcome.as_ref().map(|_| ()).map_err(|f| f.kind),
                    inv.elapsed.as_secs_f64(),
                    inv.fuel_used,
                );
                log_invocation(event, route, plugin, &inv, pm, self.snapshot.config.plugin_log);
                match inv.outcome {
                    Ok(()) => {
                        self.result(event, route, Some(name), "ok", None, Some(inv.fuel_used));
                        self.tag_version(plugin);
                        // Within the budget the invocation was given, so
                        // these never pass it.
                        self.caused += inv.emitted.len() as u64;
                        self.caused_bytes += inv.emitted_bytes;
                        for emitted in inv.emitted {
                            let child = child_event(event, &plugin.name, hops + 1, emitted);
                            if hops + 1 > self.snapshot.config.hop_limit {
                                let msg = format!(
                                    "emitted {} hops from the root event, over the hop limit of {}",
                                    hops + 1,
                                    self.snapshot.config.hop_limit
                                );
                                self.dead_letter(&child, route, Some(name), DeadLetterKind::HopLimit, &msg);
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
                        self.dead_letter(event, route, Some(name), f.kind.into(), &f.message);
                        if let Some(last) = self.report.handlers.last_mut() {
                            last.fuel_used = Some(inv.fuel_used);
                        }
                        self.tag_version(plugin);
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
                    None => Err(SinkError::one(std::io::Error::other("sink is not open"), &json)),
                };
                let sm = self.local.handles.sink(&stats.metrics, sink);
                // `sink_writes_total` counts events that reached the sink's
                // target: the file and webhook sinks count their own; stdout
                // takes the line here or fails (issue 18, item 4).
                if result.is_ok()
                    && matches!(
                        self.snapshot.config.sinks.get(sink.as_str()),
                        Some(crate::config::SinkConfig::Stdout)
                    )
                {
                    sm.writes.inc();
                }
                if let Err(e) = result {
                    let mine = e.unwritten.contains(&json);
                    let msg = format!("sink {sink:?}: {}", e.error);
                    divert(self.shared, sm, sink, Some((event, route)), e);
                    if mine {
                        self.result(
                            event,
                            route,
                            None,
                            DeadLetterKind::SinkError.as_str(),
                            Some(&msg),
                            None,
                        );
                    }
                }
            }
        }
        self.local.json = json;
        children
    }

    /// The root's cascade hit its budget and emits were refused: one
    /// `cascade_limit` dead letter carrying the root event, and one warning,
    /// per root event, however many emits were refused (issue 16).
    fn over_budget(&mut self, root: &Event) {
        let (max, max_bytes) = (
            self.snapshot.config.max_cascade,
            self.snapshot.config.max_cascade_bytes,
        );
        let plugins: Vec<&str> = self.refused_by.iter().map(|(_, p)| p.as_str()).collect();
        let msg = format!(
            "cascade budget spent: {} emits ({} bytes) refused to plugin(s) {} after this event caused {} events ({} bytes); budget [router] max_cascade = {max}, max_cascade_bytes = {max_bytes}",
            self.refused.emits,
            self.refused.bytes,
            plugins.join(", "),
            self.caused,
            self.caused_bytes,
        );
        tracing::warn!(
            root_event = %root.id,
            plugins = %plugins.join(","),
            refused = self.refused.emits,
            refused_bytes = self.refused.bytes,
            max_cascade = max,
            max_cascade_bytes = max_bytes,
            "cascade budget spent; emits past it were refused with cascade_limit"
        );
        let route = self
            .refused_by
            .first()
            .map(|(r, _)| r.clone())
            .unwrap_or_default();
        let plugin = self.refused_by.first().map(|(_, p)| p.clone());
        self.dead_letter(
            root,
            &route,
            plugin.as_deref(),
            DeadLetterKind::CascadeLimit,
            &msg,
        );
    }

    fn tag_version(&mut self, plugin: &Plugin) {
        if let Some(last) = self.report.handlers.last_mut() {
            last.plugin_sha256 = Some(plugin.sha256.chars().take(12).collect());
        }
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
                plugin_sha256: None,
            });
        }
    }

    fn dead_letter(
        &mut self,
        event: &Event,
        route: &str,
        plugin: Option<&str>,
        kind: DeadLetterKind,
        message: &str,
    ) {
        self.result(event, route, plugin, kind.as_str(), Some(message), None);
        // A failed write is counted, and the letters it could not write are
        // carried whole in the log, by the dead-letter log itself.
        let _ = self
            .shared
            .dead_letters
            .write(event, Some(route), plugin, kind, message);
    }
}

/// Lines a sink could not write (a full disk, `max_pending`): each event
/// goes to dead letters as `sink_error`, so that nothing accepted ends up
/// nowhere (issue 17). `current` is the event being routed, whose line may
/// be among them, with its route.
fn divert(shared: &Shared, sm: &SinkMetrics, sink: &str, current: Option<(&Event, &str)>, e: SinkError) {
    let lines = e.unwritten.len() as u64;
    sm.errors.inc_by(lines.max(1));
    tracing::error!(sink, error = %e.error, events = lines, "sink could not write; its events go to dead letters");
    let msg = format!("sink {sink:?}: {}", e.error);
    let dl = &shared.dead_letters;
    for line in &e.unwritten {
        match serde_json::from_slice::<Event>(line) {
            Ok(ev) => {
                let route = current.filter(|(c, _)| c.id == ev.id).map(|(_, r)| r);
                let _ = dl.write_sink(&ev, route, sink, &msg);
            }
            Err(err) => {
                Stats::add(&shared.stats.sink_lines_unwritten, 1);
                tracing::error!(sink, error = %err, line = %String::from_utf8_lossy(line), "a line a sink could not write is not an envelope; it is whole in this log line");
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

/// Forwards a plugin's log lines, and its failure (whose message carries
/// guest text), to the daemon's log, with plugin and event, within the
/// plugin's line and byte limits (issue 16): lines over them are counted
/// and summarised; a failure over them is still counted in metrics and
/// dead-lettered, just not logged. A failure message is logged cut to
/// [`runtime::failure::MAX_LOGGED_FAILURE`] bytes.
pub fn log_invocation(
    event: &Event,
    route: &str,
    plugin: &Plugin,
    inv: &Invocation,
    pm: &PluginMetrics,
    limit: LogLimit,
) {
    let (p, e) = (plugin.name.as_str(), event.id.as_str());
    if inv.dropped_logs > 0 {
        pm.logs_over_cap.inc_by(inv.dropped_logs);
    }
    let failure = inv
        .outcome
        .as_ref()
        .err()
        .filter(|_| tracing::enabled!(tracing::Level::WARN));
    let failure_msg =
        failure.map(|f| runtime::failure::truncate(&f.message, runtime::failure::MAX_LOGGED_FAILURE));
    // Lines the log filter would discard cost nothing and use no tokens.
    let enabled = || inv.logs.iter().filter(|l| level_enabled(l.level));
    let wanted = enabled().count() as u64 + u64::from(failure.is_some());
    if wanted == 0 && inv.dropped_logs == 0 {
        return;
    }
    let now = std::time::Instant::now();
    let (granted, report) = {
        let mut bucket = plugin.log_budget.lock().unwrap_or_else(|p| p.into_inner());
        // The failure line first: it is the one an operator needs.
        let lengths = failure_msg
            .iter()
            .map(|m| m.len())
            .chain(enabled().map(|l| l.message.len()));
        let granted = bucket.take(lengths, limit, now);
        // Lines over the per-invocation cap are summarised with these, so
        // a plugin looping on `log` yields one warning a second, not one
        // per invocation.
        (
            granted,
            bucket.suppressed(wanted - granted + inv.dropped_logs, now),
        )
    };
    if granted < wanted {
        pm.logs_rate_limited.inc_by(wanted - granted);
    }
    if let Some(n) = report {
        tracing::warn!(
            plugin = p,
            event = e,
            suppressed = n,
            rate = limit.rate,
            bytes_per_second = limit.bytes,
            "plugin log lines dropped: over the rate limit ([plugins] log_rate, log_bytes) or the per-invocation cap"
        );
    }
    let mut left = granted;
    if let (Some(f), Some(msg)) = (failure, &failure_msg) {
        if left == 0 {
            return;
        }
        left -= 1;
        tracing::warn!(plugin = p, event = e, route, kind = %f.kind, error = %msg, "handler failed");
    }
    for line in inv.logs.iter().filter(|l| level_enabled(l.level)) {
        if left == 0 {
            break;
        }
        left -= 1;
        let m = line.message.as_str();
        match line.level {
            Level::Trace => tracing::trace!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Info => tracing::info!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Error => tracing::error!(target: "plugin", plugin = p, event = e, "{m}"),
        }
    }
}

/// Whether the log filter lets a plugin line of this level through.
fn level_enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
    }
}
