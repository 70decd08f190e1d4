//! Issue 16: a plugin cannot take the daemon down. A host call that would
//! outlive the deadline ends as `timeout` (handler, start function,
//! `_initialize`, `plugin run`). What a plugin causes is bounded too
//! (cascades, log bytes, failure text): `budgets.rs`. Loading and signals
//! while starting are in `loading.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{request, TestDaemon};

const FIVE_SECONDS: u64 = 5_000_000_000;

/// The timing bound for "ended at the deadline, not after the sleep": the
/// sleep is 5 s, the deadline 250 ms; a loaded machine gets the rest.
const WELL_BEFORE_THE_SLEEP: Duration = Duration::from_millis(2500);

pub fn outcome(reply: &Value) -> (&str, &str) {
    let h = &reply["events"][0]["handlers"][0];
    (
        h["outcome"].as_str().unwrap_or("?"),
        h["message"].as_str().unwrap_or(""),
    )
}

/// Posts `fast.Go` with `?wait=true`; its latency.
pub async fn fast_event(addr: std::net::SocketAddr) -> Duration {
    let t = Instant::now();
    let json = [("content-type", "application/json")];
    let r = request(
        addr,
        "POST",
        "/v1/events?wait=true",
        &json,
        br#"{"name":"fast.Go"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(outcome(&r.body).0, "ok", "{}", r.body);
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_sleeping_in_poll_oneoff_times_out_and_others_keep_their_latency() {
    let toml = concat!(
        r#"
[plugin.sleepy]
timeout = "250ms"

[[route]]
name = "slow"
match = { name = "slow.*" }
handlers = ["sleepy"]

[[route]]
name = "fast"
match = { name = "fast.*" }
handlers = ["quick"]
"#,
        seen_route!()
    );
    let plugins = [
        ("sleepy", fixtures::sleeper(FIVE_SECONDS, 1, false, false)),
        ("quick", fixtures::emitter("seen.quick")),
    ];
    let mut d = TestDaemon::start_with(toml, &plugins, "workers = 2").await;
    // Two sleepers would have held both workers for 5 s.
    for _ in 0..2 {
        let r = d.post_json("/v1/events", &json!({"name": "slow.Nap"})).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let t = Instant::now();
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "fast.Go"}))
        .await;
    let fast = t.elapsed();
    assert_eq!(outcome(&r.body).0, "ok", "{}", r.body);
    assert!(
        fast < WELL_BEFORE_THE_SLEEP,
        "a good handler waited {fast:?} behind sleeping ones"
    );

    let t = Instant::now();
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "slow.Nap"}))
        .await;
    let slow = t.elapsed();
    let (kind, message) = outcome(&r.body);
    assert_eq!(kind, "timeout", "{}", r.body);
    assert!(
        message.contains("poll_oneoff would wait 5s, past the deadline of 250ms"),
        "{message}"
    );
    assert!(
        slow < WELL_BEFORE_THE_SLEEP,
        "the sleeper's outcome took {slow:?}"
    );

    let t = Instant::now();
    d.shutdown().await;
    assert!(
        t.elapsed() < WELL_BEFORE_THE_SLEEP,
        "shutdown took {:?}",
        t.elapsed()
    );
    let timeouts = d
        .dead_letters()
        .into_iter()
        .filter(|l| l["kind"] == "timeout" && l["plugin"] == "sleepy")
        .count();
    assert_eq!(timeouts, 3, "every sleeping invocation is a dead letter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeps_within_the_deadline_still_work_and_many_short_ones_add_up_to_a_timeout() {
    let toml = r#"
[plugin.naps]
timeout = "2s"

[plugin.insomniac]
timeout = "300ms"

[[route]]
name = "naps"
match = { name = "nap.*" }
handlers = ["naps"]

[[route]]
name = "insomniac"
match = { name = "many.*" }
handlers = ["insomniac"]
"#;
    let plugins = [
        // 3 × 20 ms, inside a 2 s deadline.
        ("naps", fixtures::sleeper(20_000_000, 3, false, false)),
        // 1000 × 50 ms, against a 300 ms deadline.
        ("insomniac", fixtures::sleeper(50_000_000, 1000, false, false)),
    ];
    let mut d = TestDaemon::start(toml, &plugins).await;
    let t = Instant::now();
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "nap.Short"}))
        .await;
    assert_eq!(outcome(&r.body).0, "ok", "{}", r.body);
    assert!(t.elapsed() >= Duration::from_millis(60), "the guest slept");

    let t = Instant::now();
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "many.Naps"}))
        .await;
    let (kind, message) = outcome(&r.body);
    assert_eq!(kind, "timeout", "{}", r.body);
    assert!(message.contains("past the deadline of 300ms"), "{message}");
    assert!(t.elapsed() < WELL_BEFORE_THE_SLEEP, "took {:?}", t.elapsed());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_start_function_or_initialize_fails_the_load_as_timeout_without_holding_start_up() {
    let toml = r#"
[[route]]
name = "all"
match = { name = "a.*" }
handlers = ["starter", "initializer", "quick"]
"#;
    let ten_seconds = 2 * FIVE_SECONDS;
    let plugins = [
        ("starter", fixtures::sleeper(ten_seconds, 0, true, false)),
        ("initializer", fixtures::sleeper(ten_seconds, 0, false, true)),
        ("quick", fixtures::logger()),
    ];
    let t = Instant::now();
    let mut d = TestDaemon::start(toml, &plugins).await;
    assert!(
        t.elapsed() < WELL_BEFORE_THE_SLEEP,
        "start-up took {:?}",
        t.elapsed()
    );
    let listing = d.get("/v1/plugins").await.body;
    let error = |name: &str| -> String {
        listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["error"].as_str())
            .unwrap_or("")
            .to_string()
    };
    for name in ["starter", "initializer"] {
        let e = error(name);
        assert!(
            e.contains(&format!("plugin {name:?}")) && e.contains("timeout: poll_oneoff would wait 10s"),
            "{name}: {e}"
        );
    }
    assert_eq!(error("quick"), "");
    let r = d.post_json("/v1/events?wait=true", &json!({"name": "a.B"})).await;
    let outcomes: Vec<&str> = r.body["events"][0]["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unavailable", "unavailable", "ok"], "{}", r.body);
    d.shutdown().await;
}

#[tokio::test]
async fn plugin_run_ends_a_sleeping_handler_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("sleepy.wat");
    std::fs::write(&wat, fixtures::sleeper(FIVE_SECONDS, 1, false, false)).unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, r#"{"name": "slow.Nap"}"#).unwrap();
    let t = Instant::now();
    let out = crate::harness::run(
        crate::harness::switchyard(["plugin", "run"])
            .arg(&wat)
            .arg("--event")
            .arg(&ev)
            .args(["--timeout", "250ms", "--json"]),
    )
    .await;
    assert!(t.elapsed() < WELL_BEFORE_THE_SLEEP, "took {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "timeout", "{v}");
    assert!(v["micros"].as_u64().unwrap() < 1_000_000, "{v}");
}
