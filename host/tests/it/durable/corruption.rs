//! Damaged queue segments, made while the daemon is stopped with events
//! still queued: a torn last record (garbage after it, or the record cut
//! short, as a power loss mid-write leaves it) is ignored without an error;
//! a corrupt record in the middle goes to dead letters (`corrupt_record`,
//! its bytes in base64) and the records after it are handled.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use base64::Engine;
use serde_json::Value;
use tempfile::TempDir;

use super::{disk_queue, files_holding, metrics, total};
use crate::fixtures;
use crate::harness::{lazy, read_ndjson, request, wait_until, write_setup, Binary, PATIENCE};

/// Counts torn last records (README, "The queue").
const TORN: &str = "switchyard_queue_torn_records_total";

/// Events queued, none handled.
const N: usize = 20;

/// The unique marker in event `i`'s payload: found verbatim in the segment
/// whatever the record's encoding.
fn mark(i: usize) -> String {
    format!("MARK-{i:03}-END")
}

fn event(i: usize) -> String {
    format!(
        r#"{{"id":"q-{i}","name":"c.Event","data":{{"mark":"{}"}}}}"#,
        mark(i)
    )
}

/// A folder whose disk queue holds events `q-0..q-N` (posted one per
/// request, each answered 202), with the daemon killed while its one
/// worker was stuck in the first; its handler then replaced by a quick
/// one, so that the next start handles the queue.
async fn stopped_with_queue() -> TempDir {
    let toml = format!(
        r#"
{queue}
[plugin.h]
timeout = "60s"

[[route]]
name = "all"
match = {{ name = "c.*" }}
handlers = ["h"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#,
        queue = disk_queue(5)
    );
    let dir = write_setup(
        "workers = 1",
        &toml,
        &[("h", fixtures::sleeper(50_000_000_000, 1, false, false))],
    );
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    for i in 0..N {
        let r = request(
            daemon.addr,
            "POST",
            "/v1/events",
            &[("content-type", "application/json")],
            event(i).into_bytes(),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    daemon.kill();
    assert!(
        sink_marks(dir.path()).is_empty(),
        "nothing was handled before the kill"
    );
    fs::write(dir.path().join("plugins/h.wat"), fixtures::logger()).unwrap();
    dir
}

/// The marks of the events in the sink, in the order written.
fn sink_marks(dir: &Path) -> Vec<String> {
    read_ndjson(&dir.join("out.ndjson"))
        .iter()
        .map(|e| e["data"]["mark"].as_str().unwrap().to_string())
        .collect()
}

/// Starts the daemon on `dir`, waits until the sink holds `expected` (in
/// order), checks that the counter `metric` is 1, posts one more event and
/// waits for it too (the queue takes new writes after the damage), and
/// stops it gracefully.
async fn restart_and_expect(dir: &Path, expected: Vec<String>, metric: &str) {
    let mut daemon = Binary::start(&dir.join("router.toml"));
    let what = lazy(|| format!("the sink to hold {expected:?}: it has {:?}", sink_marks(dir)));
    wait_until(what, PATIENCE, async || sink_marks(dir).len() >= expected.len()).await;
    assert_eq!(sink_marks(dir), expected, "the undamaged events, in order, once");
    let m = metrics(daemon.addr).await;
    assert_eq!(total(&m, metric), 1.0, "{metric} counts the damage:\n{m}");
    let r = request(
        daemon.addr,
        "POST",
        "/v1/events",
        &[("content-type", "application/json")],
        event(N).into_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    wait_until("the event posted after the restart", PATIENCE, async || {
        sink_marks(dir).last() == Some(&mark(N))
    })
    .await;
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
}

/// The one segment holding the last event's record.
fn last_segment(dir: &Path) -> std::path::PathBuf {
    let files = files_holding(&dir.join("data"), mark(N - 1).as_bytes());
    assert_eq!(files.len(), 1, "one segment holds the last record: {files:?}");
    files[0].clone()
}

fn position(file: &Path, needle: &str) -> usize {
    let bytes = fs::read(file).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle} in {}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_last_record_is_ignored() {
    let dir = stopped_with_queue().await;
    let segment = last_segment(dir.path());
    let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(&[0xab; 37]).unwrap();
    drop(f);
    restart_and_expect(dir.path(), (0..N).map(mark).collect(), TORN).await;
    let dead = read_ndjson(&dir.path().join("dead.ndjson"));
    assert!(dead.is_empty(), "a torn tail is not a dead letter: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_record_cut_short_is_ignored() {
    let dir = stopped_with_queue().await;
    let segment = last_segment(dir.path());
    // Cut in the middle of the last record: past the start of its payload,
    // before its end (and its checksum).
    let cut = position(&segment, &mark(N - 1)) + 4;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    // The last event was acknowledged, but its record is gone: power loss
    // after the 202 is what `sync = "batch"` rules out, so this only shows
    // that the torn record is skipped, not an error, and the rest handled.
    restart_and_expect(dir.path(), (0..N - 1).map(mark).collect(), TORN).await;
    let dead = read_ndjson(&dir.path().join("dead.ndjson"));
    assert!(dead.is_empty(), "a torn tail is not a dead letter: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_middle_record_is_dead_lettered_with_its_bytes() {
    let dir = stopped_with_queue().await;
    let middle = N / 2;
    let files = files_holding(&dir.path().join("data"), mark(middle).as_bytes());
    assert_eq!(files.len(), 1, "one segment holds record {middle}: {files:?}");
    let at = position(&files[0], &mark(middle));
    let mut bytes = fs::read(&files[0]).unwrap();
    // "MARK" -> "MArK": the checksum no longer matches.
    bytes[at + 2] = b'r';
    fs::write(&files[0], &bytes).unwrap();
    let damaged = format!("MArK-{middle:03}-END");
    let expected = (0..N).filter(|i| *i != middle).map(mark).collect();
    restart_and_expect(dir.path(), expected, "switchyard_queue_corrupt_records_total").await;
    let dead = read_ndjson(&dir.path().join("dead.ndjson"));
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    let letter = &dead[0];
    assert_eq!(letter["kind"], "corrupt_record", "{letter}");
    // The record's bytes, in base64, in whichever field holds them.
    let decoded: Vec<Vec<u8>> = letter
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_str)
        .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .collect();
    assert!(
        decoded
            .iter()
            .any(|b| b.windows(damaged.len()).any(|w| w == damaged.as_bytes())),
        "the letter carries the damaged record's bytes in base64: {letter}"
    );
}
