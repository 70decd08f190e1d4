//! The tail source on real files: real renames, real truncation, real
//! restarts. Every test writes numbered lines (`data.seq`) and checks, from
//! the file sink, that each was handled exactly once.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::app::Daemon;
use switchyard::config::Config;
use tempfile::TempDir;

use crate::harness::write_setup;

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
    pub dir: TempDir,
    daemon: Option<Daemon>,
}

impl Tail {
    /// A folder with `logs/`, and a config with `tail` (the
    /// `[[source.tail]]` tables) and the sink; not started.
    pub fn setup(tail: &str, server: &str) -> Tail {
        // SWITCHYARD_TEST_LOG=switchyard=debug shows what the source did.
        if let Ok(filter) = std::env::var("SWITCHYARD_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = write_setup(server, &format!("{tail}\n{SINK}"), &[]);
        fs::create_dir(dir.path().join("logs")).unwrap();
        Tail { dir, daemon: None }
    }

    pub async fn start(&mut self) {
        assert!(self.daemon.is_none());
        let config = Config::load(&self.path("router.toml")).unwrap_or_else(|e| panic!("{e}"));
        let started = tokio::time::timeout(Duration::from_secs(30), Daemon::start(config)).await;
        self.daemon = Some(started.expect("the daemon did not start within 30 s").unwrap());
    }

    /// Graceful: sources stop and checkpoint, the queue drains.
    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            let stopped = tokio::time::timeout(Duration::from_secs(30), d.shutdown()).await;
            stopped.expect("the daemon did not stop within 30 s").unwrap();
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
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

    pub fn stats(&self) -> Value {
        self.daemon.as_ref().unwrap().stats().to_json()["tail"].clone()
    }

    pub fn handled(&self) -> u64 {
        let stats = &self.daemon.as_ref().unwrap().stats();
        stats.tail_lines_handled.load(Relaxed) + stats.tail_bad_lines.load(Relaxed)
    }

    /// Polls `cond` until it holds; fails after `secs` with `what`.
    pub async fn wait(&self, secs: u64, what: &str, cond: impl Fn(&Tail) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; tail stats {}",
                self.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rotation_100_times_at_10k_lines_per_second() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    t.start().await;
    let log = t.path("logs/app.log");
    const ROTATIONS: u64 = 100;
    const PER_FILE: u64 = 300;
    let total = (ROTATIONS + 1) * PER_FILE;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut rotations = 0;
            let rate = write_paced(&log, 0, total, 12_000, PER_FILE, |file, _| {
                // `rotate 8`: a rotated file is deleted 8 rotations (about
                // 200 ms) later, read or not.
                *file = rotate_create(&log, 8);
                rotations += 1;
            });
            (rate, rotations)
        })
    };
    let (rate, rotations) = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(rotations, ROTATIONS);
    assert!(rate >= 10_000.0, "the writer managed only {rate:.0} lines/s");
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.handled() < total {
        if Instant::now() > deadline {
            let counts = t.counts();
            panic!(
                "timed out: tail stats {}; missing {}",
                t.stats(),
                missing_ranges(&counts, 0..total)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..total);
    assert!(t.dead().is_empty(), "{:?}", t.dead());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_loses_only_the_window_and_never_doubles() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    t.start().await;
    let log = t.path("logs/app.log");
    const ROTATIONS: u64 = 20;
    const PER_FILE: u64 = 500;
    const WINDOW: u64 = 20;
    let total = (ROTATIONS + 1) * PER_FILE;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut window = Vec::new();
            let mut extra = total;
            write_paced(&log, 0, total, 10_000, PER_FILE, |file, _| {
                // logrotate's `copytruncate` with `rotate 5`: shift the old
                // copies, copy, the writer goes on a little (the window),
                // then the original is truncated in place.
                let copy = |k: u32| log.with_extension(format!("log.{k}"));
                let _ = fs::remove_file(copy(5));
                for k in (1..5).rev() {
                    let _ = fs::rename(copy(k), copy(k + 1));
                }
                fs::copy(&log, copy(1)).unwrap();
                for _ in 0..WINDOW {
                    file.write_all(line(extra).as_bytes()).unwrap();
                    window.push(extra);
                    extra += 1;
                }
                file.set_len(0).unwrap();
            });
            window
        })
    };
    let window = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    t.wait(30, "every line outside the windows handled", |t| {
        let c = t.counts();
        (0..total).all(|s| c.contains_key(&s))
    })
    .await;
    let stats = t.stats();
    t.stop().await;
    let counts = t.counts();
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} doubled, first {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(10)]
    );
    let lost: Vec<u64> = window
        .iter()
        .copied()
        .filter(|s| !counts.contains_key(s))
        .collect();
    for s in counts.keys() {
        assert!(*s < total || window.contains(s), "unexpected seq {s}");
    }
    // A reader stalled past two rotations sees them as one truncation (the
    // generation in between is read whole from its copy).
    let truncations = stats["truncations"].as_u64().unwrap();
    assert!((1..=ROTATIONS).contains(&truncations), "{stats}");
    // What was lost is in the windows; the metric counts what was seen
    // before it was truncated away (lines written and truncated between
    // two looks cannot be seen by any reader).
    let lost_bytes = stats["copytruncate_lost_bytes"].as_u64().unwrap();
    assert!(
        lost_bytes <= lost.iter().map(|s| line(*s).len() as u64).sum::<u64>(),
        "{stats}; lost {lost:?}"
    );
    eprintln!(
        "copytruncate: {} of {} window lines lost, {lost_bytes} bytes counted",
        lost.len(),
        window.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_while_stopped_lose_nothing() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    let log = t.path("logs/app.log");
    append(&log, &lines(0..1000));
    t.start().await;
    t.wait(20, "the first lines", |t| t.handled() >= 1000).await;
    t.stop().await;
    // While stopped: more lines, then two rotations, the second of a file
    // the daemon never saw; plus lines in the file it was following.
    append(&log, &lines(1000..1500));
    let mut f = rotate_create(&log, 5);
    f.write_all(lines(1500..2000).as_bytes()).unwrap();
    let mut f = rotate_create(&log, 5);
    f.write_all(lines(2000..2500).as_bytes()).unwrap();
    append(&log.with_extension("log.2"), &lines(2500..2600));
    t.start().await;
    t.wait(20, "the lines written while stopped", |t| {
        t.counts().len() >= 2600
    })
    .await;
    // The files read to their end stay closed; new lines still flow.
    append(&log, &lines(2600..2700));
    t.wait(20, "lines after the restart", |t| t.counts().len() >= 2700)
        .await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..2700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_while_stopped_reads_the_rest_from_the_copy() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    let log = t.path("logs/app.log");
    append(&log, &lines(0..1000));
    t.start().await;
    t.wait(20, "the first lines", |t| t.handled() >= 1000).await;
    t.stop().await;
    append(&log, &lines(1000..1500));
    fs::copy(&log, log.with_extension("log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, &lines(1500..1800));
    t.start().await;
    t.wait(20, "every line", |t| t.counts().len() >= 1800).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..1800);
}

/// 30 identical header lines, over 2 KiB: more than a file fingerprint.
fn header() -> String {
    (0..30)
        .map(|i| format!("{{\"name\":\"t.Header\",\"data\":{{\"n\":\"{i:060}\"}}}}\n"))
        .collect()
}

/// How many header lines reached the sink.
fn header_events(t: &Tail) -> usize {
    t.out().iter().filter(|e| e["name"] == "t.Header").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_inode_is_a_new_file() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    let log = t.path("logs/app.log");
    // The same first 2 KiB in both generations: more than the fingerprint.
    let header = header();
    assert!(header.len() > 2048);
    append(&log, &format!("{header}{}", lines(0..100)));
    let old = fs::metadata(&log).unwrap();
    t.start().await;
    t.wait(20, "the first file", |t| t.counts().len() >= 100).await;
    t.stop().await;
    // Delete and create again within one second, so that no time in whole
    // seconds tells them apart; ext4 hands the inode straight back out.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    // (Not right at the start of a second either: file times come from a
    // coarser clock that may still be in the previous one.)
    while !(100..500).contains(&now().subsec_millis()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let deleted_at = now().as_secs() as i64;
    fs::remove_file(&log).unwrap();
    append(&log, &format!("{header}{}", lines(100..400)));
    let new = fs::metadata(&log).unwrap();
    assert_eq!(new.ctime(), deleted_at, "deleted and created within one second");
    if new.ino() != old.ino() {
        eprintln!(
            "this filesystem did not reuse the inode; the test still checks that the new file is read from 0"
        );
    }
    t.start().await;
    t.wait(20, "the new file", |t| t.counts().len() >= 400).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..400);
    let headers = header_events(&t);
    assert_eq!(headers, 60, "both generations' headers, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_headers_are_not_confused() {
    let tail = r#"
[[source.tail]]
path = "logs/*.log"
start_at = "beginning"
rotate_wait = "200ms"
"#;
    let mut t = Tail::setup(tail, "");
    let header = header();
    append(&t.path("logs/a.log"), &format!("{header}{}", lines(0..100)));
    append(&t.path("logs/b.log"), &format!("{header}{}", lines(100..300)));
    t.start().await;
    t.wait(20, "both files", |t| t.counts().len() >= 300).await;
    t.stop().await;
    // While stopped, a.log is rotated away and a new one with the same
    // header appears; b.log grows.
    fs::rename(t.path("logs/a.log"), t.path("logs/a.log.1")).unwrap();
    append(&t.path("logs/a.log.1"), &lines(300..350));
    append(&t.path("logs/a.log"), &format!("{header}{}", lines(350..400)));
    append(&t.path("logs/b.log"), &lines(400..450));
    t.start().await;
    append(&t.path("logs/b.log"), &lines(450..500));
    t.wait(20, "every line", |t| t.counts().len() >= 500).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..500);
    let headers = header_events(&t);
    assert_eq!(headers, 90, "three files' headers, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_files_partial_lines_and_crlf() {
    let tail = r#"
[[source.tail]]
path = "logs/*.log"
"#;
    let mut t = Tail::setup(tail, "");
    // Present at the first start: start_at = "end" skips its content, and an
    // empty file has none.
    File::create(t.path("logs/empty.log")).unwrap();
    append(&t.path("logs/old.log"), &lines(1000..1010));
    t.start().await;
    let empty = t.path("logs/empty.log");
    append(&empty, &lines(0..3));
    append(&empty, "{\"name\":\"t.Seq\",\"da");
    t.wait(20, "the complete lines", |t| t.counts().len() >= 3).await;
    // The partial line waits for its newline (and is no dead letter).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.counts().len(), 3);
    assert!(t.dead().is_empty(), "{:?}", t.dead());
    let partial_at = fs::metadata(&empty).unwrap().len() - 19;
    append(
        &empty,
        "ta\":{\"seq\":3}}\r\n{\"name\":\"t.Seq\",\"data\":{\"seq\":4}}\r\n",
    );
    append(&t.path("logs/old.log"), &lines(5..6));
    t.wait(20, "the completed line and the CRLF ones", |t| {
        t.counts().len() >= 6
    })
    .await;
    let out = t.out();
    let three = out.iter().find(|e| e["data"]["seq"] == 3).unwrap();
    assert_eq!(three["meta"]["offset"], partial_at);
    assert_eq!(three["meta"]["file"], empty.to_str().unwrap());
    assert_eq!(three["source"], format!("tail:{}", empty.display()));
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_go_to_dead_letters_and_reading_goes_on() {
    let tail = r#"
[[source.tail]]
path = "logs/app.log"
max_line = "1KiB"
"#;
    let mut t = Tail::setup(tail, "");
    t.start().await;
    let log = t.path("logs/app.log");
    let long = format!("{{\"name\":\"t.Long\",\"data\":\"{}\"}}\n", "x".repeat(5000));
    let mut body = Vec::new();
    body.extend_from_slice(line(0).as_bytes());
    let long_at = body.len();
    body.extend_from_slice(long.as_bytes());
    body.extend_from_slice(line(1).as_bytes());
    let utf8_at = body.len();
    body.extend_from_slice(b"{\"name\":\"t.Seq\",\"data\":\"\xff\xfe\"}\n");
    let unparsable_at = body.len();
    body.extend_from_slice(b"{\"name\": \n");
    let noname_at = body.len();
    body.extend_from_slice(b"{\"data\": {}}\n");
    body.extend_from_slice(line(2).as_bytes());
    // Written in pieces: the long line is never whole in one read.
    let mut f = OpenOptions::new().create(true).append(true).open(&log).unwrap();
    for piece in body.chunks(700) {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
    }
    t.wait(20, "the good lines and four dead letters", |t| {
        t.counts().len() >= 3 && t.dead().len() >= 4
    })
    .await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..3);
    let dead = t.dead();
    let file = log.to_str().unwrap();
    let by_offset = |o: usize| {
        dead.iter()
            .find(|d| d["offset"] == o)
            .unwrap_or_else(|| panic!("no dead letter at {o}: {dead:?}"))
    };
    let d = by_offset(long_at);
    assert_eq!(
        (d["kind"].as_str(), d["reason"].as_str(), d["file"].as_str()),
        (Some("bad_line"), Some("too_long"), Some(file))
    );
    assert_eq!(d["len"], long.len() - 1);
    assert_eq!(d["line_cut"], true);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("longer than max_line (1024 bytes)"),
        "{d}"
    );
    assert_eq!(
        d["line"].as_str().unwrap().len(),
        1024,
        "the beginning of the line"
    );
    let d = by_offset(utf8_at);
    assert_eq!(d["reason"], "invalid_utf8");
    assert_eq!(d["line_base64"], "eyJuYW1lIjoidC5TZXEiLCJkYXRhIjoi//4ifQ==");
    let d = by_offset(unparsable_at);
    assert_eq!(d["reason"], "unparsable");
    assert!(d["message"].as_str().unwrap().starts_with("not JSON: "), "{d}");
    assert_eq!(d["line"], "{\"name\": ");
    let d = by_offset(noname_at);
    assert_eq!(d["message"], "not an event: missing \"name\"");
    assert_eq!(d["source"], format!("tail:{file}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_picks_up_files_created_later() {
    let tail = r#"
[[source.tail]]
path = "later/*.log"
"#;
    let mut t = Tail::setup(tail, "");
    // Not even the directory exists yet.
    t.start().await;
    fs::create_dir(t.path("later")).unwrap();
    append(&t.path("later/a.log"), &lines(0..10));
    append(&t.path("later/ignored.txt"), &lines(100..110));
    t.wait(20, "the first file", |t| t.counts().len() >= 10).await;
    append(&t.path("later/b.log"), &lines(10..20));
    fs::create_dir(t.path("later/sub")).unwrap();
    append(&t.path("later/sub/c.log"), &lines(200..210));
    t.wait(20, "the second file", |t| t.counts().len() >= 20).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pauses_reading_and_drops_nothing() {
    let toml = r#"
[[source.tail]]
path = "logs/app.log"
start_at = "beginning"

[plugin.slow]
timeout = "5s"
fuel = 1_000_000_000

[[route]]
name = "slow"
handlers = ["slow"]
"#;
    let dir = write_setup(
        "queue = 8\nworkers = 1",
        &format!("{toml}\n{SINK}"),
        &[("slow", crate::fixtures::slow(20_000))],
    );
    fs::create_dir(dir.path().join("logs")).unwrap();
    let mut t = Tail { dir, daemon: None };
    // More than one read's worth (256 KiB), so that reading has to pause.
    const N: u64 = 12_000;
    append(&t.path("logs/app.log"), &lines(0..N));
    t.start().await;
    // Read ahead of what was handled: never more than the queue holds.
    let mut max_ahead = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.handled() < N {
        assert!(Instant::now() < deadline, "stuck at {}", t.handled());
        let s = t.stats();
        let ahead = s["lines"].as_u64().unwrap() - s["lines_handled"].as_u64().unwrap();
        max_ahead = max_ahead.max(ahead);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = t.daemon.as_ref().unwrap().stats().to_json();
    t.stop().await;
    // Without backpressure all 12,000 would be submitted at once; with it,
    // the queue's 8 plus a few batches whose replies the source had not
    // collected yet when it sampled.
    assert!(
        (1..200).contains(&max_ahead),
        "{max_ahead} lines submitted ahead of those handled"
    );
    assert_eq!(stats["refused_queue_full"], 0);
    assert_exactly_once(&t.counts(), 0..N);
    assert!(t.dead().is_empty());
}

/// The checkpoint after a clean stop says "all of it": a restart reads
/// nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_reads_nothing_twice() {
    let mut t = Tail::setup(FOLLOW_APP, "");
    let log = t.path("logs/app.log");
    append(&log, &lines(0..500));
    t.start().await;
    t.wait(20, "the lines", |t| t.handled() >= 500).await;
    t.stop().await;
    let cp: Vec<PathBuf> = fs::read_dir(t.path("data/tail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let cp: Value = serde_json::from_slice(&fs::read(&cp[0]).unwrap()).unwrap();
    assert_eq!(
        cp["files"][0]["offset"],
        fs::metadata(&log).unwrap().len(),
        "{cp}"
    );
    assert_eq!(cp["files"][0]["state"], "active");
    t.start().await;
    // The counters are exported (and start again from 0 in a new process).
    let addr = t.daemon.as_ref().unwrap().addr();
    let metrics = crate::harness::request(addr, "GET", "/metrics", &[], Vec::new())
        .await
        .body;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("switchyard_tail_lines_handled_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_tail_copytruncate_lost_bytes_total 0"),
        "{metrics}"
    );
    t.stop().await;
    t.start().await;
    append(&log, &lines(500..510));
    t.wait(20, "the new lines", |t| t.handled() >= 10).await;
    t.stop().await;
    assert_exactly_once(&t.counts(), 0..510);
}

async fn tail_stats(addr: std::net::SocketAddr) -> Value {
    crate::harness::request(addr, "GET", "/v1/stats", &[], Vec::new())
        .await
        .body["tail"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_busy_file_loses_nothing() {
    let tail = r#"
[[source.tail]]
path = "logs/app.log"
start_at = "beginning"
"#;
    const QUEUE: u64 = 2000;
    let t = Tail::setup(tail, &format!("queue = {QUEUE}"));
    let log = t.path("logs/app.log");
    const BEFORE: u64 = 100_000;
    const DURING: u64 = 20_000;
    append(&log, &lines(0..BEFORE));
    // The application keeps writing through the crash and the restart.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_paced(&log, BEFORE, DURING, 8_000, u64::MAX, |_, _| {}))
    };
    let mut first = crate::harness::Binary::start(&t.path("router.toml"));
    // Killed once 30,000 lines are handled and a checkpoint past the start
    // is on disk (its writes wait for fsync, slow on a busy disk).
    let checkpoint = || -> Option<Value> {
        let file = fs::read_dir(t.path("data/tail"))
            .ok()?
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))?;
        serde_json::from_slice(&fs::read(file).ok()?).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let handled = tail_stats(first.addr).await["lines_handled"]
            .as_u64()
            .unwrap_or(0);
        let advanced = checkpoint().is_some_and(|cp| cp["files"][0]["offset"].as_u64() > Some(0));
        if handled >= 30_000 && advanced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {handled} lines handled; checkpoint {:?}",
            checkpoint()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let handled_before: Vec<u64> = count_seqs(&lines_after_crashes(&t.path("out.ndjson")).0)
        .into_keys()
        .collect();
    let before_kill = handled_before.len();
    assert!(before_kill < (BEFORE + DURING) as usize, "killed in the middle");
    // Where the last checkpoint written before the kill says to resume: the
    // lines before it (seq = line number: the file is written in order).
    let cp = checkpoint().expect("a checkpoint was written before the kill");
    let offset = cp["files"][0]["offset"].as_u64().unwrap() as usize;
    let resume_at = fs::read(&log).unwrap()[..offset]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64;
    assert!(resume_at > 0, "the checkpoint advanced before the kill: {cp}");
    let mut second = crate::harness::Binary::start(&t.path("router.toml"));
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    // Done when everything read has been handled and nothing moves.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = Value::Null;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = tail_stats(second.addr).await;
        if s == last && s["lines"] == s["lines_handled"] && fs::metadata(&log).unwrap().len() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not done: {s}");
        last = s;
    }
    assert!(second.terminate().await.success());
    // The sink may hold the line it was writing when killed, torn; that
    // event was not acknowledged, so it is handled (and written) again.
    let (events, torn) = lines_after_crashes(&t.path("out.ndjson"));
    assert!(torn <= 1, "{torn} torn lines in the sink");
    let counts = count_seqs(&events);
    let missing: Vec<u64> = (0..BEFORE + DURING).filter(|s| !counts.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{} lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(counts.len() as u64, BEFORE + DURING, "nothing unexpected");
    // Duplicates are exactly the lines handled before the kill that the
    // checkpoint had not passed yet: what was in flight, plus what was
    // handled while the checkpoint was being written (every 50 ms).
    let dups: usize = counts.values().map(|n| n - 1).sum();
    let expected = handled_before.iter().filter(|s| **s >= resume_at).count();
    eprintln!(
        "kill -9 after {before_kill} lines handled; checkpoint at line {resume_at}; {dups} handled twice"
    );
    assert_eq!(
        dups, expected,
        "handled twice: only what the checkpoint had not passed"
    );
    assert!(
        counts
            .iter()
            .all(|(s, n)| *n == 1 || (*s >= resume_at && handled_before.binary_search(s).is_ok())),
        "a line before the checkpoint was handled again"
    );
}
