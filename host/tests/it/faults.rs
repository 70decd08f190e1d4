//! Faults of the files the daemon writes (issue 17): a full disk under the
//! dead-letter log or a file sink (a small tmpfs, filled; /dev/full), and
//! sink files deleted or renamed away (logrotate).
//!
//! The full-disk cases run the real binary and stop it with SIGTERM:
//! every accepted event is in its sink, in a dead letter, or (when the
//! dead-letter log cannot take it) whole in the daemon's log; no file ends
//! in a torn line; the exit code is 3.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{lazy, request, wait_until, Binary, PATIENCE};

/// A small tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "2m") at `dir`; `None`, with the
    /// reason printed, where mounting is impossible (not root). CI runs as
    /// root, so there these tests run.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: dir.to_path_buf(),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs at {} (needs root): {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the filesystem, then frees `leave` bytes of it.
    pub fn fill_leaving(&self, leave: u64) {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(leave)).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.path)
            .status();
    }
}

/// A config with a trapping handler on `trap.*` and a file sink on `sink.*`.
fn config(dir: &Path, dead_letters: &str, sink: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(dir.join("plugins/trap.wat"), fixtures::trap()).unwrap();
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:0"

[plugins]
dir = "plugins"

[dead_letter]
path = "{dead_letters}"

[[route]]
name = "traps"
match = {{ name = "trap.*" }}
handlers = ["trap"]

[[route]]
name = "archive"
match = {{ name = "sink.*" }}
sinks = ["out"]

[sink.out]
type = "file"
path = "{sink}"
"#
    );
    let path = dir.join("router.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Posts `n` events named `name` in batches of 100; returns their ids.
async fn post(d: &Binary, name: &str, n: usize) -> BTreeSet<String> {
    post_to(d, "/v1/events", name, n).await
}

/// Like [`post`], to `path` (`?wait=true`: answered once written).
async fn post_to(d: &Binary, path: &str, name: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for start in (0..n).step_by(100) {
        let batch: Vec<Value> = (start..n.min(start + 100))
            .map(|i| json!({"name": name, "data": {"i": i, "pad": "x".repeat(200)}}))
            .collect();
        let r = request(
            d.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            Value::Array(batch).to_string().into_bytes(),
        )
        .await;
        assert!(r.status.is_success(), "{}", r.body);
        for id in r.body["ids"].as_array().unwrap() {
            ids.insert(id.as_str().unwrap().to_string());
        }
    }
    ids
}

/// The lines of an NDJSON file that must hold whole lines only: no torn
/// last line, each a JSON document.
fn whole_lines(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{} ends in a torn line: {:?}",
        path.display(),
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(80)..])
    );
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// Dead letters carried whole in the daemon's (JSON) log.
fn letters_in_log(d: &Binary) -> Vec<Value> {
    d.log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["letter"].as_str().map(|s| serde_json::from_str(s).unwrap()))
        .collect()
}

fn event_ids<'a>(letters: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    letters
        .into_iter()
        .map(|l| l["event"]["id"].as_str().unwrap().to_string())
        .collect()
}

/// The shutdown line's count of letters lost.
fn reported_lost(d: &Binary) -> u64 {
    d.log_lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutdown complete, but"))
        })
        .and_then(|v| v["dead_letters_lost"].as_u64())
        .expect("the shutdown line says what could not be written")
}

/// Each id exactly once across the places.
fn assert_each_once(accepted: &BTreeSet<String>, places: &[&[String]]) {
    let all: Vec<&String> = places.iter().flat_map(|p| p.iter()).collect();
    let unique: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
    assert_eq!(all.len(), unique.len(), "an event is in two places");
    assert_eq!(
        &unique, accepted,
        "every accepted event is somewhere, and nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_dead_letter_disk_loses_no_letter_and_leaves_no_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("small"), "2m") else {
        return;
    };
    // Room for about a hundred letters of the 1,500.
    disk.fill_leaving(48 << 10);
    let config = config(dir.path(), "small/dead.ndjson", "out.ndjson");
    let mut d = Binary::start_with(&config, &["--log-format", "json"]);
    let accepted = post(&d, "trap.Event", 1_500).await;
    let status = d.terminate().await;
    assert_eq!(status.code(), Some(3), "something could not be written: {status}");
    let in_file = event_ids(&whole_lines(&disk.path.join("dead.ndjson")));
    let in_log = event_ids(&letters_in_log(&d));
    assert!(
        !in_file.is_empty() && !in_log.is_empty(),
        "the disk filled mid-run: {} in the file, {} in the log",
        in_file.len(),
        in_log.len()
    );
    assert_eq!(reported_lost(&d), in_log.len() as u64);
    assert_each_once(&accepted, &[&in_file, &in_log]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sink_disk_sends_what_it_cannot_take_to_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("small"), "2m") else {
        return;
    };
    disk.fill_leaving(48 << 10);
    let config = config(dir.path(), "dead.ndjson", "small/out.ndjson");
    let mut d = Binary::start_with(&config, &["--log-format", "json"]);
    let accepted = post(&d, "sink.Event", 1_500).await;
    let status = d.terminate().await;
    assert_eq!(status.code(), Some(3), "something could not be written: {status}");
    let in_sink: Vec<String> = whole_lines(&disk.path.join("out.ndjson"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let letters = whole_lines(&dir.path().join("dead.ndjson"));
    for l in &letters {
        assert_eq!(l["kind"], "sink_error", "{l}");
        assert_eq!(l["sink"], "out", "{l}");
        let m = l["message"].as_str().unwrap();
        assert!(
            m.contains("small/out.ndjson") && m.contains("No space left"),
            "{m}"
        );
    }
    let in_letters = event_ids(&letters);
    assert!(
        !in_sink.is_empty() && !in_letters.is_empty(),
        "the disk filled mid-run"
    );
    assert!(letters_in_log(&d).is_empty(), "the dead-letter log had room");
    assert_each_once(&accepted, &[&in_sink, &in_letters]);
}

/// /dev/full: every write fails. Both the sink and the dead-letter log are
/// on it, so every event's letter ends in the daemon's log; the counters
/// say how many letters were lost, apart from the failed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_write_fails_each_letter_is_whole_in_the_log_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "/dev/full", "/dev/full");
    let mut d = Binary::start_with(&config, &["--log-format", "json"]);
    let accepted = post(&d, "sink.Event", 300).await;
    let stats = std::cell::RefCell::new(Value::Null);
    let what = lazy(|| format!("an empty queue and 300 letters lost: {}", stats.borrow()));
    wait_until(what, Duration::from_secs(30), async || {
        let s = request(d.addr, "GET", "/v1/stats", &[], Vec::new()).await.body;
        let done = s["queue"]["depth"] == 0 && s["dead_letters_lost"] == 300;
        *stats.borrow_mut() = s;
        done
    })
    .await;
    let text = request(d.addr, "GET", "/metrics", &[], Vec::new()).await.body;
    let m = crate::metrics::parse_metrics(text.as_str().unwrap());
    let c = |name: &str, labels: &[(&str, &str)]| crate::metrics::sample(&m, name, labels);
    assert_eq!(c("switchyard_dead_letters_lost_total", &[]), 300.0);
    assert_eq!(c("switchyard_sink_errors_total", &[("sink", "out")]), 300.0);
    // Issue 18, item 4: writes are events written, not attempts.
    assert_eq!(c("switchyard_sink_writes_total", &[("sink", "out")]), 0.0);
    let failed_writes = c("switchyard_dead_letter_write_errors_total", &[]);
    assert!(
        (1.0..300.0).contains(&failed_writes),
        "failed writes are counted per write, not per letter: {failed_writes}"
    );
    let status = d.terminate().await;
    assert_eq!(status.code(), Some(3), "{status}");
    let letters = letters_in_log(&d);
    for l in &letters {
        assert_eq!(l["kind"], "sink_error", "{l}");
    }
    assert_eq!(reported_lost(&d), 300);
    assert_each_once(&accepted, &[&event_ids(&letters)]);
}

fn line_count(path: &Path) -> usize {
    whole_lines(path).len()
}

/// logrotate's `create` + `postrotate kill -HUP`, then a plain `rm`, then
/// `rm` + `POST /v1/reload`: the file sink and the dead-letter log write to
/// a new file at their path each time, never into the renamed or deleted
/// one (issue 17, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_or_deleted_sink_files_and_dead_letter_log_are_written_anew() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "dead.ndjson", "out.ndjson");
    let (out, dead) = (dir.path().join("out.ndjson"), dir.path().join("dead.ndjson"));
    let mut d = Binary::start(&config);
    let wait = "/v1/events?wait=true";
    post_to(&d, wait, "sink.Event", 10).await;
    post_to(&d, wait, "trap.Event", 10).await;
    assert_eq!((line_count(&out), line_count(&dead)), (10, 10));

    // Rotated: renamed, then SIGHUP. The new files exist at once.
    std::fs::rename(&out, dir.path().join("out.ndjson.1")).unwrap();
    std::fs::rename(&dead, dir.path().join("dead.ndjson.1")).unwrap();
    d.signal("HUP");
    wait_until("SIGHUP to reopen the files", PATIENCE, async || {
        out.exists() && dead.exists()
    })
    .await;
    post_to(&d, wait, "sink.Event", 20).await;
    post_to(&d, wait, "trap.Event", 20).await;
    assert_eq!((line_count(&out), line_count(&dead)), (20, 20));
    assert_eq!(line_count(&dir.path().join("out.ndjson.1")), 10);
    assert_eq!(line_count(&dir.path().join("dead.ndjson.1")), 10);

    // Deleted, no signal: noticed by the next write.
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&dead).unwrap();
    let sunk = post_to(&d, wait, "sink.Event", 100).await;
    let trapped = post_to(&d, wait, "trap.Event", 100).await;
    let ids = |p: &Path, f: fn(&Value) -> &Value| -> BTreeSet<String> {
        whole_lines(p)
            .iter()
            .map(|v| f(v).as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&out, |v| &v["id"]), sunk);
    assert_eq!(ids(&dead, |v| &v["event"]["id"]), trapped);

    // Deleted, then a reload: new files at once.
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&dead).unwrap();
    let r = request(d.addr, "POST", "/v1/reload", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(out.exists() && dead.exists(), "a reload reopens the files");
    post_to(&d, wait, "sink.Event", 5).await;
    assert_eq!(line_count(&out), 5);
    let status = d.terminate().await;
    assert!(status.success(), "{status}");
    let log = d.log_lines().join("\n");
    assert!(
        log.contains("deleted or renamed away"),
        "the switch is logged: {log}"
    );
}

/// A tail source is a durable producer: when the letters of its lines
/// cannot be written (sink and dead-letter log both on /dev/full), its
/// checkpoint stays before those lines, and the next start reads them again.
/// With the memory queue, where the checkpoint waits until lines are
/// handled; with the disk queue it passes them once queued (issue 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_checkpoint_never_passes_lines_whose_letters_were_lost() {
    let tail = r#"
[queue]
type = "memory"

[[source.tail]]
path = "logs/app.log"
start_at = "beginning"
"#;
    let mut t = crate::tail::Tail::setup(tail, "");
    let log = t.path("logs/app.log");
    crate::tail::append(&log, &crate::tail::lines(0..50));
    std::os::unix::fs::symlink("/dev/full", t.path("out.ndjson")).unwrap();
    std::os::unix::fs::symlink("/dev/full", t.path("dead.ndjson")).unwrap();
    t.start().await;
    t.wait(20, "the lines to be read", |t| t.stats()["lines"] == 50)
        .await;
    t.stop().await;
    let checkpoint = std::fs::read_dir(t.path("data/tail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let cp: Value = serde_json::from_slice(&std::fs::read(checkpoint).unwrap()).unwrap();
    assert_eq!(cp["files"][0]["offset"], 0, "nothing was written anywhere: {cp}");

    std::fs::remove_file(t.path("out.ndjson")).unwrap();
    std::fs::remove_file(t.path("dead.ndjson")).unwrap();
    t.start().await;
    t.wait(20, "the lines read again", |t| t.handled() >= 50).await;
    t.stop().await;
    crate::tail::assert_exactly_once(&t.counts(), 0..50);
}
