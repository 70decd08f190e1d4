//! The crash harness for tailed lines: an application keeps appending
//! numbered lines while the daemon is `kill -9`ed at random moments and
//! restarted; at the end every line is in the sink. Duplicates are at most
//! the lines past the checkpoint on disk at each kill (read again) plus
//! what the queue held handled but unacknowledged (handled again).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{disk_queue, rng};
use crate::harness::{lazy, wait_until_every, write_setup, Binary};
use crate::tail::{append, lines, lines_after_crashes, write_paced};

const QUEUE: u64 = 256;
const WORKERS: u64 = 2;
/// What one kill can leave handled but not acknowledged in the queue: see
/// `IN_FLIGHT` in `crash.rs`.
const IN_FLIGHT: u64 = QUEUE + 256 * WORKERS;

/// The line the tail checkpoint under `state` says to resume at (lines
/// before its offset in `log`), 0 without one.
fn resume_line(state: &Path, log: &Path) -> u64 {
    let Some(file) = fs::read_dir(state.join("tail")).ok().and_then(|d| {
        d.map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
    }) else {
        return 0;
    };
    let Ok(cp) = serde_json::from_slice::<Value>(&fs::read(file).unwrap()) else {
        return 0;
    };
    let offset = cp["files"][0]["offset"].as_u64().unwrap_or(0) as usize;
    let bytes = fs::read(log).unwrap();
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

fn newlines(log: &Path) -> u64 {
    fs::read(log).unwrap().iter().filter(|b| **b == b'\n').count() as u64
}

/// How often each `data.seq` is in the sink.
fn seq_counts(out: &Path) -> std::collections::BTreeMap<u64, usize> {
    let mut counts = std::collections::BTreeMap::new();
    if out.exists() {
        for e in lines_after_crashes(out).0 {
            *counts.entry(e["data"]["seq"].as_u64().unwrap()).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_lines_are_appended_loses_no_line() {
    let toml = format!(
        r#"
{queue}
[[source.tail]]
path = "logs/app.log"
start_at = "beginning"

[[route]]
name = "all"
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#,
        queue = disk_queue(5)
    );
    let dir = write_setup(&format!("queue = {QUEUE}\nworkers = {WORKERS}"), &toml, &[]);
    fs::create_dir(dir.path().join("logs")).unwrap();
    let config = dir.path().join("router.toml");
    let log = dir.path().join("logs/app.log");
    let out = dir.path().join("out.ndjson");
    let state = dir.path().join("data");
    const BEFORE: u64 = 5_000;
    const DURING: u64 = 15_000;
    const CYCLES: usize = 5;
    append(&log, &lines(0..BEFORE));
    // The application writes through every kill and restart.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_paced(&log, BEFORE, DURING, 3_000, u64::MAX, |_, _| {}))
    };
    let mut rng = rng("kill_9_while_lines_are_appended");
    let mut max_duplicates = 0;
    for cycle in 0..CYCLES {
        let mut daemon = Binary::start(&config);
        // Not a wait for something to happen: the random moment of the kill.
        tokio::time::sleep(Duration::from_millis(rng.u64(100..1200))).await;
        daemon.kill();
        let written = newlines(&log);
        let resume = resume_line(&state, &log);
        eprintln!(
            "tail: cycle {cycle}: killed with {written} lines written, the checkpoint at line {resume}"
        );
        max_duplicates += written - resume + IN_FLIGHT;
    }
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let total = BEFORE + DURING;
    let mut daemon = Binary::start(&config);
    let have = std::cell::Cell::new(0);
    let what = lazy(|| format!("all {total} lines in the sink, {} there", have.get()));
    wait_until_every(
        Duration::from_millis(100),
        what,
        Duration::from_secs(40),
        async || {
            have.set(seq_counts(&out).len());
            have.get() as u64 >= total
        },
    )
    .await;
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
    let counts = seq_counts(&out);
    let lost: Vec<u64> = (0..total).filter(|s| !counts.contains_key(s)).collect();
    let duplicated: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "tail: {total} lines, lost {}, duplicated {duplicated} (at most {max_duplicates} can be in flight)",
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} lines lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(counts.len() as u64, total, "no line nobody wrote");
    assert!(
        duplicated as u64 <= max_duplicates,
        "{duplicated} duplicates, more than the {max_duplicates} that can be in flight"
    );
}
