//! Issue 12's storage measurement: fjall, redb, okaywal and a plain segment log on
//! the disk queue's workload, with the same payloads and the same
//! durability (on disk before an append returns). See README.md.
//!
//! Cases, one JSON line each on stdout:
//! - `batch`: append `--events` events of ~300 bytes in batches of 1,000
//!   (one sync per batch), then consume them in order, releasing 256 at a
//!   time. Events/s and process CPU per event (getrusage: every thread of
//!   the process, the libraries' background threads included) for each
//!   phase, bytes written to disk per event (`/proc/self/io` write_bytes),
//!   and the store's size on disk after the appends.
//! - `concurrent`: `--producers` threads each append one event at a time
//!   and wait until it is durable, for `--seconds` after one second of
//!   warm-up. One committer thread takes whatever is waiting, appends it as
//!   one group (one sync) and answers every producer of the group (group
//!   commit). For fjall also `fjall-direct`: each producer inserts and calls
//!   `Database::persist(SyncData)` itself (fjall's shared journal: a persist
//!   covers every insert before it), and `okaywal-direct`: each producer
//!   commits its own entry (okaywal shares one fsync among concurrent
//!   commits itself). Events/s, latency p50/p99, mean group.

mod stores;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

/// Events per appended batch and per release in the `batch` case.
const BATCH: usize = 1000;
const RELEASE: usize = 256;

struct Args {
    events: usize,
    seconds: f64,
    producers: usize,
    dir: PathBuf,
    stores: Vec<String>,
    cases: Vec<String>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        events: 300_000,
        seconds: 5.0,
        producers: 64,
        dir: std::env::temp_dir().join(format!("queue-storage-{}", std::process::id())),
        stores: ["segment", "fjall", "redb", "okaywal", "none"]
            .map(String::from)
            .to_vec(),
        cases: ["batch", "concurrent"].map(String::from).to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let list = || value.split(',').map(String::from).collect::<Vec<_>>();
        match flag.as_str() {
            "--events" => a.events = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--producers" => a.producers = value.parse()?,
            "--dir" => a.dir = value.into(),
            "--stores" => a.stores = list(),
            "--cases" => a.cases = list(),
            _ => bail!(
                "usage: queue-storage-bench [--events N] [--seconds S] [--producers P] [--dir D] \
                 [--stores segment,fjall,redb,okaywal,none] [--cases batch,concurrent]"
            ),
        }
    }
    Ok(a)
}

/// Event number `seq` as the daemon would queue it: a ~300-byte JSON
/// envelope whose first field is the zero-padded sequence number (so the
/// consumer can check order).
fn payload(seq: u64) -> Vec<u8> {
    format!(
        r#"{{"seq":{seq:010},"id":"01JD{seq:022}","name":"deals.DealClick","version":"1.2","time":"2026-12-01T05:00:00.000000Z","source":"http","meta":{{"host":"bench","remote":"127.0.0.1:40000"}},"data":{{"deal_id":{},"user_id":42,"price":19.99,"currency":"EUR","tags":["spring","sale","web"],"ref":"campaign-2026-12"}}}}"#,
        seq % 100_000
    )
    .into_bytes()
}

fn seq_of(record: &[u8]) -> u64 {
    std::str::from_utf8(&record[7..17])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Process CPU time so far (user + system, all threads), in seconds.
fn cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Bytes this process caused to be sent to the storage layer so far.
fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        total += if m.is_dir() {
            du(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

fn fresh(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn batch_case(store: &str, events: usize, base: &Path) -> Result<serde_json::Value> {
    let dir = base.join(format!("{store}-batch"));
    fresh(&dir)?;
    let payloads: Vec<Vec<u8>> = (0..events as u64).map(payload).collect();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let mut s = stores::open(store, &dir)?;

    let (w0, c0, t0) = (write_bytes(), cpu(), Instant::now());
    for group in payloads.chunks(BATCH) {
        s.append(group)?;
    }
    let (w1, c1, t1) = (write_bytes(), cpu(), Instant::now());
    let on_disk = du(&dir);

    let mut expect = 0u64;
    let mut out_of_order = 0u64;
    let n = s.consume(RELEASE, &mut |r| {
        out_of_order += u64::from(seq_of(r) != expect);
        expect += 1;
    })?;
    s.close()?;
    let (w2, c2, t2) = (write_bytes(), cpu(), Instant::now());
    if n != events as u64 || out_of_order != 0 {
        bail!("{store}: consumed {n} of {events}, {out_of_order} out of order");
    }
    let left = du(&dir);
    fresh(&dir)?;
    let ev = events as f64;
    let (append_s, consume_s) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
    Ok(json!({
        "bench": "queue-storage", "case": "batch", "store": store, "events": events,
        "payload_bytes_mean": round(bytes as f64 / ev, 1),
        "append_events_per_sec": (ev / append_s).round(),
        "consume_events_per_sec": (ev / consume_s).round(),
        "both_events_per_sec": (ev / (append_s + consume_s)).round(),
        "append_cpu_us_per_event": round((c1 - c0) * 1e6 / ev, 3),
        "consume_cpu_us_per_event": round((c2 - c1) * 1e6 / ev, 3),
        "cpu_us_per_event": round((c2 - c0) * 1e6 / ev, 3),
        "append_write_bytes_per_event": round((w1 - w0) as f64 / ev, 1),
        "write_bytes_per_event": round((w2 - w0) as f64 / ev, 1),
        "disk_bytes_per_event_after_append": round(on_disk as f64 / ev, 1),
        "disk_bytes_left_after_consume": left,
    }))
}

/// One producer's measured latencies (after the warm-up).
type Latencies = Vec<Duration>;

fn producers<F>(n: usize, warm: Instant, stop: Instant, each: F) -> Result<(Latencies, u64)>
where
    F: Fn(usize, u64) -> Result<()> + Send + Sync + 'static,
{
    let each = Arc::new(each);
    let handles: Vec<_> = (0..n)
        .map(|p| {
            let each = each.clone();
            std::thread::spawn(move || -> Result<(Latencies, u64)> {
                let (mut lat, mut total, mut i) = (Vec::new(), 0u64, 0u64);
                loop {
                    let start = Instant::now();
                    if start >= stop {
                        return Ok((lat, total));
                    }
                    each(p, i)?;
                    i += 1;
                    if start >= warm {
                        lat.push(start.elapsed());
                    }
                    total += 1;
                }
            })
        })
        .collect();
    let (mut all, mut total) = (Vec::new(), 0);
    for h in handles {
        let (lat, n) = h.join().map_err(|_| anyhow::anyhow!("a producer panicked"))??;
        all.extend(lat);
        total += n;
    }
    all.sort();
    Ok((all, total))
}

fn concurrent_case(store: &str, args: &Args) -> Result<serde_json::Value> {
    let dir = args.dir.join(format!("{store}-concurrent"));
    fresh(&dir)?;
    let start = Instant::now();
    let warm = start + Duration::from_secs(1);
    let stop = warm + Duration::from_secs_f64(args.seconds);
    let groups = Arc::new(AtomicU64::new(0));
    let (w0, c0) = (write_bytes(), cpu());
    let (lat, total) = if store == "fjall-direct" {
        let db = fjall::Database::builder(&dir).open()?;
        let queue = db.keyspace("queue", fjall::KeyspaceCreateOptions::default)?;
        let next = AtomicU64::new(0);
        producers(args.producers, warm, stop, move |_, _| {
            let seq = next.fetch_add(1, Ordering::Relaxed);
            queue.insert(seq.to_be_bytes(), payload(seq))?;
            db.persist(fjall::PersistMode::SyncData)?;
            Ok(())
        })?
    } else if store == "okaywal-direct" {
        let released = Arc::new(stores::Released::default());
        let wal = okaywal::WriteAheadLog::recover(&dir, stores::QueueCheckpointer(released.clone()))?;
        let wal = Arc::new(wal);
        let w = wal.clone();
        let next = AtomicU64::new(0);
        let result = producers(args.producers, warm, stop, move |_, _| {
            let seq = next.fetch_add(1, Ordering::Relaxed);
            let mut entry = w.begin_entry()?;
            entry.write_chunk(&payload(seq))?;
            entry.commit()?;
            Ok(())
        })?;
        released.set_closing();
        Arc::try_unwrap(wal)
            .map_err(|_| anyhow::anyhow!("the log is still shared"))?
            .shutdown()?;
        result
    } else {
        let mut s = stores::open(store, &dir)?;
        type Request = (Vec<u8>, mpsc::SyncSender<()>);
        let (tx, rx) = mpsc::channel::<Request>();
        let g = groups.clone();
        let committer = std::thread::spawn(move || -> Result<()> {
            let (mut records, mut waiters) = (Vec::new(), Vec::new());
            while let Ok((r, w)) = rx.recv() {
                records.push(r);
                waiters.push(w);
                while let Ok((r, w)) = rx.try_recv() {
                    records.push(r);
                    waiters.push(w);
                }
                s.append(&records)?;
                g.fetch_add(1, Ordering::Relaxed);
                records.clear();
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            s.close()
        });
        let next = Arc::new(AtomicU64::new(0));
        let result = producers(args.producers, warm, stop, move |_, _| {
            let seq = next.fetch_add(1, Ordering::Relaxed);
            let (done_tx, done_rx) = mpsc::sync_channel(1);
            tx.send((payload(seq), done_tx))
                .context("the committer stopped")?;
            done_rx.recv().context("the committer stopped")?;
            Ok(())
        });
        committer
            .join()
            .map_err(|_| anyhow::anyhow!("the committer panicked"))??;
        result?
    };
    let (w1, c1, t1) = (write_bytes(), cpu(), Instant::now());
    fresh(&dir)?;
    let n = lat.len().max(1);
    let pct = |q: f64| {
        lat.get(((n as f64 * q) as usize).min(n - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let elapsed = (t1 - start).as_secs_f64();
    // The -direct variants have no groups of their own: each producer syncs.
    let g = groups.load(Ordering::Relaxed).max(1);
    let mean_group = (!store.ends_with("-direct")).then(|| round(total as f64 / g as f64, 1));
    Ok(json!({
        "bench": "queue-storage", "case": "concurrent", "store": store, "producers": args.producers,
        "seconds": args.seconds,
        "events_per_sec": (lat.len() as f64 / args.seconds).round(),
        "latency_us": {"p50": pct(0.5).round(), "p99": pct(0.99).round(), "max": pct(1.0).round()},
        "mean_group": mean_group,
        "cpu_us_per_event": round((c1 - c0) * 1e6 / total.max(1) as f64, 2),
        "write_bytes_per_event": round((w1 - w0) as f64 / total.max(1) as f64, 1),
        "elapsed_s": round(elapsed, 2),
    }))
}

fn main() -> Result<()> {
    let args = args()?;
    std::fs::create_dir_all(&args.dir)?;
    for case in &args.cases {
        for store in &args.stores {
            let line = match case.as_str() {
                "batch" if store.ends_with("-direct") => continue,
                "batch" => batch_case(store, args.events, &args.dir)?,
                "concurrent" => concurrent_case(store, &args)?,
                other => bail!("unknown case {other:?}: batch or concurrent"),
            };
            println!("{line}");
            if case == "concurrent" && (store == "fjall" || store == "okaywal") {
                println!("{}", concurrent_case(&format!("{store}-direct"), &args)?);
            }
        }
    }
    std::fs::remove_dir_all(&args.dir)?;
    Ok(())
}
