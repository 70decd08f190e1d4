//! `[stream]`: the live `/v1/stream` of routed events (the hub itself is in
//! telemetry; these are its settings).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::validate::Validator;

/// `[stream]` settings. Applied when the daemon starts: the hub and every
/// subscription are sized then (see [`super::restart_only_changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamConfig {
    /// Events buffered per subscriber before it is cut off.
    pub buffer: usize,
    /// Open subscriptions allowed at once; more are refused with 503.
    pub max_subscribers: usize,
    /// How long a cut-off subscriber (or, at shutdown, any subscriber) has
    /// to read what was buffered and its final line before its connection
    /// is closed.
    pub cutoff_grace: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            buffer: 1024,
            max_subscribers: 64,
            cutoff_grace: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub buffer: Option<Spanned<i64>>,
    pub max_subscribers: Option<Spanned<i64>>,
    pub cutoff_grace: Option<Spanned<String>>,
}

impl Validator<'_> {
    pub fn stream(&mut self, raw: &RawStream) -> StreamConfig {
        let d = StreamConfig::default();
        StreamConfig {
            buffer: self.int(&raw.buffer, "stream.buffer", 1..1_000_001, d.buffer as i64) as usize,
            max_subscribers: self.int(
                &raw.max_subscribers,
                "stream.max_subscribers",
                1..100_001,
                d.max_subscribers as i64,
            ) as usize,
            cutoff_grace: self.duration(&raw.cutoff_grace, "stream.cutoff_grace", d.cutoff_grace),
        }
    }
}
