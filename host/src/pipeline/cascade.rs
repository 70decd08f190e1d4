//! Handling one event: route it, run each matching route's handlers and
//! sinks, and, breadth first, route what the handlers emit, within the hop
//! limit and the root event's cascade budget (`[router] max_cascade`,
//! `max_cascade_bytes`; issue 16). Failures become dead letters; the
//! report (when someone waits for a detailed one) says what happened.
//!
//! Debug builds only (`cfg(debug_assertions)`; release builds do not
//! contain it): the test-only crash hook. With the environment variable
//! `SWITCHYARD_TEST_ABORT_ON=<event name>`, a worker about to run the
//! handlers of an event of that name calls `std::process::abort()`: the
//! crash loop that makes an event `poison` (issue 12), caused on demand.

use std::collections::VecDeque;

use serde_json::Value;

use super::plugin_log::log_invocation;
use super::report::{EventReport, HandlerResult};
use super::snapshot::{Shared, Snapshot};
use super::worker::{divert, Local};
use crate::dead_letter::DeadLetterKind;
use crate::event::{self, Event};
use crate::runtime::{CascadeBudget, Emitted, Plugin, Refused};
use crate::sinks::SinkError;
use crate::telemetry::Stats;

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
pub(super) fn handle_event(
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
        report: EventReport::of(&root, detailed),
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
        #[cfg(debug_assertions)]
        abort_if_asked(event);
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

/// The test-only crash hook (see the module docs): aborts the process
/// when `event` has the name in `SWITCHYARD_TEST_ABORT_ON` (read once).
#[cfg(debug_assertions)]
fn abort_if_asked(event: &Event) {
    static ABORT_ON: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let on = ABORT_ON.get_or_init(|| std::env::var("SWITCHYARD_TEST_ABORT_ON").ok());
    if on.as_deref() == Some(event.name.as_str()) {
        tracing::error!(event = %event.id, name = %event.name, "SWITCHYARD_TEST_ABORT_ON names this event: aborting (test-only crash hook)");
        std::process::abort();
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
        id: event::new_id(),
        name,
        version,
        source: format!("plugin:{plugin}"),
        time: event::now(),
        meta,
        data,
    }
}
