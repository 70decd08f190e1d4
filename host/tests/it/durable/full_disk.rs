//! A full disk under the queue: the state folder on a small tmpfs, filled
//! by a filler file while the daemon runs. HTTP answers 503 with
//! `Retry-After`, the refusals are counted, the tail source pauses; once
//! the filler is deleted everything recovers by itself, and nothing that
//! was accepted (answered 202, or a line in the tailed file) is lost.

use std::time::Duration;

use crate::faults::Tmpfs;
use crate::harness::{lazy, wait_until, write_setup, Binary, PATIENCE};
use crate::tail::{append, lines, lines_after_crashes};

use super::{disk_queue, metrics, ndjson, sink_ids, total, try_post, Tally};

/// Grows the filler on `tmpfs` until the filesystem is full again (the
/// daemon may have freed space meanwhile, deleting a segment it finished).
fn top_up(tmpfs: &Tmpfs) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(tmpfs.path.join("filler"))
        .unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_pauses_and_recovers_by_itself() {
    let toml = format!(
        r#"
{queue}
[state]
dir = "state"

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
    let dir = write_setup("", &toml, &[]);
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("state"), "8m") else {
        return;
    };
    let log = dir.path().join("logs/app.log");
    let out = dir.path().join("out.ndjson");
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    let mut accepted = Vec::new();
    let mut n = 0;
    let mut post = async |accepted: &mut Vec<String>| {
        let ids: Vec<String> = (n..n + 100).map(|i| format!("f-{i}")).collect();
        n += 100;
        let reply = try_post(
            daemon.addr,
            "/v1/events",
            "application/x-ndjson",
            ndjson("c.Event", &ids, 200),
        )
        .await;
        match reply {
            Ok((status, headers)) if status.is_success() => {
                accepted.extend(ids);
                (status, headers)
            }
            Ok(refused) => refused,
            Err(e) => panic!("the daemon answers while the disk is full: {e}"),
        }
    };
    assert!(post(&mut accepted).await.0.is_success());

    tmpfs.fill_leaving(0);
    // A segment may have room left in it: post until the disk is felt.
    let mut refusal = None;
    for _ in 0..2_000 {
        let (status, headers) = post(&mut accepted).await;
        if !status.is_success() {
            refusal = Some((status, headers));
            break;
        }
    }
    let (status, headers) = refusal.expect("a full disk refuses new events");
    assert_eq!(status, 503);
    assert_eq!(
        headers["retry-after"], "5",
        "a full disk asks to come back in 5 s"
    );
    let m = metrics(daemon.addr).await;
    assert!(
        total(&m, "switchyard_queue_write_errors_total") >= 1.0,
        "the disk write errors are counted:\n{m}"
    );
    assert!(
        total(&m, "switchyard_queue_unavailable_refusals_total") >= 1.0,
        "the 503s are counted:\n{m}"
    );
    // Lines appended while the disk is full wait in the file: the tail
    // source pauses rather than dropping them.
    const LINES: u64 = 300;
    top_up(&tmpfs);
    append(&log, &lines(0..LINES));
    let paused = std::cell::RefCell::new(String::new());
    wait_until(
        lazy(|| format!("the tail source to pause on the full disk:\n{}", paused.borrow())),
        PATIENCE,
        async || {
            *paused.borrow_mut() = metrics(daemon.addr).await;
            total(&paused.borrow(), "switchyard_tail_queue_unavailable_total") >= 1.0
        },
    )
    .await;
    top_up(&tmpfs);
    assert!(
        !post(&mut accepted).await.0.is_success(),
        "still refused while the disk is full"
    );

    let said = ["the disk queue cannot write", "tail reading paused"];
    let what = lazy(|| format!("the daemon to log {said:?}:\n{}", daemon.log_lines().join("\n")));
    wait_until(what, PATIENCE, async || {
        let log = daemon.log_lines().join("\n");
        said.iter().all(|s| log.contains(s))
    })
    .await;

    std::fs::remove_file(tmpfs.path.join("filler")).unwrap();
    // No restart, no signal: the next submit finds room.
    wait_until(
        "a post to be accepted again once there is room",
        Duration::from_secs(20),
        async || post(&mut accepted).await.0.is_success(),
    )
    .await;
    let seqs = || {
        let events = lines_after_crashes(&out).0;
        events.iter().filter(|e| e["name"] == "t.Seq").count() as u64
    };
    let what = lazy(|| format!("the {LINES} tailed lines in the sink, {} there", seqs()));
    wait_until(what, PATIENCE, async || seqs() >= LINES).await;
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
    let (seen, torn) = sink_ids(&out);
    assert_eq!(torn, 0);
    let mut by_seq = std::collections::BTreeMap::new();
    for e in lines_after_crashes(&out)
        .0
        .iter()
        .filter(|e| e["name"] == "t.Seq")
    {
        *by_seq.entry(e["data"]["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    assert!(
        (0..LINES).all(|s| by_seq.get(&s) == Some(&1)),
        "every tailed line once: {by_seq:?}"
    );
    let posted: std::collections::BTreeMap<String, usize> =
        seen.into_iter().filter(|(id, _)| id.starts_with("f-")).collect();
    Tally::new(&accepted, &[], &posted).assert_complete("a full disk", 0);
    drop(daemon);
    drop(tmpfs);
}
