//! SIGTERM on the real binary: every event answered 202 before the signal
//! reaches its handlers and sinks, and the process exits 0.

use serde_json::json;

use crate::fixtures;
use crate::harness::{read_ndjson, request, write_setup, Binary};

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
