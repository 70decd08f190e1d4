//! The disk queue's limits: the backlog, write errors, the window, the
//! folder lock, interval sync, a batch larger than the queue.

use super::*;

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
    let settle: Settle = Arc::new(|| true);
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

#[test]
fn a_batch_larger_than_the_whole_queue_is_refused_at_once_by_both_submits() {
    let f = Fixture::new();
    let q = f.open_with(config(64 << 10, 5), 1000);
    let too_large = |e: SubmitError| match e {
        SubmitError::BatchTooLarge { bytes, max_bytes } => bytes > max_bytes && max_bytes == 64 << 10,
        _ => false,
    };
    let refused = submit(&q, (0..80).map(big).collect()).unwrap_err();
    assert!(too_large(refused.clone()), "{refused:?}");
    // A submit that waits for room does not wait for room that never comes.
    let waited = rt().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            q.submit((0..80).map(big).collect(), Ack::Accepted),
        )
        .await
    });
    let refused = waited.expect("refused at once").unwrap_err();
    assert!(too_large(refused.clone()), "{refused:?}");
    assert_eq!(q.depth(), 0);
}

/// An event whose dead letter may not have been written (the report says
/// `unwritten`) is not acked: it comes again after a restart.
#[test]
fn an_event_whose_dead_letter_may_be_unwritten_stays_in_the_queue() {
    let f = Fixture::new();
    let q = f.open();
    submit(&q, events("u", 2)).unwrap();
    let mut done: Vec<(Token, EventReport)> = take(&q, 2)
        .into_iter()
        .map(|d| (d.token, EventReport::bare()))
        .collect();
    done[1].1.unwritten = true;
    q.handled(&mut done);
    q.finish();

    let q = f.open();
    assert_eq!(names(&take(&q, 1)), ["t.u1"]);
    nothing_more(&q);
}

/// On a full disk the space a fully acked active segment holds is what
/// the next write needs: a failed write rolls it away, so that the acker
/// deletes it (the reviewer's 4 MiB tmpfs stayed full otherwise).
#[test]
fn a_failed_write_rolls_a_fully_acked_active_segment_away() {
    let f = Fixture::new();
    let q = f.open();
    submit(&q, events("a", 3)).unwrap();
    ack(&q, take(&q, 3));
    let first = f.segments();
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.stats.queue_write_errors.load(Relaxed) == 0 {
        // Acked once the acker has settled and written the acks.
        if q.depth() == 0 && f.settles.load(Relaxed) > 0 {
            q.inner.fail_writes.store(1, Relaxed);
            assert!(submit(&q, events("x", 1)).is_err());
        }
        assert!(Instant::now() < deadline, "no write failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    submit(&q, events("b", 1)).unwrap();
    assert_eq!(names(&take(&q, 1)), ["t.b0"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.segments().iter().any(|s| first.contains(s)) {
        assert!(Instant::now() < deadline, "{:?} still there", f.segments());
        std::thread::sleep(Duration::from_millis(20));
    }
}
