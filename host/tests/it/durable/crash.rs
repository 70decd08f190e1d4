//! The crash harness over HTTP: two producers post NDJSON batches while the
//! daemon is `kill -9`ed at random moments, over several cycles, each
//! restarting on the same state folder; a graceful stop at the end. Every
//! event answered 2xx is in the file sink; duplicates are at most what was
//! in flight at the kills. Once with a trivial handler, once with a handler
//! slower than the producers, so that the queue is deep at every kill.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{disk_queue, rng, sink_ids, Produced, Producer, Tally};
use crate::fixtures;
use crate::harness::{write_setup, Binary};

/// `[server] queue`: for the disk queue, the events held decoded in memory.
const QUEUE: usize = 256;
const WORKERS: usize = 2;
/// What one kill can leave handled but not acknowledged, so handled again
/// after the restart (README, "The queue"): the events each worker
/// completed but had not handed over yet (at most 256 each, the
/// pipeline's `MAX_PENDING_ACKS`), and the acknowledgement round in
/// progress, counted as at most the window of `QUEUE` decoded events.
const IN_FLIGHT: usize = QUEUE + 256 * WORKERS;

/// How one run of the harness goes.
struct Plan {
    test: &'static str,
    /// The handler of every event.
    handler: String,
    cycles: usize,
    /// The kill comes this long after the start, at random.
    kill_after_ms: std::ops::Range<u64>,
    /// Batches each of the two producers gets accepted per cycle at most.
    batches: usize,
    /// Events per batch.
    batch: usize,
}

/// Per cycle: the events accepted so far that were not in the sink when
/// the daemon was killed (the backlog it died with).
struct Outcome {
    tally: Tally,
    backlogs: Vec<usize>,
    kills: usize,
    /// Batches answered 503: none while the disk holds the backlog.
    refused: usize,
}

async fn crash_cycles(plan: Plan) -> Outcome {
    let toml = format!(
        r#"
{queue}
[plugin.h]
timeout = "10s"

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
        &format!("queue = {QUEUE}\nworkers = {WORKERS}"),
        &toml,
        &[("h", plan.handler.clone())],
    );
    let config = dir.path().join("router.toml");
    let out = dir.path().join("out.ndjson");
    let mut rng = rng(plan.test);
    let mut all = Produced::default();
    let mut backlogs = Vec::new();
    for cycle in 0..plan.cycles {
        let mut daemon = Binary::start(&config);
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let producer = Producer {
                    prefix: format!("c{cycle}p{p}"),
                    batch: plan.batch,
                    limit: plan.batches,
                    pad: 100,
                };
                tokio::spawn(producer.run(daemon.addr, stop.clone()))
            })
            .collect();
        // Not a wait for something to happen: the random moment of the kill.
        tokio::time::sleep(Duration::from_millis(rng.u64(plan.kill_after_ms.clone()))).await;
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        for p in producers {
            let got = p.await.unwrap();
            all.accepted.extend(got.accepted);
            all.unanswered.extend(got.unanswered);
            all.refused += got.refused;
        }
        let (seen, _) = sink_ids(&out);
        let backlog = all.accepted.iter().filter(|id| !seen.contains_key(*id)).count();
        eprintln!(
            "{}: cycle {cycle}: killed with {} accepted so far, {backlog} of them not yet in the sink",
            plan.test,
            all.accepted.len()
        );
        backlogs.push(backlog);
    }
    // The last start drains what is left; a graceful stop ends it.
    let mut daemon = Binary::start(&config);
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
    let (seen, torn) = sink_ids(&out);
    assert!(
        torn <= plan.cycles,
        "{torn} torn lines in the sink after {} kills",
        plan.cycles
    );
    Outcome {
        tally: Tally::new(&all.accepted, &all.unanswered, &seen),
        backlogs,
        kills: plan.cycles,
        refused: all.refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_posting_loses_no_accepted_event() {
    let outcome = crash_cycles(Plan {
        test: "kill_9_while_posting",
        handler: fixtures::logger(),
        cycles: 6,
        kill_after_ms: 50..1500,
        batches: 60,
        batch: 100,
    })
    .await;
    outcome
        .tally
        .assert_complete("kill -9 while posting", outcome.kills * IN_FLIGHT);
    assert_eq!(outcome.refused, 0, "nothing refused: the backlog is on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_deep_queue_loses_no_accepted_event() {
    // 2 ms per event on each of 2 workers: at most 1,000 events/s, while
    // each cycle gets 2,000 accepted within a fraction of a second.
    let outcome = crash_cycles(Plan {
        test: "kill_9_with_a_deep_queue",
        handler: fixtures::sleeper(2_000_000, 1, false, false),
        cycles: 5,
        kill_after_ms: 300..1200,
        batches: 10,
        batch: 100,
    })
    .await;
    let deepest = outcome.backlogs.iter().copied().max().unwrap_or(0);
    assert!(
        deepest >= 1000,
        "the queue was deep at a kill: backlogs {:?}",
        outcome.backlogs
    );
    outcome
        .tally
        .assert_complete("kill -9 with a deep queue", outcome.kills * IN_FLIGHT);
    assert_eq!(outcome.refused, 0, "nothing refused: the backlog is on disk");
}
