//! The crash harness for a webhook sink whose receiver is down: events are
//! accepted, their batches wait for the receiver, the daemon is `kill -9`ed
//! at random moments and restarted; the receiver comes up after the last
//! restart and gets every accepted event (end-to-end acknowledgement: an
//! event leaves the queue only once the receiver answered 2xx for it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{disk_queue, rng, Produced, Producer, Tally};
use crate::fixtures;
use crate::harness::{lazy, wait_until, write_setup, Binary};

/// Ids received (answered 200), with how often each came.
type Received = Arc<Mutex<BTreeMap<String, usize>>>;

/// A webhook receiver on `addr` answering 200 to every JSON batch.
async fn receiver(addr: SocketAddr) -> Received {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let got: Received = Arc::default();
    let state = got.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = state.clone();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let batch: Vec<Value> = serde_json::from_slice(&body).unwrap();
                    let mut s = state.lock().unwrap();
                    for e in batch {
                        *s.entry(e["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
                    }
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_batches_survive_kill_9_while_the_receiver_is_down() {
    // A free port that nothing listens on until the receiver starts.
    let hook = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = format!(
        r#"
{queue}
[[route]]
name = "all"
match = {{ name = "c.*" }}
handlers = ["h"]
sinks = ["hook"]

[sink.hook]
type = "http"
url = "http://{hook}/ingest"
batch = 50
timeout = "2s"
retries = 100
backoff = "20ms"
max_backoff = "300ms"
"#,
        queue = disk_queue(5)
    );
    let dir = write_setup("queue = 256\nworkers = 2", &toml, &[("h", fixtures::logger())]);
    let config = dir.path().join("router.toml");
    let mut rng = rng("webhook_batches_survive_kill_9");
    const CYCLES: usize = 5;
    let mut all = Produced::default();
    for cycle in 0..CYCLES {
        let mut daemon = Binary::start(&config);
        let stop = Arc::new(AtomicBool::new(false));
        let producer = Producer {
            prefix: format!("w{cycle}"),
            batch: 100,
            limit: 10,
            pad: 50,
        };
        let producing = tokio::spawn(producer.run(daemon.addr, stop.clone()));
        // Not a wait for something to happen: the random moment of the kill.
        tokio::time::sleep(Duration::from_millis(rng.u64(100..1000))).await;
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        let got = producing.await.unwrap();
        eprintln!("webhook: cycle {cycle}: {} accepted", got.accepted.len());
        all.accepted.extend(got.accepted);
        all.unanswered.extend(got.unanswered);
    }
    let mut daemon = Binary::start(&config);
    let got = receiver(hook).await;
    let count = || got.lock().unwrap().len();
    let accepted = all.accepted.clone();
    let missing = || {
        let got = got.lock().unwrap();
        accepted.iter().filter(|id| !got.contains_key(*id)).count()
    };
    let what = lazy(|| format!("every accepted event at the receiver; {} missing", missing()));
    wait_until(what, Duration::from_secs(40), async || missing() == 0).await;
    let status = daemon.terminate().await;
    assert!(status.success(), "the graceful stop exited {status}");
    eprintln!("webhook: the receiver got {} events", count());
    let seen = got.lock().unwrap().clone();
    // The receiver was down at every kill: nothing was delivered before the
    // last start, so nothing can arrive twice.
    Tally::new(&all.accepted, &all.unanswered, &seen).assert_complete("webhook receiver down at kill -9", 0);
    let dead = crate::harness::read_ndjson(&dir.path().join("dead.ndjson"));
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}
