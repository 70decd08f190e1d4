//! Labelled metrics (per source, route, plugin, sink, dead-letter kind) and
//! their Prometheus exposition at `GET /metrics`.
//!
//! Every value lives in exactly one atomic: a `prometheus-client` metric
//! here, or an `AtomicU64` field of [`Stats`]. `/metrics` and `/v1/stats`
//! both read those same atomics, so the two views cannot disagree.
//!
//! The hot path never builds a label set: each source, route, plugin and
//! sink resolves its metric handles once (a read-locked map lookup by `&str`,
//! no allocation) and increments atomics from then on. The registry is
//! assembled per scrape from clones of the families (clones share their
//! values), which costs microseconds and lets counters that live as plain
//! atomics in [`Stats`] be exported as they are.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::log_limit::TokenBucket;
use crate::runtime::FailureKind;
use crate::stats::Stats;

/// Content type of the Prometheus text format this module writes.
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Content type of the OpenMetrics text format, served when asked for.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LogDropLabels {
    plugin: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Handler wall-clock time: 50µs to about 13s, in powers of two-and-a-half.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.5, 14))
}

/// Fuel per invocation: 1,000 to about 4·10⁹, in powers of four.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1_000.0, 4.0, 12))
}

/// Metric handles resolved once per key, looked up by `&str` afterwards.
struct Handles<T> {
    map: RwLock<HashMap<Box<str>, T>>,
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Handles {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Handles<T> {
    fn get(&self, key: &str, make: impl FnOnce() -> T) -> T {
        if let Some(t) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return t.clone();
        }
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.into())
            .or_insert_with(make)
            .clone()
    }

    /// Every key with its handle, sorted by key.
    fn all(&self) -> Vec<(String, T)> {
        let mut v: Vec<(String, T)> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, t)| (k.to_string(), t.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

fn family_child<L, M, C>(family: &Family<L, M, C>, labels: L) -> M
where
    L: Clone + Hash + Eq,
    M: Clone,
    C: MetricConstructor<M>,
{
    family.get_or_create_owned(&labels)
}

/// One plugin's counters and histograms, and its log rate limiter.
pub struct PluginMetrics {
    pub ok: Counter,
    /// Failed invocations, indexed like [`FailureKind::ALL`].
    failures: [Counter; 7],
    pub duration: Histogram,
    pub fuel: Histogram,
    /// Log lines dropped by the per-plugin rate limit.
    pub logs_rate_limited: Counter,
    /// Log lines over the per-invocation cap, dropped in the sandbox.
    pub logs_over_cap: Counter,
    /// Shared by every worker running this plugin.
    pub log_bucket: Mutex<TokenBucket>,
}

impl PluginMetrics {
    pub fn failure(&self, kind: FailureKind) -> &Counter {
        let i = FailureKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.failures[i]
    }

    /// Records one invocation: its outcome, wall-clock time and fuel.
    pub fn invocation(&self, outcome: Result<(), FailureKind>, seconds: f64, fuel: u64) {
        match outcome {
            Ok(()) => self.ok.inc(),
            Err(kind) => self.failure(kind).inc(),
        };
        self.duration.observe(seconds);
        self.fuel.observe(fuel as f64);
    }
}

/// One sink's counters.
pub struct SinkMetrics {
    /// Events that reached the sink's target: lines written to its file or
    /// stdout, events its webhook receiver accepted (issue 18, item 4).
    pub writes: Counter,
    /// Events the sink could not write or deliver (each also dead-lettered),
    /// and failed flushes.
    pub errors: Counter,
    /// Webhook requests that failed and were tried again.
    pub retries: Counter,
    /// Events written to a webhook sink and not yet delivered or dead-lettered.
    pub pending: Gauge,
}

/// Every labelled metric of the daemon, and the few that are not counters
/// of [`Stats`].
pub struct Metrics {
    ingested: Family<SourceLabels, Counter>,
    sources: Handles<Counter>,
    routed: Family<RouteLabels, Counter>,
    routes: Handles<Counter>,
    invocations: Family<InvocationLabels, Counter>,
    durations: HistogramFamily<PluginLabels>,
    fuel: HistogramFamily<PluginLabels>,
    log_dropped: Family<LogDropLabels, Counter>,
    plugins: Handles<Arc<PluginMetrics>>,
    dead_letters: Family<KindLabels, Counter>,
    dead_letter_kinds: Handles<Counter>,
    sink_writes: Family<SinkLabels, Counter>,
    sink_errors: Family<SinkLabels, Counter>,
    sink_retries: Family<SinkLabels, Counter>,
    sink_pending: Family<SinkLabels, Gauge>,
    sinks: Handles<Arc<SinkMetrics>>,
    /// Events re-ingested through `POST /v1/replay`.
    pub replayed: Counter,
    /// Events handed to stream subscribers.
    pub stream_sent: Counter,
    /// Subscribers cut off for falling too far behind.
    pub stream_cutoffs: Counter,
    pub stream_subscribers: Gauge,
    unauthorized: Family<ScopeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            ingested: Family::default(),
            sources: Handles::default(),
            routed: Family::default(),
            routes: Handles::default(),
            invocations: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            fuel: Family::new_with_constructor(fuel_histogram as fn() -> Histogram),
            log_dropped: Family::default(),
            plugins: Handles::default(),
            dead_letters: Family::default(),
            dead_letter_kinds: Handles::default(),
            sink_writes: Family::default(),
            sink_errors: Family::default(),
            sink_retries: Family::default(),
            sink_pending: Family::default(),
            sinks: Handles::default(),
            replayed: Counter::default(),
            stream_sent: Counter::default(),
            stream_cutoffs: Counter::default(),
            stream_subscribers: Gauge::default(),
            unauthorized: Family::default(),
        };
        // Series that exist from the start read 0 rather than being absent,
        // so `rate()` and alerts work before the first occurrence.
        for scope in [SCOPE_INGEST, SCOPE_ADMIN] {
            drop(m.unauthorized.get_or_create(&ScopeLabels { scope }));
        }
        m
    }
}

/// The auth scope of ingest endpoints, as a label value.
pub const SCOPE_INGEST: &str = "ingest";
/// The auth scope of admin endpoints, as a label value.
pub const SCOPE_ADMIN: &str = "admin";

impl Metrics {
    /// The ingest counter of one source (`http`, `tail:<path>`, ...).
    pub fn source(&self, source: &str) -> Counter {
        self.sources.get(source, || {
            family_child(
                &self.ingested,
                SourceLabels {
                    source: source.to_string(),
                },
            )
        })
    }

    /// The counter of events a route took.
    pub fn route(&self, route: &str) -> Counter {
        self.routes.get(route, || {
            family_child(
                &self.routed,
                RouteLabels {
                    route: route.to_string(),
                },
            )
        })
    }

    /// One plugin's handles; created (with every outcome at 0) on first use.
    pub fn plugin(&self, plugin: &str) -> Arc<PluginMetrics> {
        self.plugins.get(plugin, || {
            let p = plugin.to_string();
            let outcome = |outcome: &'static str| {
                family_child(
                    &self.invocations,
                    InvocationLabels {
                        plugin: p.clone(),
                        outcome,
                    },
                )
            };
            let logs = |reason: &'static str| {
                family_child(
                    &self.log_dropped,
                    LogDropLabels {
                        plugin: p.clone(),
                        reason,
                    },
                )
            };
            let labels = PluginLabels { plugin: p.clone() };
            Arc::new(PluginMetrics {
                ok: outcome("ok"),
                failures: FailureKind::ALL.map(|k| outcome(k.as_str())),
                duration: self.durations.get_or_create_owned(&labels),
                fuel: self.fuel.get_or_create_owned(&labels),
                logs_rate_limited: logs("rate_limited"),
                logs_over_cap: logs("invocation_cap"),
                log_bucket: Mutex::new(TokenBucket::new()),
            })
        })
    }

    /// The counter of dead letters of one kind (a failure kind or a reason).
    pub fn dead_letter(&self, kind: &str) -> Counter {
        self.dead_letter_kinds.get(kind, || {
            family_child(
                &self.dead_letters,
                KindLabels {
                    kind: kind.to_string(),
                },
            )
        })
    }

    /// One sink's handles.
    pub fn sink(&self, sink: &str) -> Arc<SinkMetrics> {
        self.sinks.get(sink, || {
            let l = SinkLabels {
                sink: sink.to_string(),
            };
            Arc::new(SinkMetrics {
                writes: self.sink_writes.get_or_create_owned(&l),
                errors: self.sink_errors.get_or_create_owned(&l),
                retries: self.sink_retries.get_or_create_owned(&l),
                pending: self.sink_pending.get_or_create_owned(&l),
            })
        })
    }

    /// A request was refused for a missing or wrong bearer token.
    pub fn unauthorized(&self, scope: &'static str) {
        self.unauthorized.get_or_create(&ScopeLabels { scope }).inc();
    }

    pub fn ingested_total(&self) -> u64 {
        self.sources.all().iter().map(|(_, c)| c.get()).sum()
    }

    pub fn ingested_by_source(&self) -> Vec<(String, u64)> {
        self.sources
            .all()
            .into_iter()
            .map(|(k, c)| (k, c.get()))
            .collect()
    }

    pub fn routed_by_route(&self) -> Vec<(String, u64)> {
        self.routes.all().into_iter().map(|(k, c)| (k, c.get())).collect()
    }

    pub fn plugins(&self) -> Vec<(String, Arc<PluginMetrics>)> {
        self.plugins.all()
    }

    pub fn dead_letters_by_kind(&self) -> Vec<(String, u64)> {
        self.dead_letter_kinds
            .all()
            .into_iter()
            .map(|(k, c)| (k, c.get()))
            .collect()
    }

    pub fn sinks(&self) -> Vec<(String, Arc<SinkMetrics>)> {
        self.sinks.all()
    }
}

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

/// A plain atomic of [`Stats`], exported as a counter.
pub fn atomic(value: &AtomicU64) -> ConstCounter {
    ConstCounter::new(value.load(Relaxed))
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
    r.register(
        "queue_full_refusals",
        "Ingest requests refused with 503 because the queue was full",
        atomic(&stats.refused_queue_full),
    );
    r.register(
        "events_routed",
        "Events (ingested or emitted) taken by a route, by route",
        m.routed.clone(),
    );
    r.register(
        "events_unmatched",
        "Events (ingested or emitted) that no route matched",
        atomic(&stats.unmatched),
    );
    r.register(
        "events_emitted",
        "Events emitted by plugins and routed",
        atomic(&stats.emitted),
    );
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
    r.register(
        "dead_letters",
        "Dead letters, by kind (failure kind or reason): written to the dead-letter log, or carried whole in the daemon's log when it could not take them (dead_letters_lost_total)",
        m.dead_letters.clone(),
    );
    r.register(
        "dead_letter_write_errors",
        "Writes and flushes of the dead-letter log that failed (one per failed call)",
        atomic(&stats.dead_letter_errors),
    );
    r.register(
        "dead_letters_lost",
        "Dead letters not written to the dead-letter log, each carried whole in the daemon's log",
        atomic(&stats.dead_letters_lost),
    );
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
    stats.register_extra(&mut r);
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
}
