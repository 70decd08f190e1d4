//! Issue 16: what a plugin causes is bounded. A self-routed fan-out stops at
//! the cascade budget (events and bytes); a plugin's log is bounded in
//! bytes; guest text in a failure is held to the log limits and cut in dead
//! letters. Deadlines over host calls are in `bounds.rs`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bounds::{fast_event, outcome};
use crate::fixtures;
use crate::harness::{read_ndjson, request, write_setup, Binary};

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
