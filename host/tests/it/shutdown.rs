//! SIGTERM on the real binary: every event answered 202 before the signal
//! reaches its handlers and sinks, and the process exits 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::fixtures;
use crate::harness::{read_ndjson, request, write_setup};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(dir.path().join("router.toml"))
        .env("SWITCHYARD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr: std::net::SocketAddr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon must log its listening address")
        .parse()
        .unwrap();
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
    let t = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the daemon did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    let mut handled: Vec<String> = read_ndjson(&dir.path().join("out.ndjson"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    handled.sort();
    accepted.sort();
    assert_eq!(handled.len(), accepted.len());
    assert_eq!(handled, accepted);
}
