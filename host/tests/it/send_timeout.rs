//! `[server] send_timeout` over real TCP: a client that pipelines requests
//! and never reads the answers loses its connection, and its
//! `max_connections` slot, once a write has been pending that long.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::fixtures;
use crate::harness::{lazy, wait_until, TestDaemon};
use crate::metrics::{sample, scrape};
use crate::stream::Sub;

/// One POST on a fresh connection, read to its end: the status line.
async fn raw_post(addr: std::net::SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = b"POST /v1/events HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
        content-type: application/json\r\ncontent-length: 16\r\n\r\n{\"name\":\"ok.Go\"}";
    let _ = s.write_all(req).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_after_send_timeout_and_frees_its_slot() {
    let toml = "[[route]]\nname = \"all\"\nhandlers = [\"log\"]\n";
    let server =
        "send_timeout = \"1s\"\nmax_connections = 1\nheader_timeout = \"60s\"\nbody_timeout = \"60s\"";
    let mut d = TestDaemon::start_with(toml, &[("log", fixtures::logger())], server).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stuck = socket.connect(d.addr).await.unwrap();
    let (_rd, mut wr) = stuck.into_split();
    let started = Instant::now();
    // Pipelines requests and never reads: the answers fill its window, the
    // server's writes stay pending, and then its reads stop too.
    let writer = tokio::spawn(async move {
        let req = b"GET /v1/stats HTTP/1.1\r\nhost: x\r\n\r\n";
        loop {
            if let Err(e) = wr.write_all(req).await {
                return e;
            }
        }
    });
    // While it holds the only slot, another client is refused.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(raw_post(d.addr).await, "HTTP/1.1 503 Service Unavailable");
    // Within the bound the server closes it: its writes then fail (reset or broken pipe).
    let err = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the connection of a client that never reads is closed")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(30),
        "{took:?}: {err}"
    );
    // Its slot is free again: an ordinary producer is served.
    let status = std::cell::RefCell::new(String::new());
    let what = lazy(|| format!("the slot to serve a producer again: {}", status.borrow()));
    wait_until(what, Duration::from_secs(10), async || {
        let now = raw_post(d.addr).await;
        let ok = now.starts_with("HTTP/1.1 202");
        *status.borrow_mut() = now;
        ok
    })
    .await;
    let served = status.into_inner();
    assert_eq!(served, "HTTP/1.1 202 Accepted");
    let (s, _) = scrape(&d).await;
    assert_eq!(sample(&s, "switchyard_http_send_timeouts_total", &[]), 1.0);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_subscriber_that_reads_outlives_send_timeout() {
    let toml = "[[route]]\nname = \"all\"\nhandlers = [\"log\"]\n";
    let mut d = TestDaemon::start_with(toml, &[("log", fixtures::logger())], "send_timeout = \"1s\"").await;
    let mut sub = Sub::open(d.addr, "/v1/stream?name=s.*", None).await;
    // Busy, then idle for twice the bound, then busy again: a subscriber
    // that reads is never cut, however long it stays.
    for round in 0..3 {
        for i in 0..50 {
            let r = d
                .post_json(
                    "/v1/events",
                    &json!({"name": format!("s.R{round}"), "data": {"i": i}}),
                )
                .await;
            assert_eq!(r.status, 202);
        }
        for _ in 0..50 {
            let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("the subscriber keeps getting events")
                .expect("the stream stays open");
            assert_eq!(e["name"], format!("s.R{round}"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (s, _) = scrape(&d).await;
    assert_eq!(sample(&s, "switchyard_http_send_timeouts_total", &[]), 0.0);
    d.shutdown().await;
}
