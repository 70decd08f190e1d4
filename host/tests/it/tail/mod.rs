//! The tail source on real files: real renames, real truncation, real
//! restarts. Every test writes numbered lines (`data.seq`) and checks, from
//! the file sink, that each was handled exactly once. This module holds
//! what the tests share; they are grouped by topic below it.

mod files;
mod restarts;
mod rotation;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{lazy, wait_until, wait_until_every, write_setup, TestDaemon};

/// Routes every event to `out.ndjson`.
const SINK: &str = r#"
[[route]]
name = "all"
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;

pub fn line(seq: u64) -> String {
    format!("{{\"name\":\"t.Seq\",\"data\":{{\"seq\":{seq}}}}}\n")
}

pub fn lines(seqs: std::ops::Range<u64>) -> String {
    seqs.map(line).collect()
}

/// Complete NDJSON lines of a file (a line being written is left out).
/// Complete NDJSON lines, and how many lines are torn (a process killed
/// in the middle of writing them).
pub fn lines_after_crashes(path: &Path) -> (Vec<Value>, usize) {
    let bytes = fs::read(path).unwrap();
    let mut torn = 0;
    let mut events = Vec::new();
    for l in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(l) {
            Ok(v) => events.push(v),
            Err(_) => torn += 1,
        }
    }
    (events, torn)
}

pub fn complete_lines(path: &Path) -> Vec<Value> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// How many times each `data.seq` of `t.Seq` events is in the sink.
pub fn seq_counts(out: &Path) -> BTreeMap<u64, usize> {
    count_seqs(&complete_lines(out))
}

fn count_seqs(events: &[Value]) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for ev in events.iter().filter(|e| e["name"] == "t.Seq") {
        *counts.entry(ev["data"]["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    counts
}

/// Fails with the seqs missing from `0..n`, duplicated, or unexpected.
pub fn assert_exactly_once(counts: &BTreeMap<u64, usize>, expected: impl IntoIterator<Item = u64>) {
    let expected: Vec<u64> = expected.into_iter().collect();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|s| !counts.contains_key(s))
        .collect();
    let doubled: Vec<(u64, usize)> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, n)| (*s, *n))
        .collect();
    let set: std::collections::BTreeSet<u64> = expected.iter().copied().collect();
    let extra: Vec<u64> = counts.keys().copied().filter(|s| !set.contains(s)).collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && extra.is_empty(),
        "{} expected; missing {} (first {:?}); doubled {} (first {:?}); unexpected {:?}",
        expected.len(),
        missing.len(),
        &missing[..missing.len().min(10)],
        doubled.len(),
        &doubled[..doubled.len().min(10)],
        &extra[..extra.len().min(10)]
    );
}

/// The seqs of `expected` not in `counts`, as ranges: `"300..600, 900..1200"`.
pub fn missing_ranges(counts: &BTreeMap<u64, usize>, expected: std::ops::Range<u64>) -> String {
    let mut out = Vec::new();
    let mut start = None;
    for s in expected.clone() {
        match (counts.contains_key(&s), start) {
            (false, None) => start = Some(s),
            (true, Some(a)) => {
                out.push(format!("{a}..{s}"));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push(format!("{a}..{}", expected.end));
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

/// A daemon in a folder that outlives it, for restarts.
pub struct Tail {
    /// The folder, for paths while the daemon is stopped or running.
    root: PathBuf,
    state: State,
}

/// Who holds the folder: the test while the daemon is stopped, the daemon
/// while it runs (and hands it back when it stops).
enum State {
    Stopped(TempDir),
    Running(Box<TestDaemon>),
    /// Only while [`Tail::start`] or [`Tail::stop`] moves the folder.
    Moving,
}

impl Tail {
    /// A folder with `logs/`, and a config with `tail` (the
    /// `[[source.tail]]` tables) and the sink; not started.
    pub fn setup(tail: &str, server: &str) -> Tail {
        Tail::in_setup(write_setup(server, &format!("{tail}\n{SINK}"), &[]))
    }

    /// A folder made by [`write_setup`], with `logs/` added; not started.
    pub fn in_setup(dir: TempDir) -> Tail {
        // SWITCHYARD_TEST_LOG=switchyard=debug shows what the source did.
        if let Ok(filter) = std::env::var("SWITCHYARD_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        fs::create_dir(dir.path().join("logs")).unwrap();
        Tail {
            root: dir.path().to_path_buf(),
            state: State::Stopped(dir),
        }
    }

    pub async fn start(&mut self) {
        let State::Stopped(dir) = std::mem::replace(&mut self.state, State::Moving) else {
            panic!("the daemon is already running")
        };
        self.state = State::Running(Box::new(TestDaemon::start_in(dir).await));
    }

    /// Graceful: sources stop and checkpoint, the queue drains.
    pub async fn stop(&mut self) {
        self.state = match std::mem::replace(&mut self.state, State::Moving) {
            State::Running(d) => State::Stopped(d.stop().await),
            state => state,
        };
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn counts(&self) -> BTreeMap<u64, usize> {
        seq_counts(&self.path("out.ndjson"))
    }

    pub fn out(&self) -> Vec<Value> {
        complete_lines(&self.path("out.ndjson"))
    }

    pub fn dead(&self) -> Vec<Value> {
        complete_lines(&self.path("dead.ndjson"))
    }

    fn daemon(&self) -> &TestDaemon {
        match &self.state {
            State::Running(d) => d,
            _ => panic!("the daemon is not running"),
        }
    }

    pub fn stats(&self) -> Value {
        self.daemon().daemon().stats().to_json()["tail"].clone()
    }

    pub fn handled(&self) -> u64 {
        let stats = &self.daemon().daemon().stats();
        stats.tail_lines_handled.load(Relaxed) + stats.tail_bad_lines.load(Relaxed)
    }

    /// Waits until `cond` holds; fails after `secs` with `what` and the
    /// tail stats then.
    pub async fn wait(&self, secs: u64, what: &str, cond: impl Fn(&Tail) -> bool) {
        let what = lazy(|| format!("{what}; tail stats {}", self.stats()));
        wait_until(what, Duration::from_secs(secs), async || cond(self)).await;
    }
}

pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// logrotate's `create` with `rotate <keep>`: shift the old ones, rename
/// the live file to `.1`, create an empty one in its place.
pub fn rotate_create(path: &Path, keep: u32) -> File {
    let name = |k: u32| PathBuf::from(format!("{}.{k}", path.display()));
    let _ = fs::remove_file(name(keep));
    for k in (1..keep).rev() {
        let _ = fs::rename(name(k), name(k + 1));
    }
    fs::rename(path, name(1)).unwrap();
    OpenOptions::new().create(true).append(true).open(path).unwrap()
}

/// Writes `total` numbered lines from `first` at about `rate` lines/s, in
/// small bursts, calling `rotate` (with the seq written so far) every
/// `per_file` lines. A writer that fell behind (a busy machine) catches up,
/// but rotates at most twice as often as planned, as logrotate would.
/// Returns the achieved rate.
pub fn write_paced(
    path: &Path,
    first: u64,
    total: u64,
    rate: u64,
    per_file: u64,
    mut rotate: impl FnMut(&mut File, u64),
) -> f64 {
    let mut file = OpenOptions::new().create(true).append(true).open(path).unwrap();
    let t0 = Instant::now();
    let mut seq = first;
    let end = first + total;
    let mut in_file = 0;
    let min_gap = Duration::from_secs_f64(per_file as f64 / rate as f64 / 2.0);
    let mut rotated = Instant::now();
    while seq < end {
        let due = first + (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        let mut burst = String::new();
        while seq < end && seq <= due && in_file < per_file {
            burst.push_str(&line(seq));
            seq += 1;
            in_file += 1;
        }
        if !burst.is_empty() {
            file.write_all(burst.as_bytes()).unwrap();
        }
        if in_file == per_file && seq < end {
            if let Some(wait) = min_gap.checked_sub(rotated.elapsed()) {
                std::thread::sleep(wait);
            }
            rotate(&mut file, seq);
            rotated = Instant::now();
            in_file = 0;
        } else if seq <= due {
            continue;
        } else {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    total as f64 / t0.elapsed().as_secs_f64()
}

const FOLLOW_APP: &str = r#"
[[source.tail]]
path = "logs/app.log"
start_at = "beginning"
rotate_wait = "300ms"
"#;
