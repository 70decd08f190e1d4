//! `GET /v1/stats`: the same atomics as `/metrics`, as one JSON document of
//! totals (sums of the labelled metrics) and every declared counter that
//! has a key ([`super::counters`], placed by its section).

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Map, Value};

use super::counters::{Section, Stats};
use crate::runtime::FailureKind;

impl Stats {
    /// The `/v1/stats` document; its keys keep their order.
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
        let mut out = Map::new();
        put(&mut out, "ingested", json!(m.ingested_total()));
        put(
            &mut out,
            "ingested_by_source",
            Value::Object(pairs(m.ingested_by_source())),
        );
        self.counters_into(&mut out, &[Section::Ingest, Section::Routing]);
        put(&mut out, "routed", Value::Object(pairs(m.routed_by_route())));
        put(&mut out, "invocations_ok", json!(ok));
        put(&mut out, "invocation_failures", Value::Object(failures));
        put(&mut out, "plugins", Value::Object(plugins));
        put(&mut out, "plugin_log_lines_dropped", json!(log_lines_dropped));
        put(
            &mut out,
            "dead_letters",
            json!(dead_letters.iter().map(|(_, n)| n).sum::<u64>()),
        );
        put(
            &mut out,
            "dead_letters_by_kind",
            Value::Object(pairs(dead_letters)),
        );
        self.counters_into(&mut out, &[Section::DeadLetters, Section::Daemon]);
        put(&mut out, "sink_errors", json!(sink_errors));
        put(&mut out, "sinks", Value::Object(sinks));
        put(
            &mut out,
            "stream",
            json!({
                "subscribers": m.stream_subscribers.get(),
                "sent": m.stream_sent.get(),
                "cutoffs": m.stream_cutoffs.get(),
            }),
        );
        Value::Object(out)
    }

    /// Adds the declared counters of `sections` that have a key, in order;
    /// a two-key path goes into an object made on its first counter.
    fn counters_into(&self, out: &mut Map<String, Value>, sections: &[Section]) {
        for c in Stats::counters(sections) {
            let Some(path) = c.json else { continue };
            let value = json!((c.value)(self).load(Relaxed));
            match path {
                [key] => {
                    out.insert((*key).into(), value);
                }
                [group, key] => {
                    let inner = out.entry(*group).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(inner) = inner {
                        inner.insert((*key).into(), value);
                    }
                }
                _ => unreachable!("counter keys are one or two deep: {path:?}"),
            }
        }
    }
}

fn put(out: &mut Map<String, Value>, key: &str, value: Value) {
    out.insert(key.into(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's keys in order, nested ones as `outer.inner`.
    fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, inner) in m {
                let path = format!("{prefix}{k}");
                out.push(path.clone());
                if prefix.is_empty() && ["tail", "stream"].contains(&k.as_str()) {
                    keys(inner, &format!("{path}."), out);
                }
            }
        }
    }

    #[test]
    fn the_document_keeps_its_shape_and_order() {
        let stats = Stats::default();
        Stats::add(&stats.tail_lines, 2);
        Stats::add(&stats.refused_queue_full, 1);
        let v = stats.to_json();
        let mut got = Vec::new();
        keys(&v, "", &mut got);
        let want = "ingested ingested_by_source refused_queue_full refused_queue_backlog refused_queue_unavailable disk_queue unmatched emitted routed \
            invocations_ok invocation_failures plugins plugin_log_lines_dropped dead_letters \
            dead_letters_by_kind dead_letter_errors dead_letters_lost sink_sync_errors reloads reload_failures \
            plugins_compiled plugins_from_cache plugin_load_errors tail tail.lines \
            tail.lines_handled tail.bad_lines tail.rotations tail.truncations \
            tail.copytruncate_lost_bytes tail.files_missing tail.checkpoint_errors tail.queue_unavailable sink_errors \
            sinks stream stream.subscribers stream.sent stream.cutoffs";
        assert_eq!(got.join(" "), want);
        assert_eq!(v["tail"]["lines"], 2);
        assert_eq!(v["refused_queue_full"], 1);
    }
}
