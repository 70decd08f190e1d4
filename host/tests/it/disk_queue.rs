//! The disk queue with the real binary (issue 12): an event answered 202
//! survives `kill -9` while a slow handler still has it queued, and is
//! handled after the restart. (The crash harness with many cycles, tail
//! lines, webhooks, damage and full disks is `durable`.)

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::fixtures;
use crate::harness::{read_ndjson, request, wait_until, write_setup, Binary};

const TOML: &str = r#"
[queue]
type = "disk"

[plugin.slow]
timeout = "5s"

[[route]]
name = "slow"
handlers = ["slow"]
sinks = ["archive"]

[sink.archive]
type = "file"
path = "archive.ndjson"
"#;

fn ids(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_accepted_event_survives_kill_9_and_is_handled_after_the_restart() {
    // 300 ms per event, one worker: 6 events take about 2 s.
    let plugins = [("slow", fixtures::sleeper(300_000_000, 1, false, false))];
    let dir = write_setup("workers = 1", TOML, &plugins);
    let config = dir.path().join("router.toml");
    let archive = dir.path().join("archive.ndjson");
    let mut daemon = Binary::start(&config);
    let body: String = (0..6)
        .map(|i| format!("{{\"name\":\"a.Slow\",\"data\":{{\"i\":{i}}}}}\n"))
        .collect();
    let r = request(
        daemon.addr,
        "POST",
        "/v1/events",
        &[("content-type", "application/x-ndjson")],
        body.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let accepted: BTreeSet<String> = r.body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(accepted.len(), 6);
    tokio::time::sleep(Duration::from_millis(400)).await;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let before = ids(&read_ndjson(&archive));
    assert!(
        before.len() < accepted.len(),
        "the slow handler must still have events queued at the kill ({} handled)",
        before.len()
    );

    let mut daemon = Binary::start(&config);
    wait_until(
        "every accepted event in the archive",
        Duration::from_secs(30),
        async || ids(&read_ndjson(&archive)).is_superset(&accepted),
    )
    .await;
    assert!(daemon.terminate().await.success());
    let log = daemon.log_lines().join("\n");
    assert!(
        log.contains("delivering them again"),
        "the restart says it redelivers:\n{log}"
    );
    // Only what the handler was running or had not acked yet comes twice.
    let lines = read_ndjson(&archive);
    assert!(
        lines.len() <= accepted.len() + 2,
        "{} lines for 6 events",
        lines.len()
    );
}
