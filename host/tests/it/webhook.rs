//! The `http` (webhook) sink against a receiver on 127.0.0.1: retried with
//! backoff until delivered, in order; dead-lettered when it never works.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{lazy, wait_until, TestDaemon, PATIENCE};
use crate::metrics::{sample, scrape};

#[derive(Default)]
struct Seen {
    requests: usize,
    /// Bodies of the requests answered 2xx, in arrival order.
    delivered: Vec<Vec<Value>>,
    headers: Vec<hyper::HeaderMap>,
    /// When each request arrived.
    times: Vec<Instant>,
}

/// A webhook receiver: answers `fail` for the first `fail_first` requests
/// (all of them if `None`), then 200.
async fn receiver(fail: StatusCode, fail_first: Option<usize>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    receiver_asking(fail, fail_first, None).await
}

/// Makes the value of a `Retry-After` header, when it is asked for.
type RetryAfter = Arc<dyn Fn() -> String + Send + Sync>;

/// Like [`receiver`], with `Retry-After: <retry_after()>` on failures.
async fn receiver_asking(
    fail: StatusCode,
    fail_first: Option<usize>,
    retry_after: Option<RetryAfter>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = state.clone();
            let retry_after = retry_after.clone();
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                let retry_after = retry_after.clone();
                async move {
                    let headers = req.headers().clone();
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let mut s = state.lock().unwrap();
                    s.requests += 1;
                    s.times.push(Instant::now());
                    s.headers.push(headers);
                    let failing = fail_first.is_none_or(|n| s.requests <= n);
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"")));
                    if failing {
                        *resp.status_mut() = fail;
                        *resp.body_mut() = Full::new(Bytes::from_static(b"db down"));
                        if let Some(after) = &retry_after {
                            resp.headers_mut().insert("retry-after", after().parse().unwrap());
                        }
                    } else {
                        s.delivered.push(serde_json::from_slice(&body).unwrap());
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, seen)
}

fn config(addr: SocketAddr, retries: u32) -> String {
    format!(
        r#"
[[route]]
name = "out"
match = {{ name = "w.*" }}
handlers = ["log"]
sinks = ["hook"]

[sink.hook]
type = "http"
url = "http://{addr}/ingest"
batch = 4
timeout = "2s"
retries = {retries}
backoff = "10ms"
max_backoff = "40ms"
headers = {{ "X-Test" = "yes" }}
"#
    )
}

async fn post_events(d: &TestDaemon, n: usize) -> Vec<String> {
    let batch: Vec<Value> = (0..n)
        .map(|i| json!({"name": "w.Event", "data": {"i": i}}))
        .collect();
    let r = d.post_json("/v1/events?wait=true", &Value::Array(batch)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_at_first_gets_everything_in_order() {
    let (addr, seen) = receiver(StatusCode::SERVICE_UNAVAILABLE, Some(3)).await;
    let mut d = TestDaemon::start_with(&config(addr, 5), &[("log", fixtures::logger())], "workers = 1").await;
    let ids = post_events(&d, 10).await;
    wait_until("delivery", PATIENCE, async || {
        seen.lock().unwrap().delivered.iter().map(Vec::len).sum::<usize>() >= ids.len()
    })
    .await;
    {
        let s = seen.lock().unwrap();
        let delivered: Vec<&str> = s
            .delivered
            .iter()
            .flatten()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(delivered, ids, "every event once, in the order written");
        assert!(
            s.delivered.iter().all(|b| !b.is_empty() && b.len() <= 4),
            "batches of at most 4"
        );
        assert_eq!(
            s.requests,
            s.delivered.len() + 3,
            "the three failures were retried"
        );
        let h = &s.headers[0];
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-test"], "yes");
        assert!(h["user-agent"].to_str().unwrap().starts_with("switchyard/"));
        assert_eq!(s.delivered[0][0]["data"]["i"], 0);
    }
    // The delivery task counts a batch done just after the receiver answers.
    wait_until("no webhook batch pending", Duration::from_secs(20), async || {
        d.get("/v1/stats").await.body["sinks"]["hook"]["pending"] == 0
    })
    .await;
    let (m, _) = scrape(&d).await;
    assert_eq!(
        sample(&m, "switchyard_sink_writes_total", &[("sink", "hook")]),
        10.0
    );
    assert_eq!(
        sample(&m, "switchyard_sink_retries_total", &[("sink", "hook")]),
        3.0
    );
    assert_eq!(
        sample(&m, "switchyard_sink_errors_total", &[("sink", "hook")]),
        0.0
    );
    assert_eq!(sample(&m, "switchyard_sink_pending", &[("sink", "hook")]), 0.0);
    d.shutdown().await;
    assert!(d.dead_letters().is_empty(), "{:?}", d.dead_letters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_recovers_ends_in_dead_letters() {
    let (addr, seen) = receiver(StatusCode::INTERNAL_SERVER_ERROR, None).await;
    let mut d = TestDaemon::start_with(&config(addr, 2), &[("log", fixtures::logger())], "workers = 1").await;
    let ids = post_events(&d, 7).await;
    let stats = std::cell::RefCell::new(Value::Null);
    let what = lazy(|| format!("no batch pending and 7 dead letters: {}", stats.borrow()));
    wait_until(what, Duration::from_secs(20), async || {
        let now = d.get("/v1/stats").await.body;
        let done = now["sinks"]["hook"]["pending"] == 0 && now["dead_letters"] == 7;
        *stats.borrow_mut() = now;
        done
    })
    .await;
    let requests = seen.lock().unwrap().requests;
    assert_eq!(requests % 3, 0, "each batch was tried 3 times: {requests}");
    let batches = requests / 3;
    assert!(
        (2..=7).contains(&batches),
        "7 events in batches of at most 4: {batches}"
    );
    assert!(seen.lock().unwrap().delivered.is_empty());
    let (m, _) = scrape(&d).await;
    assert_eq!(
        sample(&m, "switchyard_sink_errors_total", &[("sink", "hook")]),
        7.0
    );
    assert_eq!(
        sample(&m, "switchyard_sink_retries_total", &[("sink", "hook")]),
        (batches * 2) as f64
    );
    assert_eq!(
        sample(&m, "switchyard_dead_letters_total", &[("kind", "sink_error")]),
        7.0
    );
    d.shutdown().await;
    let letters = d.dead_letters();
    let mut dead: Vec<&str> = letters
        .iter()
        .map(|l| l["event"]["id"].as_str().unwrap())
        .collect();
    dead.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(dead, want, "every event is in the dead-letter log");
    for l in &letters {
        assert_eq!(l["kind"], "sink_error");
        assert_eq!(l["sink"], "hook");
        assert_eq!(l["route"], Value::Null);
        assert_eq!(
            l["message"],
            format!("webhook http://{addr}/ingest: HTTP 500 Internal Server Error: db down after 3 attempts")
        );
        assert_eq!(l["event"]["name"], "w.Event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_receiver_is_not_retried() {
    let (addr, seen) = receiver(StatusCode::BAD_REQUEST, None).await;
    let mut d = TestDaemon::start_with(&config(addr, 5), &[("log", fixtures::logger())], "workers = 1").await;
    post_events(&d, 3).await;
    d.shutdown().await;
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 3);
    assert!(letters[0]["message"]
        .as_str()
        .unwrap()
        .ends_with("HTTP 400 Bad Request: db down (not retried: the receiver refused the batch)"));
    let requests = seen.lock().unwrap().requests;
    assert!(
        (1..=3).contains(&requests),
        "one request per batch, none retried: {requests}"
    );
}

/// The gap between a failed request and its retry, with the receiver asking
/// for `Retry-After` and the sink's `max_backoff` at 40 ms.
async fn retry_gap(fail: StatusCode, retry_after: RetryAfter, max_retry_after: &str) -> Duration {
    let (addr, seen) = receiver_asking(fail, Some(1), Some(retry_after)).await;
    let toml = format!("{}max_retry_after = \"{max_retry_after}\"\n", config(addr, 3));
    let mut d = TestDaemon::start_with(&toml, &[("log", fixtures::logger())], "workers = 1").await;
    post_events(&d, 1).await;
    wait_until("the retry", PATIENCE, async || {
        seen.lock().unwrap().delivered.len() == 1
    })
    .await;
    d.shutdown().await;
    let s = seen.lock().unwrap();
    assert_eq!(s.requests, 2, "one failure, one retry");
    s.times[1] - s.times[0]
}

/// Issue 17: `Retry-After` is honoured beyond `max_backoff`, in both its
/// forms, up to `max_retry_after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_beyond_max_backoff_up_to_max_retry_after() {
    let gap = retry_gap(StatusCode::TOO_MANY_REQUESTS, Arc::new(|| "2".into()), "1m").await;
    assert!(
        gap >= Duration::from_secs(2),
        "429, Retry-After: 2, max_backoff 40ms: {gap:?}"
    );
    assert!(gap < Duration::from_secs(10), "{gap:?}");
    // An HTTP-date 3 s ahead (whole seconds: at least 2 s away once sent).
    let date = Arc::new(|| httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3)));
    let gap = retry_gap(StatusCode::SERVICE_UNAVAILABLE, date, "1m").await;
    assert!(
        gap >= Duration::from_millis(1_900),
        "503, Retry-After: <date 3 s ahead>: {gap:?}"
    );
    assert!(gap < Duration::from_secs(10), "{gap:?}");
    // Asking for an hour: waits max_retry_after.
    let gap = retry_gap(StatusCode::TOO_MANY_REQUESTS, Arc::new(|| "3600".into()), "1s").await;
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(5),
        "Retry-After: 3600 with max_retry_after 1s: {gap:?}"
    );
}

/// Issue 18, item 2: a receiver asking to wait `u64::MAX` seconds, with
/// `max_retry_after` at its largest accepted value: the delivery task does
/// not panic (it used to, on `Instant + Duration`), the wait is capped, and
/// shutdown's deadline ends it with the event in dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_is_capped_and_the_event_dead_lettered_at_shutdown() {
    let huge: RetryAfter = Arc::new(|| u64::MAX.to_string());
    let (addr, seen) = receiver_asking(StatusCode::SERVICE_UNAVAILABLE, None, Some(huge)).await;
    let toml = format!("{}max_retry_after = \"7days\"\n", config(addr, 3));
    let mut d = TestDaemon::start_with(&toml, &[("log", fixtures::logger())], "workers = 1").await;
    let ids = post_events(&d, 1).await;
    wait_until("the first attempt", PATIENCE, async || {
        seen.lock().unwrap().requests == 1
    })
    .await;
    // Waiting for the retry, which is days away, while still serving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = d.get("/v1/stats").await.body;
    assert_eq!(stats["sinks"]["hook"]["pending"], 1, "{stats}");
    let t = Instant::now();
    d.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert_eq!(seen.lock().unwrap().requests, 1, "no retry before the deadline");
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event"]["id"], ids[0]);
    assert_eq!(letters[0]["kind"], "sink_error");
    let message = letters[0]["message"].as_str().unwrap();
    assert!(message.contains("the daemon is shutting down"), "{message}");
}

/// Issue 18, item 3: exit status 3 means something accepted is not where it
/// belonged when the daemon stopped, whichever sink dead-lettered it: a
/// webhook whose receiver always fails (retries exhausted), and one whose
/// retry is cut short by the shutdown deadline, both end `run` with 3; a
/// receiver that takes everything ends it with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_webhook_event_makes_the_exit_status_3() {
    async fn run_once(
        receiver: (SocketAddr, Arc<Mutex<Seen>>),
        toml_extra: &str,
        wait_dead: bool,
    ) -> (i32, Vec<Value>) {
        let (addr, seen) = receiver;
        let toml = format!("{}{toml_extra}", config(addr, 1));
        let dir = crate::harness::write_setup("", &toml, &[("log", fixtures::logger())]);
        let mut bin = crate::harness::Binary::start(&dir.path().join("router.toml"));
        let event = json!({"name": "w.Event", "data": {"i": 1}});
        let r = crate::harness::request(
            bin.addr,
            "POST",
            "/v1/events?wait=true",
            &[("content-type", "application/json")],
            event.to_string().into_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let dead = dir.path().join("dead.ndjson");
        if wait_dead {
            wait_until("the dead letter", PATIENCE, async || {
                !crate::harness::read_ndjson(&dead).is_empty()
            })
            .await;
        } else {
            wait_until("the first attempt", PATIENCE, async || {
                seen.lock().unwrap().requests >= 1
            })
            .await;
        }
        let status = bin.terminate().await;
        (
            status.code().expect("exited, not killed"),
            crate::harness::read_ndjson(&dead),
        )
    }
    // Always 500, retries = 1: dead-lettered while running.
    let (code, dead) = run_once(receiver(StatusCode::INTERNAL_SERVER_ERROR, None).await, "", true).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["kind"], "sink_error");
    assert_eq!(code, 3, "{dead:?}");
    // The retry is a minute away: dead-lettered at the shutdown deadline.
    let slow: RetryAfter = Arc::new(|| "60".into());
    let asking = receiver_asking(StatusCode::SERVICE_UNAVAILABLE, None, Some(slow)).await;
    let (code, dead) = run_once(asking, "max_retry_after = \"2m\"\n", false).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(code, 3, "{dead:?}");
    // Delivered: nothing missing, exit 0.
    let (code, dead) = run_once(receiver(StatusCode::OK, Some(0)).await, "", false).await;
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(code, 0);
}

/// Issue 12, end-to-end acknowledgement: with the disk queue an event
/// leaves the queue only once its webhook had a 2xx for it. Events handled
/// while the receiver is down wait in the sink (retrying); `kill -9` then
/// loses nothing: the restarted daemon handles them again and a receiver
/// that is up gets every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_events_survive_kill_9_while_the_receiver_is_down() {
    let (down, refused) = receiver(StatusCode::SERVICE_UNAVAILABLE, None).await;
    let queue = "[queue]\ntype = \"disk\"\n";
    // Retried for a minute or more: never dead-lettered during the test.
    let setup = |addr: SocketAddr| {
        let hook = config(addr, 100).replace("max_backoff = \"40ms\"", "max_backoff = \"1s\"");
        format!("{hook}\n{queue}")
    };
    let dir = crate::harness::write_setup("", &setup(down), &[("log", fixtures::logger())]);
    let cfg = dir.path().join("router.toml");
    let mut first = crate::harness::Binary::start(&cfg);
    let batch: Vec<Value> = (0..10)
        .map(|i| json!({"name": "w.Event", "data": {"i": i}}))
        .collect();
    let r = crate::harness::request(
        first.addr,
        "POST",
        "/v1/events",
        &[("content-type", "application/json")],
        Value::Array(batch).to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let ids: Vec<String> = r.body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // Every event handled and waiting in the webhook sink, which retries.
    let addr = first.addr;
    wait_until("all ten pending in the webhook", PATIENCE, async || {
        let stats = crate::harness::request(addr, "GET", "/v1/stats", &[], Vec::new())
            .await
            .body;
        stats["sinks"]["hook"]["pending"] == 10 && refused.lock().unwrap().requests >= 3
    })
    .await;
    first.kill();
    assert!(refused.lock().unwrap().delivered.is_empty());

    let (up, seen) = receiver(StatusCode::OK, Some(0)).await;
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(&down.to_string(), &up.to_string()),
    )
    .unwrap();
    let mut second = crate::harness::Binary::start(&cfg);
    let got = || -> Vec<String> {
        let s = seen.lock().unwrap();
        s.delivered
            .iter()
            .flatten()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    wait_until(
        lazy(|| format!("every event delivered after the restart: {:?}", got())),
        PATIENCE,
        async || ids.iter().all(|id| got().contains(id)),
    )
    .await;
    let status = second.terminate().await;
    assert!(status.success(), "exit status {status}");
    assert!(crate::harness::read_ndjson(&dir.path().join("dead.ndjson")).is_empty());
}
