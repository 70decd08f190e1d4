//! `/metrics` after known traffic, parsed as Prometheus text by a real
//! parser, with every counter exact; `/v1/stats` agrees; plugin log lines
//! are rate-limited and counted, in JSON logs.

use prometheus_parse::{LineInfo, Scrape, Value as Prom};
use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{request, write_setup, Binary, TestDaemon};

/// Parses an exposition, insisting that every line is a comment, a sample or
/// empty (the parser alone skips what it does not understand).
pub fn parse_metrics(text: &str) -> Scrape {
    for line in text.lines() {
        match LineInfo::parse(line) {
            LineInfo::Ignored => panic!("not Prometheus text: {line:?}\n{text}"),
            LineInfo::Sample { value, .. } => {
                assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}")
            }
            LineInfo::Type { sample_type, .. } => {
                assert_ne!(sample_type, prometheus_parse::SampleType::Untyped, "{line}")
            }
            _ => {}
        }
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the one sample with this name and exactly these labels.
pub fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&prometheus_parse::Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect();
    match found.as_slice() {
        [one] => match &one.value {
            Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => *v,
            other => panic!("{metric}: not a number: {other:?}"),
        },
        _ => panic!(
            "{metric}{labels:?}: {} samples; have: {:#?}",
            found.len(),
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == metric)
                .map(|s| s.labels.to_string())
                .collect::<Vec<_>>()
        ),
    }
}

pub async fn scrape(d: &TestDaemon) -> (Scrape, String) {
    let r = d.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.body.as_str().expect("metrics are text").to_string();
    (parse_metrics(&text), text)
}

const TRAFFIC: &str = r#"
[[route]]
name = "good"
match = { name = "a.Good" }
handlers = ["log"]
sinks = ["archive"]

[[route]]
name = "bad"
match = { name = "a.Bad" }
handlers = ["fail", "trap", "log"]

[[route]]
name = "emits"
match = { name = "a.Emit" }
handlers = ["emit"]

[[route]]
name = "emitted"
match = { name = "a.Emitted" }
sinks = ["archive"]

[sink.archive]
type = "file"
path = "archive.ndjson"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exact_after_known_traffic() {
    let mut d = TestDaemon::start(
        TRAFFIC,
        &[
            ("log", fixtures::logger()),
            ("fail", fixtures::failing()),
            ("trap", fixtures::trap()),
            ("emit", fixtures::emitter("a.Emitted")),
        ],
    )
    .await;
    let (before, _) = scrape(&d).await;
    for p in ["log", "fail", "trap", "emit"] {
        for outcome in ["ok", "trap", "out_of_fuel", "handler_error"] {
            assert_eq!(
                sample(
                    &before,
                    "switchyard_handler_invocations_total",
                    &[("plugin", p), ("outcome", outcome)]
                ),
                0.0,
                "loaded plugins have every series from the start"
            );
        }
    }
    assert_eq!(sample(&before, "switchyard_ready", &[]), 1.0);

    for name in [
        "a.Good",
        "a.Good",
        "a.Good",
        "a.Bad",
        "a.Bad",
        "a.Emit",
        "a.Nothing",
    ] {
        let r = d.post_json("/v1/events?wait=true", &json!({"name": name})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let (m, text) = scrape(&d).await;
    let c = |name: &str, labels: &[(&str, &str)]| sample(&m, name, labels);
    assert_eq!(c("switchyard_events_ingested_total", &[("source", "http")]), 7.0);
    assert_eq!(c("switchyard_events_routed_total", &[("route", "good")]), 3.0);
    assert_eq!(c("switchyard_events_routed_total", &[("route", "bad")]), 2.0);
    assert_eq!(c("switchyard_events_routed_total", &[("route", "emits")]), 1.0);
    assert_eq!(c("switchyard_events_routed_total", &[("route", "emitted")]), 1.0);
    assert_eq!(c("switchyard_events_unmatched_total", &[]), 1.0);
    assert_eq!(c("switchyard_events_emitted_total", &[]), 1.0);
    let inv = |p: &str, o: &str| {
        c(
            "switchyard_handler_invocations_total",
            &[("plugin", p), ("outcome", o)],
        )
    };
    assert_eq!(
        inv("log", "ok"),
        5.0,
        "3 good events, and the 2 bad ones after two failures"
    );
    assert_eq!(inv("fail", "handler_error"), 2.0);
    assert_eq!(inv("fail", "ok"), 0.0);
    assert_eq!(inv("trap", "trap"), 2.0);
    assert_eq!(inv("emit", "ok"), 1.0);
    assert_eq!(inv("log", "trap"), 0.0);
    assert_eq!(
        c("switchyard_handler_duration_seconds_count", &[("plugin", "log")]),
        5.0
    );
    assert_eq!(
        c("switchyard_handler_fuel_used_count", &[("plugin", "trap")]),
        2.0
    );
    assert!(c("switchyard_handler_fuel_used_sum", &[("plugin", "log")]) > 0.0);
    let buckets = m
        .samples
        .iter()
        .find(|s| s.metric == "switchyard_handler_duration_seconds" && s.labels.get("plugin") == Some("log"))
        .expect("the latency histogram");
    match &buckets.value {
        Prom::Histogram(h) => {
            assert!(h.len() > 5);
            assert_eq!(h.last().unwrap().count, 5.0, "+Inf holds every observation");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c("switchyard_dead_letters_total", &[("kind", "handler_error")]),
        2.0
    );
    assert_eq!(c("switchyard_dead_letters_total", &[("kind", "trap")]), 2.0);
    assert_eq!(c("switchyard_dead_letter_write_errors_total", &[]), 0.0);
    assert_eq!(c("switchyard_sink_writes_total", &[("sink", "archive")]), 4.0);
    assert_eq!(c("switchyard_sink_errors_total", &[("sink", "archive")]), 0.0);
    assert_eq!(c("switchyard_queue_depth", &[]), 0.0);
    assert_eq!(c("switchyard_queue_capacity", &[]), 10_000.0);
    assert_eq!(c("switchyard_queue_full_refusals_total", &[]), 0.0);
    assert_eq!(c("switchyard_stream_subscribers", &[]), 0.0);
    assert_eq!(c("switchyard_stream_cutoffs_total", &[]), 0.0);
    assert_eq!(
        c("switchyard_http_unauthorized_total", &[("scope", "ingest")]),
        0.0
    );
    assert_eq!(c("switchyard_reloads_total", &[]), 0.0);
    assert_eq!(c("switchyard_plugin_load_errors_total", &[]), 0.0);
    assert_eq!(c("switchyard_events_replayed_total", &[]), 0.0);
    assert_eq!(
        c("switchyard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    let mut families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let n = families.len();
    families.sort();
    families.dedup();
    assert_eq!(families.len(), n, "no metric family is exposed twice");
    for line in text
        .lines()
        .filter(|l| l.starts_with("# TYPE ") && l.ends_with(" counter"))
    {
        assert!(
            line.split(' ').nth(2).unwrap().ends_with("_total"),
            "counters end in _total: {line}"
        );
    }

    // The JSON view reads the same atomics.
    let s = d.get("/v1/stats").await.body;
    assert_eq!(s["ingested"], 7);
    assert_eq!(s["ingested_by_source"], json!({"http": 7}));
    assert_eq!(s["unmatched"], 1);
    assert_eq!(s["emitted"], 1);
    assert_eq!(s["invocations_ok"], 6);
    assert_eq!(s["invocation_failures"]["handler_error"], 2);
    assert_eq!(s["invocation_failures"]["trap"], 2);
    assert_eq!(s["invocation_failures"]["timeout"], 0);
    assert_eq!(s["plugins"]["log"]["ok"], 5);
    assert_eq!(
        s["routed"],
        json!({"bad": 2, "emits": 1, "emitted": 1, "good": 3})
    );
    assert_eq!(s["dead_letters"], 4);
    assert_eq!(s["dead_letters_by_kind"], json!({"handler_error": 2, "trap": 2}));
    assert_eq!(s["sinks"]["archive"]["writes"], 4);
    assert_eq!(s["sink_errors"], 0);
    assert_eq!(d.dead_letters().len(), 4, "the counters match the log");

    // A scraper asking for OpenMetrics gets it.
    let om = request(
        d.addr,
        "GET",
        "/metrics",
        &[("accept", "application/openmetrics-text; version=1.0.0")],
        Vec::new(),
    )
    .await;
    assert!(om.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.body.as_str().unwrap().ends_with("# EOF\n"));
    d.shutdown().await;
}

/// Logs 50 lines per event at info level.
fn chatty() -> String {
    fixtures::handler(
        r#"(data (i32.const 0) "chatter")"#,
        "(local $i i32) (local.set $i (i32.const 50))
         (loop (call $log (i32.const 2) (i32.const 0) (i32.const 7))
               (local.set $i (i32.sub (local.get $i) (i32.const 1)))
               (br_if 0 (local.get $i)))
         (i32.const 0)",
        "",
    )
}

/// A plugin logging in a tight loop is held to its rate; the rest is
/// counted, summarised once, and the log is JSON with plugin and event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_logs_are_rate_limited_and_json() {
    let dir = write_setup(
        "workers = 1",
        "[plugin.chatty]\n\n[[route]]\nname = \"r\"\nhandlers = [\"chatty\"]\n",
        &[("chatty", chatty())],
    );
    let cfg = dir.path().join("router.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[plugins]\n", "[plugins]\nlog_rate = 1\nlog_burst = 20\n");
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = Binary::start_with(&cfg, &["--log-format", "json"]);
    let addr = daemon.addr;
    let events: Vec<Value> = (0..5)
        .map(|i| json!({"name": "a.Chat", "data": {"i": i}}))
        .collect();
    let r = request(
        addr,
        "POST",
        "/v1/events?wait=true",
        &[("content-type", "application/json")],
        Value::Array(events).to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = request(addr, "GET", "/metrics", &[], Vec::new()).await;
    let m = parse_metrics(m.body.as_str().unwrap());
    let dropped = sample(
        &m,
        "switchyard_plugin_log_lines_dropped_total",
        &[("plugin", "chatty"), ("reason", "rate_limited")],
    );
    assert!(daemon.terminate().await.success());
    let logs: Vec<Value> = daemon
        .log_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let lines: Vec<&Value> = logs
        .iter()
        .filter(|v| v["target"] == "plugin" && v["plugin"] == "chatty")
        .collect();
    assert!(
        (20..=25).contains(&lines.len()),
        "the burst of 20, and a line or two refilled: {}",
        lines.len()
    );
    assert_eq!(
        dropped as usize,
        250 - lines.len(),
        "every line not logged is counted"
    );
    assert!(lines
        .iter()
        .all(|v| v["event"].as_str().is_some_and(|e| e.len() == 26)));
    assert_eq!(lines[0]["message"], "chatter");
    assert_eq!(lines[0]["level"], "INFO");
    let summaries = logs
        .iter()
        .filter(|v| v["plugin"] == "chatty" && v["suppressed"].is_number())
        .count();
    assert!(
        (1..=2).contains(&summaries),
        "summarised at most once a second, not per line: {summaries}"
    );
}
