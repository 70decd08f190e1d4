//! The Prometheus exposition at `GET /metrics`: every labelled metric of
//! [`super::Metrics`], every declared counter that has a metric name
//! ([`super::counters`], placed by its section), and the live values read at
//! scrape time. Text format 0.0.4 by default, OpenMetrics 1.0 when asked.

use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::counters::{Section, Stats};

/// Content type of the Prometheus text format this module writes.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Content type of the OpenMetrics text format, served when asked for.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Values read at scrape time from outside the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Events accepted and not yet fully handled; `None` while starting.
    pub queue_depth: Option<u64>,
    pub queue_capacity: Option<u64>,
    /// Config and plugins loaded, workers running.
    pub ready: bool,
}

/// Which text format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (what every scraper reads).
    Prometheus,
    /// OpenMetrics 1.0 text, when the scraper asks for it.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics if the `Accept` header names it, else Prometheus text.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Registers the declared counters of `section` ([`super::counters`]).
fn counters(r: &mut Registry, stats: &Stats, section: Section) {
    for c in Stats::counters(&[section]) {
        if let Some(m) = &c.metric {
            r.register(m.name, m.help, ConstCounter::new((c.value)(stats).load(Relaxed)));
        }
    }
}

/// The whole exposition: every counter of `stats`, its labelled metrics,
/// and the live values.
pub fn render(stats: &Stats, live: Live, format: Format) -> String {
    let m = &stats.metrics;
    let mut r = Registry::with_prefix("switchyard");
    r.register(
        "build",
        "switchyard build information",
        Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
    );
    r.register(
        "ready",
        "1 once config and plugins are loaded and workers run (see /readyz)",
        ConstGauge::new(i64::from(live.ready)),
    );
    r.register(
        "events_ingested",
        "Events accepted from producers, by source",
        m.ingested.clone(),
    );
    r.register(
        "events_replayed",
        "Events re-ingested from the dead-letter log (POST /v1/replay); also counted as ingested",
        m.replayed.clone(),
    );
    counters(&mut r, stats, Section::Ingest);
    r.register(
        "events_routed",
        "Events (ingested or emitted) taken by a route, by route",
        m.routed.clone(),
    );
    counters(&mut r, stats, Section::Routing);
    r.register(
        "handler_invocations",
        "Handler invocations, by plugin and outcome (ok or the failure kind)",
        m.invocations.clone(),
    );
    r.register_with_unit(
        "handler_duration",
        "Wall-clock time of handler invocations, by plugin",
        Unit::Seconds,
        m.durations.clone(),
    );
    r.register(
        "handler_fuel_used",
        "Fuel (about one unit per wasm instruction) used per invocation, by plugin",
        m.fuel.clone(),
    );
    r.register(
        "plugin_log_lines_dropped",
        "Plugin log lines dropped, by plugin and reason (rate_limited, invocation_cap)",
        m.log_dropped.clone(),
    );
    if let Some(depth) = live.queue_depth {
        r.register(
            "queue_depth",
            "Events accepted and not yet fully handled",
            ConstGauge::new(depth as i64),
        );
    }
    if let Some(cap) = live.queue_capacity {
        r.register(
            "queue_capacity",
            "Events the queue holds before ingest answers 503",
            ConstGauge::new(cap as i64),
        );
    }
    r.register_with_unit(
        "queue_disk",
        "Bytes of the disk queue's segment files",
        Unit::Bytes,
        m.queue_bytes.clone(),
    );
    r.register_with_unit(
        "queue_oldest_event_age",
        "Age of the oldest event in the disk queue not yet acknowledged (by segment: at most one segment's span older than the true oldest)",
        Unit::Seconds,
        m.queue_oldest_age.clone(),
    );
    r.register(
        "dead_letters",
        "Dead letters, by kind (failure kind or reason): written to the dead-letter log, or carried whole in the daemon's log when it could not take them (dead_letters_lost_total)",
        m.dead_letters.clone(),
    );
    counters(&mut r, stats, Section::DeadLetters);
    r.register(
        "sink_writes",
        "Events written by a sink (lines written to its file or stdout, events its webhook receiver accepted), by sink; those it could not write or deliver are in sink_errors_total",
        m.sink_writes.clone(),
    );
    r.register(
        "sink_errors",
        "Events a sink could not write or deliver (each dead-lettered), and failed flushes, by sink",
        m.sink_errors.clone(),
    );
    r.register(
        "sink_retries",
        "Webhook requests that failed and were retried, by sink",
        m.sink_retries.clone(),
    );
    r.register(
        "sink_pending",
        "Events in a webhook sink not yet delivered or dead-lettered, by sink",
        m.sink_pending.clone(),
    );
    r.register(
        "stream_subscribers",
        "Open /v1/stream connections",
        m.stream_subscribers.clone(),
    );
    r.register(
        "stream_events_sent",
        "Events handed to /v1/stream subscribers",
        m.stream_sent.clone(),
    );
    r.register(
        "stream_cutoffs",
        "Stream subscribers cut off for falling too far behind",
        m.stream_cutoffs.clone(),
    );
    r.register(
        "http_unauthorized",
        "Requests refused with 401, by token scope (ingest, admin)",
        m.unauthorized.clone(),
    );
    counters(&mut r, stats, Section::Daemon);
    let mut out = String::with_capacity(8 << 10);
    let written = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut out, &r),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &r),
    };
    // Writing into a String cannot fail.
    written.expect("encoding metrics into a String");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FailureKind;

    #[test]
    fn handles_are_shared_with_the_family() {
        let stats = Stats::default();
        let m = &stats.metrics;
        m.source("http").inc_by(3);
        m.source("http").inc();
        m.source("tail:/var/log/a.log").inc();
        m.plugin("p")
            .invocation(Err(FailureKind::OutOfFuel), 0.001, 5_000);
        m.plugin("p").invocation(Ok(()), 0.002, 7_000);
        assert_eq!(m.ingested_total(), 5);
        let text = render(&stats, Live::default(), Format::Prometheus);
        assert!(
            text.contains("switchyard_events_ingested_total{source=\"http\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_handler_invocations_total{plugin=\"p\",outcome=\"out_of_fuel\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_handler_invocations_total{plugin=\"p\",outcome=\"trap\"} 0\n"),
            "every outcome exists from the start: {text}"
        );
        assert!(
            text.contains("switchyard_handler_fuel_used_count{plugin=\"p\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("switchyard_reloads_total 0\n"), "{text}");
        assert!(!text.contains("switchyard_queue_depth"), "absent while starting");
        let om = render(&stats, Live::default(), Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
    }

    /// The families and their order as before issue 11 (captured from the
    /// exposition of the code before the counters were declared once).
    #[test]
    fn families_keep_their_names_and_order() {
        let live = Live {
            queue_depth: Some(1),
            queue_capacity: Some(2),
            ready: true,
        };
        let stats = Stats::default();
        // Families without a series are left out of the text: one each.
        let m = &stats.metrics;
        m.source("http");
        m.route("r");
        m.plugin("p");
        m.dead_letter("trap");
        m.sink("s");
        let text = render(&stats, live, Format::Prometheus);
        let got: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE switchyard_"))
            .collect();
        let want = "build_info gauge;ready gauge;events_ingested_total counter;events_replayed_total counter;\
            queue_full_refusals_total counter;queue_backlog_refusals_total counter;\
            queue_unavailable_refusals_total counter;queue_fsyncs_total counter;queue_write_errors_total counter;\
            queue_redelivered_total counter;queue_poison_events_total counter;queue_torn_records_total counter;\
            queue_corrupt_records_total counter;events_routed_total counter;events_unmatched_total counter;\
            events_emitted_total counter;handler_invocations_total counter;handler_duration_seconds histogram;\
            handler_fuel_used histogram;plugin_log_lines_dropped_total counter;queue_depth gauge;\
            queue_capacity gauge;queue_disk_bytes gauge;queue_oldest_event_age_seconds gauge;dead_letters_total counter;dead_letter_write_errors_total counter;\
            dead_letters_lost_total counter;sink_sync_errors_total counter;sink_writes_total counter;sink_errors_total counter;\
            sink_retries_total counter;sink_pending gauge;stream_subscribers gauge;\
            stream_events_sent_total counter;stream_cutoffs_total counter;http_unauthorized_total counter;\
            reloads_total counter;reload_failures_total counter;plugins_compiled_total counter;\
            plugins_from_cache_total counter;plugin_load_errors_total counter;http_body_timeouts_total counter;\
            http_connections_refused_total counter;http_send_timeouts_total counter;tail_lines_total counter;\
            tail_lines_handled_total counter;tail_bad_lines_total counter;tail_rotations_total counter;\
            tail_truncations_total counter;tail_copytruncate_lost_bytes_total counter;\
            tail_files_missing_total counter;tail_checkpoint_errors_total counter;tail_queue_unavailable_total counter";
        assert_eq!(got.join(";"), want);
    }
}
