//! Rotation: rename (logrotate `create`) and copytruncate, while running
//! and while stopped.

use super::*;

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
    let what = lazy(|| {
        format!(
            "every line handled: tail stats {}; missing {}",
            t.stats(),
            missing_ranges(&t.counts(), 0..total)
        )
    });
    wait_until(what, Duration::from_secs(30), async || t.handled() >= total).await;
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
