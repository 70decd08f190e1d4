//! Labelled metrics: per source, route, plugin, sink, dead-letter kind and
//! auth scope, plus the stream's counters.
//!
//! Every value lives in exactly one atomic: a `prometheus-client` metric
//! here, or a declared counter of [`super::Stats`]. `/metrics` and
//! `/v1/stats` both read those same atomics, so the two views cannot
//! disagree.
//!
//! The hot path never builds a label set: each source, route, plugin and
//! sink resolves its metric handles once (a read-locked map lookup by `&str`,
//! no allocation) and increments atomics from then on. The registry is
//! assembled per scrape ([`super::expose`]) from clones of the families
//! (clones share their values), which costs microseconds.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::runtime::FailureKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InvocationLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LogDropLabels {
    plugin: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ScopeLabels {
    scope: &'static str,
}

pub(super) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

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

/// One plugin's counters and histograms.
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

/// Every labelled metric of the daemon, and the stream's counters.
pub struct Metrics {
    pub(super) ingested: Family<SourceLabels, Counter>,
    sources: Handles<Counter>,
    pub(super) routed: Family<RouteLabels, Counter>,
    routes: Handles<Counter>,
    pub(super) invocations: Family<InvocationLabels, Counter>,
    pub(super) durations: HistogramFamily<PluginLabels>,
    pub(super) fuel: HistogramFamily<PluginLabels>,
    pub(super) log_dropped: Family<LogDropLabels, Counter>,
    plugins: Handles<Arc<PluginMetrics>>,
    pub(super) dead_letters: Family<KindLabels, Counter>,
    dead_letter_kinds: Handles<Counter>,
    pub(super) sink_writes: Family<SinkLabels, Counter>,
    pub(super) sink_errors: Family<SinkLabels, Counter>,
    pub(super) sink_retries: Family<SinkLabels, Counter>,
    pub(super) sink_pending: Family<SinkLabels, Gauge>,
    sinks: Handles<Arc<SinkMetrics>>,
    /// Events re-ingested through `POST /v1/replay`.
    pub replayed: Counter,
    /// Events handed to stream subscribers.
    pub stream_sent: Counter,
    /// Subscribers cut off for falling too far behind.
    pub stream_cutoffs: Counter,
    pub stream_subscribers: Gauge,
    /// Bytes of the disk queue's segment files (issue 12).
    pub queue_bytes: Gauge,
    /// Age in seconds of the oldest event in the disk queue not yet acked
    /// (the first event of the oldest segment holding one).
    pub queue_oldest_age: Gauge<f64, AtomicU64>,
    pub(super) unauthorized: Family<ScopeLabels, Counter>,
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
            queue_bytes: Gauge::default(),
            queue_oldest_age: Gauge::default(),
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
