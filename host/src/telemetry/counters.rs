//! The daemon's plain counters, each declared once: its field of
//! [`Stats`], its Prometheus name and help (if exported at `GET /metrics`)
//! and its key in `GET /v1/stats` (if shown there), in one row of
//! `counters!`. Both views read the row ([`COUNTERS`]), so a counter
//! added here appears in both without another line anywhere.
//!
//! A row's [`Section`] places it in both views, after the labelled metrics
//! of the same part of the data path (see [`super::expose::render`] and
//! [`Stats::to_json`]); within a section, rows keep their order here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::metrics::Metrics;

/// Where a counter appears in `/metrics` and `/v1/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// With what producers sent (after `events_replayed` and `ingested_by_source`).
    Ingest,
    /// With routing (after `events_routed`; in `/v1/stats` before `routed`).
    Routing,
    /// With dead letters (after `dead_letters` and `dead_letters_by_kind`).
    DeadLetters,
    /// The daemon's own work: reloads, plugin loads, HTTP, tail sources (last).
    Daemon,
}

/// A counter's Prometheus name (without the `switchyard_` prefix and the
/// `_total` suffix) and help text.
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
}

/// One declared counter.
pub struct Counter {
    pub section: Section,
    /// Its atomic in a [`Stats`].
    pub value: fn(&Stats) -> &AtomicU64,
    /// Exported at `/metrics`, if at all, as this.
    pub metric: Option<Metric>,
    /// Shown in `/v1/stats`, if at all, at this path of keys (one key, or
    /// an object's key and the key inside it).
    pub json: Option<&'static [&'static str]>,
}

/// Declares [`Stats`] and [`COUNTERS`] from one row per counter:
/// `/// doc` `field: Section, metric("name", "help"), json("key", ...);`
/// where `metric(..)` and `json(..)` are each optional.
macro_rules! counters {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $section:ident
            $(, metric($name:literal, $help:literal))?
            $(, json($($key:literal),+))?;
    )*) => {
        /// Counters of what the daemon did, shared by ingest, workers,
        /// sources, sinks and the control plane: plain atomics (add with
        /// [`Stats::add`]), and the labelled metrics in `metrics`.
        #[derive(Default)]
        pub struct Stats {
            $( $(#[doc = $doc])* pub $field: AtomicU64, )*
            /// Per source, route, plugin, sink and dead-letter kind; the totals of
            /// `/v1/stats` are sums of these.
            pub metrics: Metrics,
        }

        /// Every plain counter of [`Stats`], in declaration order.
        pub const COUNTERS: &[Counter] = &[$(
            Counter {
                section: Section::$section,
                value: {
                    fn value(s: &Stats) -> &AtomicU64 {
                        &s.$field
                    }
                    value
                },
                metric: counters!(@some $(Metric { name: $name, help: $help })?),
                json: counters!(@some $(&[$($key),+])?),
            },
        )*];
    };
    (@some) => { None };
    (@some $($t:tt)+) => { Some($($t)+) };
}

counters! {
    /// Requests refused with 503 because the queue was full.
    refused_queue_full: Ingest,
        metric("queue_full_refusals", "Ingest requests refused with 503 because the queue was full"),
        json("refused_queue_full");
    /// Requests refused with 503 because the disk queue held `[queue]
    /// max_bytes` (issue 12).
    refused_queue_backlog: Ingest,
        metric("queue_backlog_refusals", "Ingest requests refused with 503 because the disk queue held [queue] max_bytes"),
        json("refused_queue_backlog");
    /// Requests refused with 503 because the disk queue could not write (a
    /// full disk, an I/O error; issue 12).
    refused_queue_unavailable: Ingest,
        metric("queue_unavailable_refusals", "Ingest requests refused with 503 because the disk queue could not write (full disk, I/O error)"),
        json("refused_queue_unavailable");
    /// fsyncs of the disk queue's log (one per group commit with
    /// `sync = "batch"`, one per interval with `"interval"`).
    queue_fsyncs: Ingest,
        metric("queue_fsyncs", "fsyncs of the disk queue's log (shared by the submits of one group commit)"),
        json("disk_queue", "fsyncs");
    /// Writes to the disk queue that failed (a full disk, a file too
    /// large, an I/O error): their submits were refused.
    queue_write_errors: Ingest,
        metric("queue_write_errors", "Writes and fsyncs of the disk queue that failed (their submits were refused with 503 / tail paused)"),
        json("disk_queue", "write_errors");
    /// Events found unacked in the disk queue at start, delivered again.
    queue_redelivered: Ingest,
        metric("queue_redelivered", "Events found in the disk queue at start and delivered again (at least once: some may have been handled before the restart)"),
        json("disk_queue", "redelivered");
    /// Events dead-lettered as `poison` (`[queue] max_deliveries`).
    queue_poison: Ingest,
        metric("queue_poison_events", "Events dead-lettered as poison: the daemon died running their handlers [queue] max_deliveries times"),
        json("disk_queue", "poison");
    /// Torn last records of the disk queue, ignored and truncated at start.
    queue_torn_records: Ingest,
        metric("queue_torn_records", "Torn last records of the disk queue (written when the daemon died, never answered), truncated at start"),
        json("disk_queue", "torn_records");
    /// Damaged records of the disk queue, dead-lettered as `corrupt_record`.
    queue_corrupt_records: Ingest,
        metric("queue_corrupt_records", "Damaged records in the disk queue, dead-lettered as corrupt_record"),
        json("disk_queue", "corrupt_records");
    /// Events (ingested or emitted) that no route matched.
    unmatched: Routing,
        metric("events_unmatched", "Events (ingested or emitted) that no route matched"),
        json("unmatched");
    /// Events emitted by plugins and routed.
    emitted: Routing,
        metric("events_emitted", "Events emitted by plugins and routed"),
        json("emitted");
    /// Writes and flushes of the dead-letter log that failed, one per
    /// failed call whatever the number of letters in it (issue 17).
    dead_letter_errors: DeadLetters,
        metric("dead_letter_write_errors", "Writes and flushes of the dead-letter log that failed (one per failed call)"),
        json("dead_letter_errors");
    /// Dead letters that could not be written to the dead-letter log, each
    /// carried whole in the daemon's log instead: the only way an event
    /// leaves the files.
    dead_letters_lost: DeadLetters,
        metric("dead_letters_lost", "Dead letters not written to the dead-letter log, each carried whole in the daemon's log"),
        json("dead_letters_lost");
    /// Events any sink (file or webhook) could not write or deliver: each
    /// dead-lettered as `sink_error` (counted where that letter is made,
    /// the dead-letter log's `write_sink`) or, when not an
    /// envelope, whole in the daemon's log. With `dead_letters_lost`, makes
    /// the exit code of a graceful stop 3 (issue 18, item 3). Neither
    /// exported nor shown: the per-sink `sink_errors` are.
    sink_lines_unwritten: DeadLetters;
    /// Fsyncs of file sinks and the dead-letter log that failed when the
    /// queue settled before releasing events (issue 12): each failed call.
    sink_sync_errors: DeadLetters,
        metric("sink_sync_errors", "Fsyncs of file sinks and the dead-letter log that failed when the queue settled before releasing events"),
        json("sink_sync_errors");
    /// Reloads run (watcher, SIGHUP, `POST /v1/reload`).
    reloads: Daemon,
        metric("reloads", "Reloads run (watcher, SIGHUP, POST /v1/reload)"),
        json("reloads");
    /// Reloads whose config was refused (the previous one kept serving).
    reload_failures: Daemon,
        metric("reload_failures", "Reloads whose config was refused (the previous one kept serving)"),
        json("reload_failures");
    /// Plugin files compiled (at start and on reloads).
    plugins_compiled: Daemon,
        metric("plugins_compiled", "Plugin files compiled (at start and on reloads)"),
        json("plugins_compiled");
    /// Plugin files read from the compiled-module cache.
    plugins_from_cache: Daemon,
        metric("plugins_from_cache", "Plugin files loaded from the compiled-module cache"),
        json("plugins_from_cache");
    /// Plugin files that failed to load.
    plugin_load_errors: Daemon,
        metric("plugin_load_errors", "Plugin files that failed to load (at start and on reloads)"),
        json("plugin_load_errors");
    /// Requests answered 408 because their body did not arrive within
    /// `[server] body_timeout` (issue 17, item 7).
    body_timeouts: Daemon,
        metric("http_body_timeouts", "Requests answered 408: the body did not arrive within [server] body_timeout");
    /// Connections refused (503, closed) at `[server] max_connections`.
    connections_refused: Daemon,
        metric("http_connections_refused", "Connections refused with 503 and closed at [server] max_connections (per listener)");
    /// Connections closed because a write to the client stayed pending for
    /// `[server] send_timeout` (a client that stopped reading).
    send_timeouts: Daemon,
        metric("http_send_timeouts", "Connections closed: a write to the client stayed pending for [server] send_timeout");
    /// Tail sources (`[[source.tail]]`): lines submitted as events.
    tail_lines: Daemon,
        metric("tail_lines", "Tailed lines submitted as events"),
        json("tail", "lines");
    /// Tailed lines the checkpoint may pass: their events were queued
    /// durably (disk queue) or handled (memory queue).
    tail_lines_handled: Daemon,
        metric("tail_lines_handled", "Tailed lines the checkpoint may pass: their events were queued durably (disk queue) or handled (memory queue)"),
        json("tail", "lines_handled");
    /// Tail lines that are not events (invalid UTF-8, too long,
    /// unparsable, unfinished), written to dead letters.
    tail_bad_lines: Daemon,
        metric("tail_bad_lines", "Tailed lines that are not events, written to dead letters"),
        json("tail", "bad_lines");
    /// Followed files renamed away or deleted (read to their end).
    tail_rotations: Daemon,
        metric("tail_rotations", "Tailed files renamed away or deleted, read to their end"),
        json("tail", "rotations");
    /// Followed files that shrank (copytruncate): read again from 0.
    tail_truncations: Daemon,
        metric("tail_truncations", "Tailed files that shrank (copytruncate), read again from 0"),
        json("tail", "truncations");
    /// Bytes seen in a file but truncated away before they were read, with
    /// no copy holding them: copytruncate's inherent loss, as far as seen.
    tail_copytruncate_lost_bytes: Daemon,
        metric("tail_copytruncate_lost_bytes", "Bytes truncated away before they were read, with no copy found"),
        json("tail", "copytruncate_lost_bytes");
    /// Checkpointed files with lines not yet handled that were gone at start.
    tail_files_missing: Daemon,
        metric("tail_files_missing", "Checkpointed files with unhandled lines that were gone at start"),
        json("tail", "files_missing");
    /// Checkpoint writes that failed (retried).
    tail_checkpoint_errors: Daemon,
        metric("tail_checkpoint_errors", "Tail checkpoint writes that failed"),
        json("tail", "checkpoint_errors");
    /// Tail submits refused because the disk queue could not write (a full
    /// disk): the source paused and read the same lines again (issue 12).
    tail_queue_unavailable: Daemon,
        metric("tail_queue_unavailable", "Tail submits refused because the disk queue could not write; the source paused and retried the same lines"),
        json("tail", "queue_unavailable");
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The declared counters of `sections`, in declaration order.
    pub fn counters(sections: &[Section]) -> impl Iterator<Item = &'static Counter> + '_ {
        COUNTERS.iter().filter(|c| sections.contains(&c.section))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_unique() {
        let mut names: Vec<_> = COUNTERS
            .iter()
            .filter_map(|c| c.metric.as_ref())
            .map(|m| m.name)
            .collect();
        let mut keys: Vec<_> = COUNTERS
            .iter()
            .filter_map(|c| c.json)
            .map(|k| k.join("."))
            .collect();
        let (n, k) = (names.len(), keys.len());
        names.sort_unstable();
        names.dedup();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!((names.len(), keys.len()), (n, k));
    }

    #[test]
    fn each_row_reads_its_own_field() {
        let stats = Stats::default();
        Stats::add(&stats.tail_rotations, 3);
        let read: Vec<u64> = COUNTERS.iter().map(|c| (c.value)(&stats).load(Relaxed)).collect();
        assert_eq!(read.iter().sum::<u64>(), 3);
        let row = COUNTERS
            .iter()
            .find(|c| c.json == Some(&["tail", "rotations"][..]))
            .unwrap();
        assert_eq!((row.value)(&stats).load(Relaxed), 3);
    }
}
