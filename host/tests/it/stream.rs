//! `GET /v1/stream`: subscribers get exactly the events their glob selects,
//! as NDJSON or SSE; a subscriber that stops reading is cut off while
//! routing goes on at full speed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixtures;
use crate::harness::TestDaemon;
use crate::metrics::{sample, scrape};

/// A live subscription read frame by frame.
pub struct Sub {
    body: Incoming,
    buf: Vec<u8>,
}

impl Sub {
    pub async fn open(addr: SocketAddr, path: &str, accept: Option<&str>) -> Sub {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get(path).header("host", addr.to_string());
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "subscribing to {path}");
        Sub {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next chunk of text up to `sep` (exclusive), or `None` at the end.
    async fn until(&mut self, sep: &[u8]) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(sep.len()).position(|w| w == sep) {
                let rest = self.buf.split_off(i + sep.len());
                let mut item = std::mem::replace(&mut self.buf, rest);
                item.truncate(i);
                return Some(String::from_utf8(item).unwrap());
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("the stream went quiet");
            match frame {
                Some(f) => {
                    if let Ok(data) = f.unwrap().into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                None => return None,
            }
        }
    }

    /// The next NDJSON document (heartbeat lines skipped).
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let line = self.until(b"\n").await?;
            if !line.trim().is_empty() {
                return Some(serde_json::from_str(&line).unwrap());
            }
        }
    }

    /// The next SSE message: (event type, id, data).
    pub async fn next_sse(&mut self) -> Option<(Option<String>, Option<String>, Value)> {
        loop {
            let block = self.until(b"\n\n").await?;
            let (mut kind, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            if let Some(data) = data {
                return Some((kind, id, data));
            }
        }
    }
}

/// Names of the events up to (not including) the one named `last`.
async fn names_until(sub: &mut Sub, last: &str) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        let e = sub.next().await.expect("the stream ended early");
        let name = e["name"].as_str().unwrap().to_string();
        if name == last {
            return names;
        }
        names.push(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_exactly_the_events_their_glob_selects() {
    let toml = r#"
[[route]]
name = "two"
match = { name = "a.Two" }
handlers = ["emit"]
"#;
    // One worker: events are published in the order they are handled, so
    // once a subscriber sees the last event it has seen all before it.
    let mut d =
        TestDaemon::start_with(toml, &[("emit", fixtures::emitter("b.Emitted"))], "workers = 1").await;
    let mut a = Sub::open(d.addr, "/v1/stream?name=a.*", None).await;
    let mut b = Sub::open(d.addr, "/v1/stream?name=b.%2A", Some("application/x-ndjson")).await;
    let mut all = Sub::open(d.addr, "/v1/stream", Some("text/event-stream")).await;
    let r = d.get("/v1/stats").await;
    assert_eq!(r.body["stream"]["subscribers"], 3);

    let sent = ["a.One", "b.One", "a.Two", "c.One", "b.Two", "a.Last", "b.Last"];
    let batch: Vec<Value> = sent
        .iter()
        .map(|n| json!({"name": n, "data": {"n": n}}))
        .collect();
    let r = d.post_json("/v1/events?wait=true", &Value::Array(batch)).await;
    assert_eq!(r.status, 200);
    let emitted_id = r.body["events"][2]["emitted"][0].as_str().unwrap().to_string();

    assert_eq!(names_until(&mut a, "a.Last").await, ["a.One", "a.Two"]);
    assert_eq!(
        names_until(&mut b, "b.Last").await,
        ["b.One", "b.Emitted", "b.Two"],
        "emitted events are streamed too, right after their cause"
    );
    let mut everything = Vec::new();
    loop {
        let (kind, id, e) = all.next_sse().await.unwrap();
        assert_eq!(kind, None, "events are default SSE messages");
        assert_eq!(id.as_deref(), e["id"].as_str(), "the SSE id is the event id");
        let name = e["name"].as_str().unwrap().to_string();
        if name == "b.Emitted" {
            assert_eq!(e["id"], emitted_id.as_str());
            assert_eq!(e["source"], "plugin:emit");
        }
        everything.push(name);
        if everything.last().unwrap() == "b.Last" {
            break;
        }
    }
    assert_eq!(
        everything,
        [
            "a.One",
            "b.One",
            "a.Two",
            "b.Emitted",
            "c.One",
            "b.Two",
            "a.Last",
            "b.Last"
        ],
        "unmatched events (c.One) are streamed as well"
    );
    let first = serde_json::to_value(&everything).unwrap();
    assert_eq!(first.as_array().unwrap().len(), 8);

    // A bad glob is refused up front.
    let r = d.get("/v1/stream?name=a.%5B").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"],
        "name: invalid glob \"a.[\": unclosed character class; missing ']'"
    );

    // Shutdown ends every stream with a final line.
    d.shutdown().await;
    let end = a.next().await.unwrap();
    assert_eq!(end["reason"], "shutdown");
    assert_eq!(end["error"], "the daemon is shutting down");
    assert!(a.next().await.is_none());
    let (kind, _, end) = all.next_sse().await.unwrap();
    assert_eq!(
        (kind.as_deref(), end["reason"].as_str()),
        (Some("error"), Some("shutdown"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_off_while_routing_goes_on() {
    let toml = r#"
[stream]
buffer = 256
cutoff_grace = "2m"

[[route]]
name = "all"
match = { name = "s.*" }
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;
    let mut d = TestDaemon::start(toml, &[]).await;
    // A listener with a tiny receive window that reads the headers, then
    // nothing more.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    let mut stuck = socket.connect(d.addr).await.unwrap();
    stuck
        .write_all(format!("GET /v1/stream HTTP/1.1\r\nhost: {}\r\n\r\n", d.addr).as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stuck.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A listener that keeps reading everything, with the same buffer.
    let mut reader = Sub::open(d.addr, "/v1/stream?name=s.*", None).await;
    let reading = tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            // Raw lines: parsing 12 MB of JSON would make this reader slow.
            let line = reader
                .until(b"\n")
                .await
                .expect("the reading subscriber is never cut off");
            assert!(!line.starts_with("{\"error\""), "{line}");
            if line.contains("\"name\":\"s.Marker\"") {
                return n;
            }
            n += usize::from(!line.is_empty());
        }
    });

    // About 12 MB of events: far more than socket buffers and the
    // subscriber's buffer of 256 hold; in batches smaller than that buffer,
    // so a subscriber that reads keeps up.
    let pad = "x".repeat(1500);
    let (batches, per_batch) = (160, 50);
    let started = Instant::now();
    for b in 0..batches {
        let batch: Vec<Value> = (0..per_batch)
            .map(|i| json!({"name": "s.Flood", "data": {"b": b, "i": i, "pad": pad}}))
            .collect();
        let r = d.post_json("/v1/events?wait=true", &Value::Array(batch)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let took = started.elapsed();
    let total = batches * per_batch;
    assert_eq!(d.lines("out.ndjson").len(), total, "every event was routed");
    assert!(took < Duration::from_secs(60), "routing was held up: {took:?}");

    let (m, _) = scrape(&d).await;
    assert_eq!(sample(&m, "switchyard_stream_cutoffs_total", &[]), 1.0);
    let sent = sample(&m, "switchyard_stream_events_sent_total", &[]);
    assert!(
        sent < 2.0 * total as f64,
        "the stuck subscriber got only part: {sent}"
    );

    // The subscriber that reads got everything, and goes on.
    d.post_json("/v1/events?wait=true", &json!({"name": "s.Marker"}))
        .await;
    assert_eq!(reading.await.unwrap(), total);

    // Reading again: what was buffered, then the final line, then the end
    // of the chunked body.
    let mut rest = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while !rest.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), stuck.read(&mut chunk))
            .await
            .expect("the stream must end after the cut-off")
            .unwrap();
        assert!(n > 0, "closed before the final line");
        rest.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&rest);
    let got = text.matches("\"name\":\"s.Flood\"").count();
    assert!(
        got > 0 && got < total,
        "{got} of {total} events before the cut-off"
    );
    let final_line = text.lines().rfind(|l| l.starts_with('{')).unwrap();
    let end: Value = serde_json::from_str(final_line).unwrap();
    assert_eq!(end["reason"], "cut_off");
    assert_eq!(
        end["error"],
        "cut off: this subscriber fell 256 events behind; events routed since were not sent; reconnect to resume"
    );
    d.shutdown().await;
}
