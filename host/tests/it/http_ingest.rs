//! Every ingest path and every refusal, over real HTTP.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixtures;
use crate::harness::TestDaemon;

const ARCHIVE: &str = r#"
[[route]]
name = "all"
handlers = ["log"]
sinks = ["archive"]

[sink.archive]
type = "file"
path = "archive.ndjson"
"#;

/// A daemon whose one route logs every event and archives it to
/// `archive.ndjson`; `server` adds keys to `[server]`.
pub async fn archive_daemon(server: &str) -> TestDaemon {
    TestDaemon::start_with(ARCHIVE, &[("log", fixtures::logger())], server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_array_ndjson_and_ids() {
    let mut d = archive_daemon("").await;
    let r = d.post_json("/v1/events", &json!({"id": "mine", "name": "a.One", "version": "1.0", "meta": {"host": "web-3"}, "data": {"k": 1}})).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body, json!({"ids": ["mine"]}));
    let r = d
        .post_json("/v1/events", &json!([{"name": "a.Two"}, {"name": "a.Three"}]))
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["ids"].as_array().unwrap().len(), 2);
    let r = d
        .post(
            "/v1/events",
            Some("application/x-ndjson"),
            "{\"name\":\"a.Four\"}\n{\"name\":\"a.Five\"}\n",
        )
        .await;
    assert_eq!(r.status, 202);
    d.shutdown().await;
    let names: Vec<String> = d
        .lines("archive.ndjson")
        .iter()
        .map(|e| e["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(names.len(), 5);
    for n in ["a.One", "a.Two", "a.Three", "a.Four", "a.Five"] {
        assert!(names.contains(&n.to_string()), "{n}");
    }
    let one = d
        .lines("archive.ndjson")
        .into_iter()
        .find(|e| e["name"] == "a.One")
        .unwrap();
    assert_eq!(one["id"], "mine");
    assert_eq!(one["source"], "http");
    assert_eq!(one["version"], "1.0");
    assert_eq!(one["meta"], json!({"host": "web-3"}));
    assert_eq!(one["data"], json!({"k": 1}));
    assert!(one["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_entry_refuses_the_whole_batch() {
    let mut d = archive_daemon("").await;
    let r = d
        .post_json(
            "/v1/events",
            &json!([{"name": "a.Ok"}, {"name": "a.Ok2"}, {"data": {}}]),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"],
        "event [2]: missing \"name\"; the batch was refused"
    );
    let r = d
        .post(
            "/v1/events",
            Some("application/x-ndjson"),
            "{\"name\":\"a.Ok\"}\n{\"name\": \"a b\"}\n",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]
        .as_str()
        .unwrap()
        .starts_with("line 2: \"name\" must not contain"));
    d.shutdown().await;
    assert!(
        d.lines("archive.ndjson").is_empty(),
        "nothing of a refused batch is handled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_errors_with_the_right_status() {
    let mut d = archive_daemon("max_body = \"1KiB\"").await;
    let cases = [
        (
            Some("application/json"),
            "{not json".to_string(),
            400,
            "body: invalid JSON",
        ),
        (
            Some("application/json"),
            r#"{"data": {}}"#.to_string(),
            400,
            "missing \"name\"",
        ),
        (
            Some("application/json"),
            r#"{"name": ""}"#.to_string(),
            400,
            "\"name\" must not be empty",
        ),
        (
            Some("text/csv"),
            "a,b".to_string(),
            415,
            "unsupported media type \"text/csv\"",
        ),
        (
            Some("application/json"),
            format!(r#"{{"name":"a","data":"{}"}}"#, "x".repeat(2000)),
            413,
            "body is larger than max_body (1024 bytes)",
        ),
    ];
    for (ct, body, status, msg) in cases {
        let r = d.post("/v1/events", ct, &body).await;
        assert_eq!(r.status, status, "{body:.40}: {}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains(msg), "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let r = d.get("/v1/events").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "POST");
    let r = d.get("/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"], "no such endpoint: GET /nope");
    d.shutdown().await;
    assert!(d.lines("archive.ndjson").is_empty());
}

/// A chunked body has no Content-Length: the limit is enforced while reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_max_body_is_413() {
    let mut d = archive_daemon("max_body = \"1KiB\"").await;
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let mut req = String::from("POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n");
    for _ in 0..4 {
        req.push_str(&format!("200\r\n{}\r\n", " ".repeat(0x200)));
    }
    req.push_str("0\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("body is larger than max_body (1024 bytes)"),
        "{text}"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_that_send_no_headers_are_closed() {
    let mut d = archive_daemon("header_timeout = \"200ms\"").await;
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"POST /v1/events HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    let n = read
        .expect("the server must close the connection, not wait forever")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_structured_batch_and_binary() {
    let mut d = archive_daemon("").await;
    let r = d
        .post(
            "/v1/events",
            Some("application/cloudevents+json"),
            r#"{"specversion":"1.0","type":"shop.Ordered","source":"/shop","id":"s1","data":{"n":1}}"#,
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (202, json!({"ids": ["s1"]})));
    let r = d
        .post(
            "/v1/events",
            Some("application/cloudevents-batch+json"),
            r#"[{"specversion":"1.0","type":"shop.A","source":"/s","id":"b1"},{"specversion":"1.0","type":"shop.B","source":"/s","id":"b2"}]"#,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (202, json!({"ids": ["b1", "b2"]}))
    );
    let r = d
        .request(
            "POST",
            "/v1/events",
            &[
                ("ce-specversion", "1.0"),
                ("ce-type", "shop.Paid"),
                ("ce-id", "p1"),
                ("ce-source", "/pay"),
                ("content-type", "application/json"),
            ],
            br#"{"amount":5}"#.to_vec(),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (202, json!({"ids": ["p1"]})));
    let r = d
        .post(
            "/v1/events",
            Some("application/cloudevents+json"),
            r#"{"specversion":"1.0","id":"x"}"#,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"].clone()),
        (400, json!("missing \"type\""))
    );
    d.shutdown().await;
    let got = d.lines("archive.ndjson");
    let paid = got.iter().find(|e| e["id"] == "p1").unwrap();
    assert_eq!(paid["name"], "shop.Paid");
    assert_eq!(paid["data"], json!({"amount": 5}));
    assert_eq!(paid["meta"]["ce_source"], "/pay");
    let s1 = got.iter().find(|e| e["id"] == "s1").unwrap();
    assert_eq!(
        (s1["name"].as_str(), s1["source"].as_str()),
        (Some("shop.Ordered"), Some("http"))
    );
    assert_eq!(got.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventlib_form_by_query_and_by_body() {
    let mut d = archive_daemon("").await;
    let r = d
        .post(
            "/event/log?__event__=deals.DealClick&deal_id=7&user_id=42",
            None,
            "",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let r = d
        .post(
            "/event/log",
            Some("application/x-www-form-urlencoded"),
            "__event__=deals.DealView&deal_id=8",
        )
        .await;
    assert_eq!(r.status, 202);
    let r = d.post("/event/log?deal_id=7", None, "").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().starts_with("missing __event__"));
    d.shutdown().await;
    let got = d.lines("archive.ndjson");
    assert_eq!(got.len(), 2);
    let click = got.iter().find(|e| e["name"] == "deals.DealClick").unwrap();
    assert_eq!(click["data"], json!({"deal_id": "7", "user_id": "42"}));
}

/// A tiny queue and a slow handler: some requests get 503 with Retry-After,
/// and every event that got 202 is handled. The memory queue's bound,
/// `[server] queue` (the disk queue's is `max_bytes`, below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_503_and_no_accepted_event_lost() {
    let toml = r#"
[queue]
type = "memory"

[plugin.slow]
fuel = 1_000_000_000_000
timeout = "20ms"

[[route]]
name = "slow"
handlers = ["slow"]
sinks = ["archive"]

[sink.archive]
type = "file"
path = "archive.ndjson"
"#;
    let mut d = TestDaemon::start_with(
        toml,
        &[("slow", fixtures::endless_loop())],
        "queue = 2\nworkers = 1",
    )
    .await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..20 {
        let r = d
            .post_json("/v1/events", &json!({"name": "a.Slow", "data": {"i": i}}))
            .await;
        match r.status.as_u16() {
            202 => accepted.push(r.body["ids"][0].as_str().unwrap().to_string()),
            503 => {
                refused += 1;
                assert_eq!(r.headers["retry-after"], "1");
                assert!(r.body["error"].as_str().unwrap().contains("queue is full"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        refused > 0,
        "a queue of 2 with a 20 ms handler must refuse some of 20 quick posts"
    );
    assert!(accepted.len() >= 2);
    let r = d
        .post_json(
            "/v1/events",
            &json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        )
        .await;
    assert_eq!(r.status, 413, "a batch larger than the whole queue can never fit");
    d.shutdown().await;
    let mut handled: Vec<String> = d
        .lines("archive.ndjson")
        .iter()
        .map(|e| e["id"].as_str().unwrap().into())
        .collect();
    handled.sort();
    accepted.sort();
    assert_eq!(handled, accepted, "exactly the accepted events were handled");
    assert_eq!(d.dead_letters().len(), accepted.len(), "each timed out once");
}

/// The disk queue's bound (issue 12): past `[queue] max_bytes` of backlog
/// on disk, 503 with `Retry-After: 1`, counted; every event that got 202
/// is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_backlog_at_max_bytes_answers_503_and_loses_nothing() {
    let toml = r#"
[queue]
type = "disk"
max_bytes = "64KiB"

[plugin.slow]
fuel = 1_000_000_000_000
timeout = "20ms"

[[route]]
name = "slow"
handlers = ["slow"]
sinks = ["archive"]

[sink.archive]
type = "file"
path = "archive.ndjson"
"#;
    let mut d = TestDaemon::start_with(toml, &[("slow", fixtures::endless_loop())], "workers = 1").await;
    let pad = "x".repeat(4000);
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in 0..60 {
        let r = d
            .post_json(
                "/v1/events",
                &json!({"name": "a.Slow", "data": {"i": i, "pad": pad}}),
            )
            .await;
        match r.status.as_u16() {
            202 => accepted.push(r.body["ids"][0].as_str().unwrap().to_string()),
            503 => {
                refused += 1;
                assert_eq!(r.headers["retry-after"], "1");
                assert!(
                    r.body["error"].as_str().unwrap().contains("disk queue is full"),
                    "{}",
                    r.body
                );
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(
        refused > 0,
        "240 KB of events posted faster than a 20 ms handler drains them into 64 KiB"
    );
    let stats = d.get("/v1/stats").await.body;
    assert_eq!(stats["refused_queue_backlog"], refused, "{stats}");
    d.shutdown().await;
    let mut handled: Vec<String> = d
        .lines("archive.ndjson")
        .iter()
        .map(|e| e["id"].as_str().unwrap().into())
        .collect();
    handled.sort();
    accepted.sort();
    assert_eq!(handled, accepted, "exactly the accepted events were handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_unmatched_and_listings() {
    let toml = r#"
[[route]]
name = "deals"
match = { name = "deals.*", version = ">=1.0, <2" }
handlers = ["log"]
"#;
    let mut d = TestDaemon::start(toml, &[("log", fixtures::logger())]).await;
    d.post_json("/v1/events?wait=true", &json!({"name": "users.Login"}))
        .await;
    d.post_json(
        "/v1/events?wait=true",
        &json!({"name": "deals.Click", "version": "1.5"}),
    )
    .await;
    let s = d.get("/v1/stats").await.body;
    assert_eq!(s["ingested"], 2);
    assert_eq!(s["unmatched"], 1);
    assert_eq!(s["invocations_ok"], 1);
    assert_eq!(s["queue"]["capacity"], 10000);
    let p = d.get("/v1/plugins").await.body;
    assert_eq!(p["plugins"][0]["name"], "log");
    assert_eq!(p["plugins"][0]["kind"], "handler");
    assert_eq!(p["plugins"][0]["limits"]["fuel"], 10_000_000);
    let r = d.get("/v1/routes").await.body;
    assert_eq!(r["routes"][0]["match"]["version"], ">=1.0, <2");
    d.shutdown().await;
}
