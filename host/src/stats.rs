//! Counters of what the daemon did, shared by ingest and workers: plain
//! atomics here, labelled metrics in [`Metrics`]. `GET /v1/stats` (JSON,
//! [`Stats::to_json`]) and `GET /metrics` (Prometheus,
//! [`crate::metrics::render`]) read the same atomics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};

use crate::metrics::{atomic, Metrics};
use crate::runtime::FailureKind;

#[derive(Default)]
pub struct Stats {
    /// Requests refused with 503 because the queue was full.
    pub refused_queue_full: AtomicU64,
    /// Events (ingested or emitted) that no route matched.
    pub unmatched: AtomicU64,
    /// Events emitted by plugins and routed.
    pub emitted: AtomicU64,
    /// Writes and flushes of the dead-letter log that failed, one per
    /// failed call whatever the number of letters in it (issue 17).
    pub dead_letter_errors: AtomicU64,
    /// Dead letters that could not be written to the dead-letter log, each
    /// carried whole in the daemon's log instead: the only way an event
    /// leaves the files.
    pub dead_letters_lost: AtomicU64,
    /// Events any sink (file or webhook) could not write or deliver: each
    /// dead-lettered as `sink_error` (counted where that letter is made,
    /// [`crate::dead_letter::DeadLetters::write_sink`]) or, when not an
    /// envelope, whole in the daemon's log. With `dead_letters_lost`, makes
    /// the exit code of a graceful stop 3 (issue 18, item 3).
    pub sink_lines_unwritten: AtomicU64,
    /// Reloads run (watcher, SIGHUP, `POST /v1/reload`), and those whose
    /// config was refused (the previous one kept serving).
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Plugin loads: compiled, read from the compiled-module cache, failed.
    pub plugins_compiled: AtomicU64,
    pub plugins_from_cache: AtomicU64,
    pub plugin_load_errors: AtomicU64,
    /// Tail sources (`[[source.tail]]`): lines submitted as events, and
    /// those whose handling completed (the checkpoint may pass them).
    pub tail_lines: AtomicU64,
    pub tail_lines_handled: AtomicU64,
    /// Tail lines that are not events (invalid UTF-8, too long,
    /// unparsable, unfinished), written to dead letters.
    pub tail_bad_lines: AtomicU64,
    /// Followed files renamed away or deleted (read to their end).
    pub tail_rotations: AtomicU64,
    /// Followed files that shrank (copytruncate): read again from 0.
    pub tail_truncations: AtomicU64,
    /// Bytes seen in a file but truncated away before they were read, with
    /// no copy holding them: copytruncate's inherent loss, as far as seen.
    pub tail_copytruncate_lost_bytes: AtomicU64,
    /// Checkpointed files with lines not yet handled that were gone at start.
    pub tail_files_missing: AtomicU64,
    /// Checkpoint writes that failed (retried).
    pub tail_checkpoint_errors: AtomicU64,
    /// Requests answered 408 because their body did not arrive within
    /// `[server] body_timeout` (issue 17, item 7).
    pub body_timeouts: AtomicU64,
    /// Connections refused (503, closed) at `[server] max_connections`.
    pub connections_refused: AtomicU64,
    /// Connections closed because a write to the client stayed pending for
    /// `[server] send_timeout` (a client that stopped reading).
    pub send_timeouts: AtomicU64,
    /// Per source, route, plugin, sink and dead-letter kind; the totals of
    /// `/v1/stats` are sums of these.
    pub metrics: Metrics,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Exports the plain atomics that [`crate::metrics::render`] does not
    /// register itself: one line per counter added to this struct.
    pub fn register_extra(&self, r: &mut Registry) {
        let mut counter = |name: &str, help: &str, value: &AtomicU64| r.register(name, help, atomic(value));
        counter(
            "reloads",
            "Reloads run (watcher, SIGHUP, POST /v1/reload)",
            &self.reloads,
        );
        counter(
            "reload_failures",
            "Reloads whose config was refused (the previous one kept serving)",
            &self.reload_failures,
        );
        counter(
            "plugins_compiled",
            "Plugin files compiled (at start and on reloads)",
            &self.plugins_compiled,
        );
        counter(
            "plugins_from_cache",
            "Plugin files loaded from the compiled-module cache",
            &self.plugins_from_cache,
        );
        counter(
            "plugin_load_errors",
            "Plugin files that failed to load (at start and on reloads)",
            &self.plugin_load_errors,
        );
        counter(
            "http_body_timeouts",
            "Requests answered 408: the body did not arrive within [server] body_timeout",
            &self.body_timeouts,
        );
        counter(
            "http_connections_refused",
            "Connections refused with 503 and closed at [server] max_connections (per listener)",
            &self.connections_refused,
        );
        counter(
            "http_send_timeouts",
            "Connections closed: a write to the client stayed pending for [server] send_timeout",
            &self.send_timeouts,
        );
        counter("tail_lines", "Tailed lines submitted as events", &self.tail_lines);
        counter(
            "tail_lines_handled",
            "Tailed lines whose events were handled (checkpoints may pass them)",
            &self.tail_lines_handled,
        );
        counter(
            "tail_bad_lines",
            "Tailed lines that are not events, written to dead letters",
            &self.tail_bad_lines,
        );
        counter(
            "tail_rotations",
            "Tailed files renamed away or deleted, read to their end",
            &self.tail_rotations,
        );
        counter(
            "tail_truncations",
            "Tailed files that shrank (copytruncate), read again from 0",
            &self.tail_truncations,
        );
        counter(
            "tail_copytruncate_lost_bytes",
            "Bytes truncated away before they were read, with no copy found",
            &self.tail_copytruncate_lost_bytes,
        );
        counter(
            "tail_files_missing",
            "Checkpointed files with unhandled lines that were gone at start",
            &self.tail_files_missing,
        );
        counter(
            "tail_checkpoint_errors",
            "Tail checkpoint writes that failed",
            &self.tail_checkpoint_errors,
        );
    }

    pub fn to_json(&self) -> Value {
        let m = &self.metrics;
        let pairs = |v: Vec<(String, u64)>| -> Map<String, Value> {
            v.into_iter().map(|(k, n)| (k, json!(n))).collect()
        };
        let mut failures: Map<String, Value> = Map::new();
        let mut plugins = Map::new();
        let mut ok = 0;
        let mut log_lines_dropped = 0;
        for kind in FailureKind::ALL {
            failures.insert(kind.as_str().into(), json!(0));
        }
        for (name, p) in m.plugins() {
            let mut one = Map::new();
            one.insert("ok".into(), json!(p.ok.get()));
            ok += p.ok.get();
            for kind in FailureKind::ALL {
                let n = p.failure(kind).get();
                one.insert(kind.as_str().into(), json!(n));
                if let Some(Value::Number(total)) = failures.get_mut(kind.as_str()) {
                    *total = (total.as_u64().unwrap_or(0) + n).into();
                }
            }
            let dropped = p.logs_rate_limited.get() + p.logs_over_cap.get();
            one.insert("log_lines_dropped".into(), json!(dropped));
            log_lines_dropped += dropped;
            plugins.insert(name, Value::Object(one));
        }
        let dead_letters = m.dead_letters_by_kind();
        let mut sinks = Map::new();
        let mut sink_errors = 0;
        for (name, s) in m.sinks() {
            sink_errors += s.errors.get();
            sinks.insert(
                name,
                json!({"writes": s.writes.get(), "errors": s.errors.get(),
                       "retries": s.retries.get(), "pending": s.pending.get()}),
            );
        }
        json!({
            "ingested": m.ingested_total(),
            "ingested_by_source": pairs(m.ingested_by_source()),
            "refused_queue_full": self.refused_queue_full.load(Relaxed),
            "unmatched": self.unmatched.load(Relaxed),
            "emitted": self.emitted.load(Relaxed),
            "routed": pairs(m.routed_by_route()),
            "invocations_ok": ok,
            "invocation_failures": failures,
            "plugins": plugins,
            "plugin_log_lines_dropped": log_lines_dropped,
            "dead_letters": dead_letters.iter().map(|(_, n)| n).sum::<u64>(),
            "dead_letters_by_kind": pairs(dead_letters),
            "dead_letter_errors": self.dead_letter_errors.load(Relaxed),
            "dead_letters_lost": self.dead_letters_lost.load(Relaxed),
            "reloads": self.reloads.load(Relaxed),
            "reload_failures": self.reload_failures.load(Relaxed),
            "plugins_compiled": self.plugins_compiled.load(Relaxed),
            "plugins_from_cache": self.plugins_from_cache.load(Relaxed),
            "plugin_load_errors": self.plugin_load_errors.load(Relaxed),
            "tail": {
                "lines": self.tail_lines.load(Relaxed),
                "lines_handled": self.tail_lines_handled.load(Relaxed),
                "bad_lines": self.tail_bad_lines.load(Relaxed),
                "rotations": self.tail_rotations.load(Relaxed),
                "truncations": self.tail_truncations.load(Relaxed),
                "copytruncate_lost_bytes": self.tail_copytruncate_lost_bytes.load(Relaxed),
                "files_missing": self.tail_files_missing.load(Relaxed),
                "checkpoint_errors": self.tail_checkpoint_errors.load(Relaxed),
            },
            "sink_errors": sink_errors,
            "sinks": sinks,
            "stream": {
                "subscribers": m.stream_subscribers.get(),
                "sent": m.stream_sent.get(),
                "cutoffs": m.stream_cutoffs.get(),
            },
        })
    }
}
