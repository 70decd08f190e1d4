//! Issue 16: a plugin cannot take the daemon down. A host call that would
//! outlive the deadline ends as `timeout` (handler, start function,
//! `_initialize`, `plugin run`); a self-routed fan-out stops at the cascade
//! budget; a plugin's log is bounded in bytes. Loading and signals while
//! starting are in `loading.rs`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{read_ndjson, request, write_setup, Binary, TestDaemon};

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

#[test]
fn plugin_run_ends_a_sleeping_handler_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("sleepy.wat");
    std::fs::write(&wat, fixtures::sleeper(FIVE_SECONDS, 1, false, false)).unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, r#"{"name": "slow.Nap"}"#).unwrap();
    let t = Instant::now();
    let out = crate::harness::switchyard(["plugin", "run"])
        .arg(&wat)
        .arg("--event")
        .arg(&ev)
        .args(["--timeout", "250ms", "--json"])
        .output()
        .unwrap();
    assert!(t.elapsed() < WELL_BEFORE_THE_SLEEP, "took {:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "timeout", "{v}");
    assert!(v["micros"].as_u64().unwrap() < 1_000_000, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_routed_fan_out_of_ten_stops_at_the_cascade_budget_in_bounded_memory() {
    let toml = r#"
[[route]]
name = "loop"
match = { name = "loop.*" }
handlers = ["fanout"]

[[route]]
name = "fast"
match = { name = "fast.*" }
handlers = ["quick"]
"#;
    let plugins = [
        ("fanout", fixtures::fanout("loop.Tick", 10)),
        ("quick", fixtures::logger()),
    ];
    let dir = write_setup("workers = 2", toml, &plugins);
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    let addr = daemon.addr;
    let json = [("content-type", "application/json")];
    let t = Instant::now();
    let root = tokio::spawn(async move {
        let r = request(
            addr,
            "POST",
            "/v1/events?wait=true",
            &json,
            br#"{"name":"loop.Tick"}"#.to_vec(),
        )
        .await;
        (r, t.elapsed())
    });
    // Meanwhile a good handler on another route keeps its latency.
    let mut slowest = Duration::ZERO;
    while !root.is_finished() {
        slowest = slowest.max(fast_event(addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (r, took) = root.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let emitted = r.body["events"][0]["emitted"].as_array().unwrap().len();
    assert_eq!(emitted, 1000, "the default budget: 1000 events caused");
    assert!(took < Duration::from_secs(30), "the whole cascade took {took:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "a good handler waited {slowest:?}"
    );
    let peak = daemon.peak_rss_kib();
    eprintln!(
        "fan-out of 10: 1001 invocations in {took:?}; peak RSS {peak} KiB; slowest good event {slowest:?}"
    );
    assert!(peak < 200 << 10, "peak RSS {peak} KiB, over 200 MiB");
    // 1 + 10 + 100 + 890 invocations tried 10 emits each: 10,010 emits, of
    // which 1000 were accepted and 9010 refused at the `emit` call, summed
    // up in one `cascade_limit` letter carrying the root event.
    let letters = read_ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(letters.len(), 1, "one letter for the root, nothing else failed");
    let root_id = r.body["events"][0]["id"].as_str().unwrap();
    assert_eq!(letters[0]["kind"], "cascade_limit");
    assert_eq!(letters[0]["event"]["id"], root_id);
    assert_eq!(letters[0]["plugin"], "fanout");
    let msg = letters[0]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "9010 emits (180200 bytes) refused to plugin(s) fanout after this event caused 1000 events"
        ),
        "{msg}"
    );
    assert!(msg.contains("max_cascade = 1000"), "{msg}");
    let warnings = daemon
        .log_lines()
        .iter()
        .filter(|l| l.contains("cascade budget spent"))
        .count();
    assert!(daemon.terminate().await.success());
    assert_eq!(warnings, 1, "one warning per root event");
}

/// Issue 16, the byte amplifier: a self-routed handler emitting 10 events
/// of 104,000 bytes per call made one 16-byte POST write 9,010 dead letters
/// (942 MB) in 2.6 s. Now emits past `max_cascade_bytes` (16 MiB) are
/// refused to the guest, and each root leaves one small letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_of_large_events_is_held_to_the_cascade_byte_budget() {
    let toml = r#"
[[route]]
name = "loop"
match = { name = "loop.*" }
handlers = ["fanout"]

[[route]]
name = "fast"
match = { name = "fast.*" }
handlers = ["quick"]
"#;
    const BYTES: u64 = 104_000;
    let plugins = [
        ("fanout", fixtures::big_fanout("loop.Tick", 10, BYTES as usize)),
        ("quick", fixtures::logger()),
    ];
    let dir = write_setup("workers = 2", toml, &plugins);
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    let addr = daemon.addr;
    let t = Instant::now();
    // Two roots at once: both workers busy with a cascade.
    let roots: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                let json = [("content-type", "application/json")];
                let body = br#"{"name":"loop.Tick"}"#.to_vec();
                request(addr, "POST", "/v1/events?wait=true", &json, body).await
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while !roots.iter().all(|r| r.is_finished()) {
        slowest = slowest.max(fast_event(addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    let budget = (16u64 << 20) / BYTES; // 161 events fit in 16 MiB
    let mut ids = Vec::new();
    for root in roots {
        let r = root.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let emitted = r.body["events"][0]["emitted"].as_array().unwrap().len() as u64;
        assert_eq!(emitted, budget, "16 MiB of 104,000-byte events");
        ids.push(r.body["events"][0]["id"].as_str().unwrap().to_string());
    }
    let peak = daemon.peak_rss_kib();
    let file = dir.path().join("dead.ndjson");
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    eprintln!(
        "fan-out of 10 x 104,000 bytes, 2 roots: {took:?}; dead letters {size} bytes; peak RSS {peak} KiB; slowest good event {slowest:?}"
    );
    let letters = read_ndjson(&file);
    assert_eq!(letters.len(), 2, "one letter per root");
    for l in &letters {
        assert_eq!(l["kind"], "cascade_limit");
        assert!(
            ids.contains(&l["event"]["id"].as_str().unwrap().to_string()),
            "{l}"
        );
        let msg = l["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!(
                "after this event caused {budget} events ({} bytes)",
                budget * BYTES
            )),
            "{msg}"
        );
        assert!(msg.contains("max_cascade_bytes = 16777216"), "{msg}");
    }
    assert!(size < 64 << 10, "dead-letter file of {size} bytes");
    assert!(peak < 200 << 10, "peak RSS {peak} KiB, over 200 MiB");
    // Both workers run a cascade, so a good event waits for one of them to
    // end: bounded by the budget (162 invocations, under 1 s on an idle
    // machine; before the byte budget, 6 s and 942 MB of letters per root).
    // The margin is for a loaded machine.
    assert!(
        slowest < Duration::from_secs(4),
        "a good handler waited {slowest:?}"
    );
    assert!(daemon.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_logging_16_kib_lines_is_held_to_the_byte_rate() {
    let toml = r#"
[[route]]
name = "chatty"
match = { name = "chatty.*" }
handlers = ["chatty"]
"#;
    let line = 16 << 10;
    let dir = write_setup("", toml, &[("chatty", fixtures::big_logger(line))]);
    // The generated config has a `[plugins]` table: the keys go there.
    let cfg = dir.path().join("router.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[plugins]\n",
        "[plugins]\nlog_bytes = \"64KiB\"\nlog_bytes_burst = \"128KiB\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = Binary::start(&cfg);
    let batch = serde_json::to_vec(&vec![json!({"name": "chatty.Line"}); 50]).unwrap();
    let json = [("content-type", "application/json")];
    let t = Instant::now();
    let mut sent = 0;
    while t.elapsed() < Duration::from_secs(3) {
        let r = request(daemon.addr, "POST", "/v1/events?wait=true", &json, batch.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        sent += 50;
    }
    let elapsed = t.elapsed().as_secs_f64();
    assert!(daemon.terminate().await.success());
    let logged: usize = daemon
        .log_lines()
        .iter()
        .filter(|l| l.contains(&"x".repeat(line)))
        .map(|l| l.len())
        .sum();
    let rate = logged as f64 / elapsed;
    eprintln!("16 KiB lines: {sent} sent in {elapsed:.1}s; {logged} bytes of plugin log, {rate:.0} bytes/s");
    let allowed = (128 << 10) as f64 + (64 << 10) as f64 * elapsed;
    // Each logged line also carries its prefix (time, level, plugin, event).
    assert!(
        logged as f64 <= allowed * 1.05,
        "{logged} bytes logged, {allowed} allowed"
    );
    assert!(logged >= 8 * line, "the burst itself is logged: {logged}");
    assert!(daemon
        .log_lines()
        .iter()
        .any(|l| l.contains("plugin log lines dropped") && l.contains("log_bytes")));
}

/// Issue 16: guest text in a failure bypassed the log limits. A handler
/// calling `fail` with 70,000 bytes made 2000 events write 2000 warnings of
/// 16 KiB (33 MB of daemon log) and 33 MB of dead letters. Now the failure
/// line passes the plugin's log limiter, cut to 1 KiB, and the dead letter
/// keeps 4 KiB of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_failure_message_is_held_to_the_log_limits_and_cut_in_dead_letters() {
    let toml = r#"
[[route]]
name = "bad"
match = { name = "bad.*" }
handlers = ["loud"]
"#;
    let dir = write_setup("", toml, &[("loud", fixtures::big_failure(70_000))]);
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    let batch = serde_json::to_vec(&vec![json!({"name": "bad.Go"}); 100]).unwrap();
    let json = [("content-type", "application/json")];
    let t = Instant::now();
    for _ in 0..20 {
        let r = request(daemon.addr, "POST", "/v1/events?wait=true", &json, batch.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (kind, msg) = outcome(&r.body);
        assert_eq!(kind, "handler_error");
        assert!(
            msg.len() <= 4096 + 32 && msg.ends_with(" bytes more)"),
            "{} bytes",
            msg.len()
        );
    }
    let elapsed = t.elapsed().as_secs_f64();
    assert!(daemon.terminate().await.success());
    let lines = daemon.log_lines();
    let failed: Vec<&String> = lines.iter().filter(|l| l.contains("handler failed")).collect();
    let logged: usize = failed.iter().map(|l| l.len()).sum();
    // The defaults: 256 KiB at once, 64 KiB/s; each line also carries its
    // prefix (time, level, plugin, event, route, kind): under 400 bytes.
    let allowed = (256 << 10) as f64 + (64 << 10) as f64 * elapsed;
    eprintln!(
        "70,000-byte fail(), 2000 events in {elapsed:.1}s: {} failure lines, {logged} bytes logged",
        failed.len()
    );
    assert!(
        (logged as f64) <= allowed + 400.0 * failed.len() as f64,
        "{logged} bytes logged, {allowed} allowed"
    );
    assert!(failed.len() < 2000, "every failure was logged");
    assert!(
        failed.iter().all(|l| l.len() < 1024 + 400 + 32),
        "a line over 1 KiB"
    );
    assert!(lines.iter().any(|l| l.contains("plugin log lines dropped")));
    let letters = read_ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(letters.len(), 2000, "every failure is dead-lettered");
    for l in &letters {
        assert_eq!(l["kind"], "handler_error");
        let msg = l["message"].as_str().unwrap();
        assert!(
            msg.len() <= 4096 + 32,
            "a dead letter's message of {} bytes",
            msg.len()
        );
        assert!(
            msg.ends_with(&format!("… ({} bytes more)", 16384 - 4096)),
            "{}",
            &msg[4000..]
        );
    }
}
