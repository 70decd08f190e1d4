//! Counters of what the daemon did, shared by ingest and workers.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Value};

use crate::runtime::FailureKind;

#[derive(Default)]
pub struct Stats {
    /// Events accepted from producers (not counting emitted ones).
    pub ingested: AtomicU64,
    /// Requests refused with 503 because the queue was full.
    pub refused_queue_full: AtomicU64,
    /// Events (ingested or emitted) that no route matched.
    pub unmatched: AtomicU64,
    /// Events emitted by plugins and routed.
    pub emitted: AtomicU64,
    pub invocations_ok: AtomicU64,
    /// Failed invocations, indexed like [`FailureKind::ALL`].
    pub invocation_failures: [AtomicU64; 7],
    pub dead_letters: AtomicU64,
    /// Dead letters that could not be written: the only way to lose an event.
    pub dead_letter_errors: AtomicU64,
    pub sink_errors: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn failure(&self, kind: FailureKind) -> &AtomicU64 {
        let i = FailureKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.invocation_failures[i]
    }

    pub fn to_json(&self) -> Value {
        let failures: serde_json::Map<String, Value> = FailureKind::ALL
            .iter()
            .map(|k| (k.as_str().to_string(), json!(self.failure(*k).load(Relaxed))))
            .collect();
        json!({
            "ingested": self.ingested.load(Relaxed),
            "refused_queue_full": self.refused_queue_full.load(Relaxed),
            "unmatched": self.unmatched.load(Relaxed),
            "emitted": self.emitted.load(Relaxed),
            "invocations_ok": self.invocations_ok.load(Relaxed),
            "invocation_failures": failures,
            "dead_letters": self.dead_letters.load(Relaxed),
            "dead_letter_errors": self.dead_letter_errors.load(Relaxed),
            "sink_errors": self.sink_errors.load(Relaxed),
        })
    }
}
