//! What the daemon counts and shows about itself, and the live stream of
//! routed events.
//!
//! - [`counters`]: the plain counters, each declared once (field, metric
//!   name and help, `/v1/stats` key) in one row;
//! - [`metrics`]: labelled metrics (per source, route, plugin, sink,
//!   dead-letter kind), resolved once per key and shared with the workers;
//! - [`expose`]: the Prometheus exposition at `GET /metrics`; `/v1/stats`
//!   is [`Stats::to_json`] ([`json`]). Both read the same atomics;
//! - [`hub`]: the live-stream hub workers publish to (`GET /v1/stream`'s
//!   HTTP body is in the HTTP layer, `http/stream.rs`).
//!
//! Sits above `config` and `runtime` (it names failure kinds and the stream
//! settings), below everything that counts.

pub mod counters;
pub mod expose;
pub mod hub;
mod json;
pub mod metrics;

pub use counters::Stats;
pub use expose::{render, Format, Live};
pub use hub::{StreamHub, SubscribeError, Subscription};
pub use metrics::{Metrics, PluginMetrics, SinkMetrics, SCOPE_ADMIN, SCOPE_INGEST};
