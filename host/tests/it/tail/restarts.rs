//! Backpressure and restarts: a full queue, a clean restart, `kill -9`.

use super::*;

/// The memory queue's bound, `[server] queue`: the source reads ahead of
/// what was handled by at most that. (With the disk queue a line is
/// complete once queued, and the bound is `[queue] max_bytes` on disk.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pauses_reading_and_drops_nothing() {
    let toml = r#"
[queue]
type = "memory"

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
    let mut t = Tail::in_setup(dir);
    // More than one read's worth (256 KiB), so that reading has to pause.
    const N: u64 = 12_000;
    append(&t.path("logs/app.log"), &lines(0..N));
    t.start().await;
    // Read ahead of what was handled: never more than the queue holds.
    let mut max_ahead = 0;
    let what = lazy(|| format!("all lines handled, stuck at {}", t.handled()));
    wait_until_every(
        Duration::from_millis(2),
        what,
        Duration::from_secs(30),
        async || {
            if t.handled() >= N {
                return true;
            }
            let s = t.stats();
            let ahead = s["lines"].as_u64().unwrap() - s["lines_handled"].as_u64().unwrap();
            max_ahead = max_ahead.max(ahead);
            false
        },
    )
    .await;
    let stats = t.daemon().daemon().stats().to_json();
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

/// The disk queue's bound, `[queue] max_bytes` (issue 12): a source reading
/// faster than the handlers drain waits for room once the backlog on disk
/// is full; no line is refused or dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_backlog_pauses_reading_and_drops_nothing() {
    let toml = r#"
[queue]
type = "disk"
max_bytes = "1MiB"

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
        "workers = 1",
        &format!("{toml}\n{SINK}"),
        &[("slow", crate::fixtures::slow(20_000))],
    );
    let mut t = Tail::in_setup(dir);
    const N: u64 = 12_000;
    append(&t.path("logs/app.log"), &lines(0..N));
    t.start().await;
    let addr = t.daemon().addr;
    let mut max_depth = 0;
    let what = lazy(|| format!("all lines queued and handled, stuck at {}", t.counts().len()));
    wait_until_every(
        Duration::from_millis(5),
        what,
        Duration::from_secs(60),
        async || {
            let stats = crate::harness::request(addr, "GET", "/v1/stats", &[], Vec::new())
                .await
                .body;
            let depth = stats["queue"]["depth"].as_u64().unwrap();
            max_depth = max_depth.max(depth);
            stats["tail"]["lines"] == N && depth == 0
        },
    )
    .await;
    let stats = t.daemon().daemon().stats().to_json();
    t.stop().await;
    // Without backpressure all 12,000 (about 2.5 MB as records) would be
    // queued at once (reading is far faster than the handler); 1 MiB holds
    // about 4,000.
    assert!(
        (1..6_000).contains(&max_depth),
        "{max_depth} events queued at once"
    );
    assert_eq!(
        stats["refused_queue_backlog"], 0,
        "the source waits, HTTP refuses"
    );
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
    let addr = t.daemon().addr;
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
    let handled = std::cell::Cell::new(0);
    let what = lazy(|| {
        format!(
            "30000 lines handled and a checkpoint: only {} lines handled; checkpoint {:?}",
            handled.get(),
            checkpoint()
        )
    });
    wait_until_every(
        Duration::from_millis(10),
        what,
        Duration::from_secs(30),
        async || {
            handled.set(
                tail_stats(first.addr).await["lines_handled"]
                    .as_u64()
                    .unwrap_or(0),
            );
            let advanced = checkpoint().is_some_and(|cp| cp["files"][0]["offset"].as_u64() > Some(0));
            handled.get() >= 30_000 && advanced
        },
    )
    .await;
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
    let last = std::cell::RefCell::new(Value::Null);
    let what = lazy(|| format!("everything read to be handled, not done: {}", last.borrow()));
    wait_until_every(
        Duration::from_millis(200),
        what,
        Duration::from_secs(40),
        async || {
            let s = tail_stats(second.addr).await;
            let done = *last.borrow() == s
                && s["lines"] == s["lines_handled"]
                && fs::metadata(&log).unwrap().len() > 0;
            *last.borrow_mut() = s;
            done
        },
    )
    .await;
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
    let dups: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 after {before_kill} lines handled; checkpoint at line {resume_at}; {dups} handled twice"
    );
    if !crate::harness::memory_queue() {
        // The disk queue: a line is complete once queued. Handled again are
        // lines the checkpoint had not passed (read again; those queued
        // before the kill are also handled from the queue) and lines
        // handled before the kill whose release the queue had not written
        // (handled from the queue again): what was in flight, nothing else.
        assert!(
            counts
                .iter()
                .all(|(s, n)| *n == 1
                    || (*n <= 3 && (*s >= resume_at || handled_before.binary_search(s).is_ok()))),
            "a line neither in flight nor past the checkpoint was handled again"
        );
        return;
    }
    // The memory queue: duplicates are exactly the lines handled before the
    // kill that the checkpoint had not passed yet: what was in flight, plus
    // what was handled while the checkpoint was being written (every 50 ms).
    let expected = handled_before.iter().filter(|s| **s >= resume_at).count();
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
