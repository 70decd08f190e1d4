//! How the real binary ends. SIGTERM: every event answered 202 before the
//! signal reaches its handlers and sinks, and the process exits 0. The
//! test-only crash hook (debug builds): an event named in
//! `SWITCHYARD_TEST_ABORT_ON` aborts the process before its handlers run.

use std::os::unix::process::ExitStatusExt;

use serde_json::json;

use crate::fixtures;
use crate::harness::{read_ndjson, request, write_setup, Binary, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_every_accepted_event() {
    let toml = r#"
[plugin.slow]
fuel = 1_000_000_000_000
timeout = "5s"

[[route]]
name = "slow"
handlers = ["slow"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;
    let dir = write_setup("workers = 1", toml, &[("slow", fixtures::slow(3_000_000))]);
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    let addr = daemon.addr;
    let mut accepted = Vec::new();
    for i in 0..40 {
        let body =
            json!([{"name": "a.Batch", "data": {"i": i}}, {"name": "a.Batch", "data": {"i": i}}]).to_string();
        let r = request(
            addr,
            "POST",
            "/v1/events",
            &[("content-type", "application/json")],
            body.into_bytes(),
        )
        .await;
        assert_eq!(r.status, 202);
        for id in r.body["ids"].as_array().unwrap() {
            accepted.push(id.as_str().unwrap().to_string());
        }
    }
    let stats = request(addr, "GET", "/v1/stats", &[], Vec::new()).await.body;
    assert!(
        stats["queue"]["depth"].as_u64().unwrap() > 0,
        "events must still be queued when SIGTERM arrives: {stats}"
    );
    let status = daemon.terminate().await;
    assert!(status.success(), "exit status {status}");
    let mut handled: Vec<String> = read_ndjson(&dir.path().join("out.ndjson"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    handled.sort();
    accepted.sort();
    assert_eq!(handled, accepted);
}

/// The crash hook of issue 12 (what makes an event `poison` on demand):
/// events of other names are handled as ever; the named one aborts the
/// process (SIGABRT) before any handler or sink sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_crash_hook_aborts_on_the_named_event() {
    let toml = r#"
[[route]]
name = "all"
handlers = ["log"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;
    let dir = write_setup("workers = 1", toml, &[("log", fixtures::logger())]);
    let env = [("SWITCHYARD_TEST_ABORT_ON", "crash.Now")];
    let mut daemon = Binary::start_env(&dir.path().join("router.toml"), &env);
    let post = async |name: &str, path: &str| {
        let body = json!({"name": name}).to_string().into_bytes();
        request(
            daemon.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await
    };
    let fine = post("crash.NotNow", "/v1/events?wait=true").await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    let named = post("crash.Now", "/v1/events").await;
    assert_eq!(named.status, 202, "{}", named.body);
    let status = daemon.exit_within(PATIENCE).await;
    assert_eq!(status.signal(), Some(6), "aborted (SIGABRT): {status}");
    let out = read_ndjson(&dir.path().join("out.ndjson"));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["name"], "crash.NotNow");
    assert!(
        daemon
            .log_lines()
            .iter()
            .any(|l| l.contains("SWITCHYARD_TEST_ABORT_ON")),
        "the log says why"
    );
}
