//! The worker loop: takes events from the queue, handles each (see
//! `cascade`), and once the queue looks empty (or enough are done) flushes
//! sinks and dead letters and only then acknowledges the events to the
//! queue, which tells their producers.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use super::cascade::handle_event;
use super::queue::{NoDelivery, Queue};
use super::report::EventReport;
use super::snapshot::{Shared, Snapshot};
use crate::event::Event;
use crate::runtime::Warm;
use crate::sinks::SinkError;
use crate::telemetry::Stats;
use crate::telemetry::{Metrics, PluginMetrics, SinkMetrics};

/// Events a worker completes before it flushes and acknowledges them even
/// if more wait.
const MAX_PENDING_ACKS: usize = 256;

/// Metric handles one worker has resolved, by name, in maps only its thread
/// touches: counting an event takes no lock and no shared reference count.
#[derive(Default)]
pub(super) struct Handles {
    routes: HashMap<String, Counter>,
    plugins: HashMap<String, Arc<PluginMetrics>>,
    sinks: HashMap<String, Arc<SinkMetrics>>,
}

impl Handles {
    pub(super) fn route(&mut self, m: &Metrics, name: &str) -> &Counter {
        if !self.routes.contains_key(name) {
            self.routes.insert(name.to_string(), m.route(name));
        }
        &self.routes[name]
    }

    pub(super) fn plugin(&mut self, m: &Metrics, name: &str) -> &PluginMetrics {
        if !self.plugins.contains_key(name) {
            self.plugins.insert(name.to_string(), m.plugin(name));
        }
        &self.plugins[name]
    }

    pub(super) fn sink(&mut self, m: &Metrics, name: &str) -> &SinkMetrics {
        if !self.sinks.contains_key(name) {
            self.sinks.insert(name.to_string(), m.sink(name));
        }
        &self.sinks[name]
    }
}

/// What one worker keeps from one event to the next.
#[derive(Default)]
pub(super) struct Local {
    pub(super) handles: Handles,
    /// Instances kept for `instance = "reuse"` plugins.
    pub(super) warm: Warm,
    /// The buffer each event's JSON is written into, kept so that its
    /// allocation is reused.
    pub(super) json: Vec<u8>,
}

/// Runs worker number `index` until `queue` is closed and drained.
pub(super) fn run<Q: Queue>(shared: &Shared, queue: &Q, index: usize) {
    let mut done: Vec<(Q::Token, EventReport)> = Vec::new();
    let mut local = Local::default();
    // The snapshot the kept instances were last checked against: after a
    // reload, those of plugin versions no longer loaded are dropped.
    let mut seen: *const Snapshot = std::ptr::null();
    // Letters lost before the events in `done` were handled.
    let mut lost_before = 0;
    loop {
        // Never block with acknowledgements pending: another worker may
        // have taken the event that made the queue look non-empty, and a
        // producer that waits for these before sending more (a tail source
        // draining a file, `?wait=true`) would wait forever.
        let delivery = if done.is_empty() {
            queue.recv()
        } else {
            match queue.try_recv() {
                Ok(d) => Some(d),
                Err(NoDelivery::Empty) => {
                    let snapshot = shared.snapshot();
                    complete(shared, queue, &snapshot, &mut done, lost_before);
                    continue;
                }
                Err(NoDelivery::Closed) => None,
            }
        };
        let Some(delivery) = delivery else { break };
        if done.is_empty() {
            lost_before = shared.stats.dead_letters_lost.load(Relaxed);
        }
        let snapshot = shared.snapshot();
        if !std::ptr::eq(seen, Arc::as_ptr(&snapshot)) {
            seen = Arc::as_ptr(&snapshot);
            local
                .warm
                .retain(|id| snapshot.plugins.values().any(|p| p.id() == id));
        }
        // The queue notes which event's handlers run (poison accounting),
        // not the wait for its acknowledgement.
        queue.running(index, &delivery.token);
        let report = handle_event(shared, &snapshot, &mut local, delivery.event, delivery.detailed);
        queue.idle(index);
        done.push((delivery.token, report));
        if queue.is_empty() || done.len() >= MAX_PENDING_ACKS {
            complete(shared, queue, &snapshot, &mut done, lost_before);
        }
    }
    let snapshot = shared.snapshot();
    complete(shared, queue, &snapshot, &mut done, lost_before);
}

/// Flushes what the finished events wrote, then acknowledges them to the
/// queue. When letters were lost since `lost_before` (by this worker's
/// flush or another's), each report says so: one of them may be these
/// events'.
fn complete<Q: Queue>(
    shared: &Shared,
    queue: &Q,
    snapshot: &Snapshot,
    done: &mut Vec<(Q::Token, EventReport)>,
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
        for (_, r) in done.iter_mut() {
            r.unwritten = true;
        }
    }
    queue.handled(done);
}

/// Lines a sink could not write (a full disk, `max_pending`): each event
/// goes to dead letters as `sink_error`, so that nothing accepted ends up
/// nowhere (issue 17). `current` is the event being routed, whose line may
/// be among them, with its route.
pub(super) fn divert(
    shared: &Shared,
    sm: &SinkMetrics,
    sink: &str,
    current: Option<(&Event, &str)>,
    e: SinkError,
) {
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
