//! A poison event: one whose handling crashes the daemon every time
//! (`SWITCHYARD_TEST_ABORT_ON`, the test-only hook debug builds have, makes
//! a worker abort on it). Restarted in a loop, the daemon crashes on it
//! `max_deliveries` times, then dead-letters it as `poison` at the next
//! start and handles every other event.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use serde_json::{json, Value};

use super::{metrics, total};
use crate::fixtures;
use crate::harness::{lazy, read_ndjson, request, wait_until, write_setup, Binary, PATIENCE};

const MAX_DELIVERIES: usize = 3;
const HOOK: &str = "SWITCHYARD_TEST_ABORT_ON";
/// The signal `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

fn ids_in(path: &Path) -> Vec<String> {
    crate::tail::lines_after_crashes(path)
        .0
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_on_one_event_ends_in_a_poison_dead_letter() {
    let toml = format!(
        r#"
[queue]
type = "disk"
max_deliveries = {MAX_DELIVERIES}

[plugin.h]
timeout = "60s"

[[route]]
name = "all"
handlers = ["h"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#
    );
    // First the events are queued by a daemon stuck in the first of them
    // (a handler that sleeps 50 s), killed; then the handler is quick.
    let dir = write_setup(
        "workers = 1",
        &toml,
        &[("h", fixtures::sleeper(50_000_000_000, 1, false, false))],
    );
    let config = dir.path().join("router.toml");
    let mut events: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("g-{i}"), "name": "g.Good"}))
        .collect();
    events.insert(5, json!({"id": "p-1", "name": "p.Poison"}));
    let mut first = Binary::start(&config);
    let r = request(
        first.addr,
        "POST",
        "/v1/events",
        &[("content-type", "application/json")],
        Value::Array(events).to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    first.kill();
    std::fs::write(dir.path().join("plugins/h.wat"), fixtures::logger()).unwrap();

    let dead = || read_ndjson(&dir.path().join("dead.ndjson"));
    let poisoned = || dead().iter().any(|l| l["kind"] == "poison");
    let env = [(HOOK, "p.Poison")];
    let mut crashes = 0;
    let mut daemon = loop {
        assert!(
            crashes <= MAX_DELIVERIES,
            "{crashes} crashes on the poison event and still not dead-lettered"
        );
        let (status, log) = match Binary::try_start_env(&config, &env) {
            Err(exited) => exited,
            Ok(mut d) => {
                let what = lazy(|| "the daemon to abort on the poison event, or dead-letter it".to_string());
                wait_until(what, PATIENCE, async || {
                    poisoned() || d.child.try_wait().unwrap().is_some()
                })
                .await;
                if d.child.try_wait().unwrap().is_none() {
                    break d;
                }
                (d.exit_within(PATIENCE).await, d.log_lines().join("\n"))
            }
        };
        assert_eq!(
            status.signal(),
            Some(SIGABRT),
            "aborted by the hook: {status}\n{log}"
        );
        crashes += 1;
    };
    eprintln!("poison: {crashes} crashes on the poison event, then the next start dead-lettered it");
    assert_eq!(
        crashes, MAX_DELIVERIES,
        "the daemon crashed max_deliveries times on the poison event, then dead-lettered it"
    );
    let out = dir.path().join("out.ndjson");
    let goods: Vec<String> = (0..10).map(|i| format!("g-{i}")).collect();
    let what = lazy(|| format!("every good event in the sink: {:?}", ids_in(&out)));
    wait_until(what, PATIENCE, async || {
        let have = ids_in(&out);
        goods.iter().all(|g| have.contains(g))
    })
    .await;
    let letters: Vec<Value> = dead().into_iter().filter(|l| l["kind"] == "poison").collect();
    assert_eq!(letters.len(), 1, "one poison letter: {letters:?}");
    assert_eq!(letters[0]["event"]["id"], "p-1", "{}", letters[0]);
    assert!(
        !ids_in(&out).contains(&"p-1".to_string()),
        "the poison event never reached the sink"
    );
    let m = metrics(daemon.addr).await;
    for metric in [
        "switchyard_queue_poison_events_total",
        "switchyard_dead_letters_total",
    ] {
        assert_eq!(total(&m, metric), 1.0, "{metric}: the poison event, once:\n{m}");
    }
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
}
