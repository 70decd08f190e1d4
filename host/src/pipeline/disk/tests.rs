//! The disk queue's own tests: group commit, recovery (torn tail, damage,
//! acks, order, poison), the backlog limit, write errors, the window.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use crate::config::{QueueConfig, QueueType, SyncMode};
use crate::pipeline::queue::Delivery;

struct Fixture {
    dir: tempfile::TempDir,
    stats: Arc<Stats>,
    dead_letters: DeadLetters,
    settles: Arc<AtomicUsize>,
}

fn config(max_bytes: u64, max_deliveries: u32) -> QueueConfig {
    QueueConfig {
        kind: QueueType::Disk,
        max_bytes,
        sync: SyncMode::Batch,
        max_deliveries,
    }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(Stats::default());
        let dead_letters = DeadLetters::open(&dir.path().join("dl.ndjson"), stats.clone()).unwrap();
        Fixture {
            dir,
            stats,
            dead_letters,
            settles: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    fn open_with(&self, cfg: QueueConfig, capacity: usize) -> DiskQueue {
        let (settles, dl) = (self.settles.clone(), self.dead_letters.clone());
        let settle: Settle = Arc::new(move || {
            settles.fetch_add(1, Relaxed);
            dl.flush().and_then(|()| dl.sync()).unwrap();
        });
        DiskQueue::open(
            &self.queue_dir(),
            cfg,
            capacity,
            2,
            self.dead_letters.clone(),
            self.stats.clone(),
            settle,
        )
        .unwrap()
    }

    fn open(&self) -> DiskQueue {
        self.open_with(config(1 << 30, 5), 100)
    }

    fn letters(&self) -> Vec<Value> {
        let _ = self.dead_letters.flush();
        std::fs::read_to_string(self.dir.path().join("dl.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The segment files, oldest first.
    fn segments(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.queue_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }
}

fn events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event::from_input(serde_json::json!({"name": format!("t.{prefix}{i}")}), "test").unwrap())
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn submit(q: &DiskQueue, events: Vec<Event>) -> Result<Receipt, SubmitError> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(q.try_submit(events, Ack::Accepted))
}

/// Takes `n` deliveries, waiting at most 10 s for them.
fn take(q: &DiskQueue, n: usize) -> Vec<Delivery<Token>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n {
        match q.try_recv() {
            Ok(d) => got.push(d),
            Err(NoDelivery::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("{e:?} after {} of {n} deliveries", got.len()),
        }
    }
    got
}

fn names(ds: &[Delivery<Token>]) -> Vec<String> {
    ds.iter().map(|d| d.event.name.clone()).collect()
}

fn ack(q: &DiskQueue, ds: Vec<Delivery<Token>>) {
    let mut done: Vec<(Token, EventReport)> =
        ds.into_iter().map(|d| (d.token, EventReport::bare())).collect();
    q.handled(&mut done);
}

/// Nothing more is delivered within a moment.
fn nothing_more(q: &DiskQueue) {
    std::thread::sleep(Duration::from_millis(100));
    assert!(matches!(q.try_recv(), Err(NoDelivery::Empty)));
}

#[test]
fn concurrent_submits_share_fsyncs() {
    let f = Fixture::new();
    let q = Arc::new(f.open());
    let rt = rt();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let q = q.clone();
            rt.spawn(async move { q.try_submit(events(&format!("c{i}."), 1), Ack::Accepted).await })
        })
        .collect();
    for t in tasks {
        rt.block_on(t).unwrap().unwrap();
    }
    let fsyncs = f.stats.queue_fsyncs.load(Relaxed);
    assert!(
        (1..=32).contains(&fsyncs),
        "64 concurrent submits took {fsyncs} fsyncs"
    );
    assert_eq!(take(&q, 64).len(), 64);
    assert_eq!(q.depth(), 64);
}

#[test]
fn acks_survive_reopen_and_the_rest_comes_again_in_order() {
    let f = Fixture::new();
    let q = f.open();
    submit(&q, events("a", 5)).unwrap();
    submit(&q, events("b", 5)).unwrap();
    let mut got = take(&q, 10);
    let rest = got.split_off(4);
    ack(&q, got);
    drop(rest);
    q.finish();
    assert!(f.settles.load(Relaxed) >= 1, "acks are written after a settle");

    let q = f.open();
    assert_eq!(q.depth(), 6);
    assert_eq!(f.stats.queue_redelivered.load(Relaxed), 6);
    let again = take(&q, 6);
    assert_eq!(names(&again), ["t.a4", "t.b0", "t.b1", "t.b2", "t.b3", "t.b4"]);
    nothing_more(&q);
    ack(&q, again);
    q.finish();

    let q = f.open();
    assert_eq!(q.depth(), 0);
    nothing_more(&q);
}

#[test]
fn redelivery_after_a_restart_is_in_order_of_acceptance() {
    let f = Fixture::new();
    let q = f.open_with(config(1 << 30, 5), 100);
    for b in 0..4 {
        submit(&q, events(&format!("r{b}."), 3)).unwrap();
    }
    // Handed out, never handled: the daemon "dies".
    let _ = take(&q, 5);
    q.finish();
    let q = f.open();
    let names = names(&take(&q, 12));
    let want: Vec<String> = (0..4)
        .flat_map(|b| (0..3).map(move |i| format!("t.r{b}.{i}")))
        .collect();
    assert_eq!(names, want);
}

#[test]
fn an_event_that_keeps_crashing_the_daemon_becomes_poison() {
    let f = Fixture::new();
    let cfg = config(1 << 30, 2);
    let mut q = f.open_with(cfg, 100);
    submit(&q, events("p", 2)).unwrap();
    for crash in 0..2 {
        let ds = take(&q, 2);
        assert_eq!(names(&ds), ["t.p0", "t.p1"], "delivery {crash}");
        // Worker 1 dies running t.p1's handlers; t.p0 waits for its ack.
        q.running(1, &ds[1].token);
        q.finish();
        drop(q);
        q = f.open_with(cfg, 100);
    }
    // Two deaths while t.p1 ran: dead-lettered, never delivered again.
    let ds = take(&q, 1);
    assert_eq!(names(&ds), ["t.p0"]);
    nothing_more(&q);
    assert_eq!(f.stats.queue_poison.load(Relaxed), 1);
    q.finish();
    let letters = f.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "poison");
    assert_eq!(letters[0]["event"]["name"], "t.p1");
    // Its ack was written after the letter: no second letter.
    let q = f.open_with(cfg, 100);
    assert_eq!(names(&take(&q, 1)), ["t.p0"]);
    nothing_more(&q);
    q.finish();
    assert_eq!(f.letters().len(), 1);
}

#[test]
fn a_torn_last_record_is_ignored_and_truncated() {
    let f = Fixture::new();
    let q = f.open();
    submit(&q, events("t", 2)).unwrap();
    q.finish();
    let seg = f.segments().pop().unwrap();
    let whole = std::fs::read(&seg).unwrap();
    // Half of a copy of the first record, as a power loss mid-write leaves.
    let first = record::scan(&whole).records[0].2.clone();
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[first.start..first.end / 2]);
    std::fs::write(&seg, &torn).unwrap();

    let q = f.open();
    assert_eq!(names(&take(&q, 2)), ["t.t0", "t.t1"]);
    nothing_more(&q);
    assert_eq!(f.stats.queue_torn_records.load(Relaxed), 1);
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        whole,
        "the torn bytes are truncated away"
    );
    assert!(
        f.letters().is_empty(),
        "a torn record was never accepted: no letter"
    );
}

#[test]
fn a_corrupt_middle_record_is_dead_lettered_with_its_bytes_and_reading_goes_on() {
    let f = Fixture::new();
    let q = f.open();
    for i in 0..3 {
        submit(&q, events(&format!("m{i}."), 1)).unwrap();
    }
    q.finish();
    let seg = f.segments().pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = record::scan(&bytes).records[1].2.clone();
    bytes[middle.start + record::HEADER + 3] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();

    let q = f.open();
    assert_eq!(names(&take(&q, 2)), ["t.m0.0", "t.m2.0"]);
    nothing_more(&q);
    assert_eq!(f.stats.queue_corrupt_records.load(Relaxed), 1);
    let letters = f.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "corrupt_record");
    assert_eq!(letters[0]["offset"], middle.start as u64);
    assert_eq!(letters[0]["segment"], seg.to_str().unwrap());
    let b64 = letters[0]["record_base64"].as_str().unwrap();
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    assert_eq!(decoded, &bytes[middle.clone()]);
    q.finish();
    // Reported once: the damage is marked once its letter is durable.
    let q = f.open();
    assert_eq!(take(&q, 2).len(), 2);
    q.finish();
    assert_eq!(f.letters().len(), 1);
}

/// A 1 KiB event.
fn big(i: usize) -> Event {
    let pad = "x".repeat(1000);
    Event::from_input(
        serde_json::json!({"name": format!("t.big{i}"), "data": {"pad": pad}}),
        "test",
    )
    .unwrap()
}

#[test]
fn a_full_backlog_refuses_try_submit_and_makes_submit_wait() {
    let f = Fixture::new();
    let q = Arc::new(f.open_with(config(64 << 10, 5), 1000));
    let mut accepted = 0;
    let refused = loop {
        match submit(&q, vec![big(accepted)]) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "64 KiB never refused");
    };
    assert_eq!(refused, SubmitError::Backlog { max_bytes: 64 << 10 });
    assert!(accepted >= 40, "only {accepted} KiB events fit in 64 KiB");
    let rt = rt();
    let waiting = {
        let q = q.clone();
        rt.spawn(async move { q.submit(vec![big(999)], Ack::Accepted).await })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(!waiting.is_finished(), "submit waits for room");
    // Handling frees whole segments, and with them room.
    let ds = take(&q, accepted);
    ack(&q, ds);
    let waited = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), waiting).await });
    waited.expect("room came back").unwrap().unwrap();
    assert_eq!(names(&take(&q, 1)), ["t.big999"]);
}

#[test]
fn a_failed_write_is_refused_undone_and_the_next_submit_succeeds() {
    let f = Fixture::new();
    let q = f.open();
    submit(&q, events("ok", 1)).unwrap();
    q.inner.fail_writes.store(1, Relaxed);
    let err = submit(&q, events("lost", 3)).unwrap_err();
    assert!(
        matches!(err, SubmitError::Unavailable { ref reason } if reason.contains("No space")),
        "{err:?}"
    );
    assert_eq!(f.stats.queue_write_errors.load(Relaxed), 1);
    submit(&q, events("again", 1)).unwrap();
    assert_eq!(names(&take(&q, 2)), ["t.ok0", "t.again0"]);
    q.finish();
    // The half-written group left nothing behind: no torn record, no damage.
    let q = f.open();
    assert_eq!(names(&take(&q, 2)), ["t.ok0", "t.again0"]);
    nothing_more(&q);
    assert_eq!(f.stats.queue_torn_records.load(Relaxed), 0);
    assert_eq!(f.stats.queue_corrupt_records.load(Relaxed), 0);
}

#[test]
fn the_window_spills_to_disk_and_reads_back_in_order() {
    let f = Fixture::new();
    let q = f.open_with(config(1 << 30, 5), 4);
    let rt = rt();
    let mut waits = Vec::new();
    for b in 0..10 {
        let receipt = rt
            .block_on(q.try_submit(events(&format!("w{b}."), 5), Ack::Handled))
            .unwrap();
        waits.extend(receipt.handled);
        assert!(
            lock(&q.inner.window).items.len() <= 4,
            "the window holds at most its capacity"
        );
    }
    let mut got = Vec::new();
    while got.len() < 50 {
        let ds = take(&q, 1);
        assert!(lock(&q.inner.window).items.len() <= 4);
        got.extend(names(&ds));
        ack(&q, ds);
    }
    let want: Vec<String> = (0..10)
        .flat_map(|b| (0..5).map(move |i| format!("t.w{b}.{i}")))
        .collect();
    assert_eq!(got, want);
    // Waiters of events read back from disk are told too.
    for w in waits {
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), w).await })
            .expect("told")
            .expect("handled");
    }
}

#[test]
fn one_daemon_per_queue_folder() {
    let f = Fixture::new();
    let q = f.open();
    let settle: Settle = Arc::new(|| {});
    let second = DiskQueue::open(
        &f.queue_dir(),
        config(1 << 30, 5),
        10,
        1,
        f.dead_letters.clone(),
        f.stats.clone(),
        settle,
    );
    assert!(
        matches!(second, Err(OpenError::Locked { .. })),
        "a second open must be refused"
    );
    q.finish();
    // Finishing releases the folder.
    drop(f.open());
}

#[test]
fn interval_sync_answers_before_the_fsync_and_fsyncs_on_the_timer() {
    let f = Fixture::new();
    let cfg = QueueConfig {
        sync: SyncMode::Interval(Duration::from_millis(300)),
        ..config(1 << 30, 5)
    };
    let q = f.open_with(cfg, 100);
    for i in 0..5 {
        submit(&q, events(&format!("i{i}."), 2)).unwrap();
    }
    assert_eq!(f.stats.queue_fsyncs.load(Relaxed), 0, "answered before any fsync");
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.stats.queue_fsyncs.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the timer never fsynced");
        std::thread::sleep(Duration::from_millis(20));
    }
    // One fsync for everything written since the last (two if the
    // submits straddled a tick).
    assert!(f.stats.queue_fsyncs.load(Relaxed) <= 2);
    // The gauges follow the log: bytes on disk, the oldest event's age.
    std::thread::sleep(Duration::from_millis(600));
    let m = &f.stats.metrics;
    assert!(m.queue_bytes.get() > 0);
    assert!(m.queue_oldest_age.get() > 0.3, "age {}", m.queue_oldest_age.get());
    ack(&q, take(&q, 10));
    q.finish();
    assert_eq!(
        f.stats.metrics.queue_oldest_age.get(),
        0.0,
        "nothing unacked is left"
    );
}

#[test]
fn a_fully_acked_active_segment_makes_room_for_a_large_batch() {
    let f = Fixture::new();
    // 16 KiB segments: 10 KiB stay in the active segment.
    let q = f.open_with(config(64 << 10, 5), 1000);
    submit(&q, (0..10).map(big).collect()).unwrap();
    ack(&q, take(&q, 10));
    let deadline = Instant::now() + Duration::from_secs(5);
    // 55 KiB more fit only once the acked 10 KiB count as free.
    loop {
        match submit(&q, (100..155).map(big).collect()) {
            Ok(_) => break,
            Err(SubmitError::Backlog { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(take(&q, 55).len(), 55);
    // The old segment went once rolled away from.
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.segments().len() > 1 {
        assert!(Instant::now() < deadline, "{:?}", f.segments());
        std::thread::sleep(Duration::from_millis(20));
    }
}
