//! Durable delivery (issue 12) on the real binary: `kill -9` at random
//! points while producers post, tail lines are appended and a webhook
//! receiver is down; a torn and a corrupt segment; a full disk; a poison
//! event. Every event answered 2xx must reach its sink (at least once);
//! duplicates are counted and bounded by what can be in flight.
//!
//! This module holds what the tests share: a seeded random source (the seed
//! is printed; `SWITCHYARD_TEST_SEED` replays one), a producer that posts
//! NDJSON batches of events with ids of its own and remembers which were
//! answered 2xx, and the tally of a sink against them.

mod corruption;
mod crash;
mod full_disk;
mod poison;
mod tail_crash;
mod webhook_crash;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::tail::lines_after_crashes;

/// The `[queue]` section of every config here: these tests are about the
/// disk queue, whichever queue type the rest of the suite runs with.
pub fn disk_queue(max_deliveries: u32) -> String {
    format!("[queue]\ntype = \"disk\"\nmax_deliveries = {max_deliveries}\n")
}

/// A random source for where to kill, seeded from `SWITCHYARD_TEST_SEED`
/// when set (to replay a failure), else at random; the seed is printed.
pub fn rng(test: &str) -> fastrand::Rng {
    let seed = std::env::var("SWITCHYARD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("{test}: seed {seed} (SWITCHYARD_TEST_SEED={seed} replays it)");
    fastrand::Rng::with_seed(seed)
}

/// A POST on a fresh connection that may fail (the daemon killed under
/// it): the status and headers, or what went wrong.
pub async fn try_post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, HeaderMap), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let headers = resp.headers().clone();
    resp.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((status, headers))
}

/// The daemon's `/metrics` exposition.
pub async fn metrics(addr: SocketAddr) -> String {
    let r = crate::harness::request(addr, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    r.body.as_str().expect("metrics are text").to_string()
}

/// The sum of every sample of `metric` (whatever its labels) in an
/// exposition, checked as Prometheus text.
pub fn total(text: &str, metric: &str) -> f64 {
    crate::metrics::parse_metrics(text)
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// NDJSON of one `name` event per id, each with `pad` bytes of payload.
pub fn ndjson(name: &str, ids: &[String], pad: usize) -> Vec<u8> {
    let pad = "x".repeat(pad);
    ids.iter()
        .map(|id| format!("{{\"id\":\"{id}\",\"name\":\"{name}\",\"data\":{{\"pad\":\"{pad}\"}}}}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Posts NDJSON batches of `c.Event`s with ids `<prefix>-<n>` one after
/// the other until told to stop, `limit` batches are answered 2xx, or the
/// daemon stops answering; returns the ids answered 2xx.
pub struct Producer {
    pub prefix: String,
    /// Events per batch.
    pub batch: usize,
    /// Stop after this many accepted batches (a finite backlog per cycle).
    pub limit: usize,
    /// Payload bytes per event.
    pub pad: usize,
}

/// What one producer run ended with.
#[derive(Default)]
pub struct Produced {
    /// Ids in batches answered 2xx.
    pub accepted: Vec<String>,
    /// Ids in batches that got no answer (the daemon was killed): they may
    /// or may not have been accepted.
    pub unanswered: Vec<String>,
    /// Batches answered something else (503 while the queue is full).
    pub refused: usize,
}

impl Producer {
    pub async fn run(self, addr: SocketAddr, stop: Arc<AtomicBool>) -> Produced {
        let mut out = Produced::default();
        let mut n = 0;
        let mut batches = 0;
        while batches < self.limit && !stop.load(Ordering::Relaxed) {
            let ids: Vec<String> = (n..n + self.batch)
                .map(|i| format!("{}-{i}", self.prefix))
                .collect();
            n += self.batch;
            match try_post(
                addr,
                "/v1/events",
                "application/x-ndjson",
                ndjson("c.Event", &ids, self.pad),
            )
            .await
            {
                Ok((status, _)) if status.is_success() => {
                    out.accepted.extend(ids);
                    batches += 1;
                }
                Ok((status, _)) => {
                    assert_eq!(
                        status,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "only a full queue refuses"
                    );
                    out.refused += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => {
                    out.unanswered.extend(ids);
                    break;
                }
            }
        }
        out
    }
}

/// How often each event id is in an NDJSON sink written across crashes,
/// and how many torn lines it has.
pub fn sink_ids(path: &Path) -> (BTreeMap<String, usize>, usize) {
    if !path.exists() {
        return (BTreeMap::new(), 0);
    }
    let (events, torn) = lines_after_crashes(path);
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(e["id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    (counts, torn)
}

/// Accepted events against what reached a sink.
pub struct Tally {
    pub accepted: usize,
    /// Accepted, never reached the sink.
    pub lost: Vec<String>,
    /// Extra copies in the sink, over all ids.
    pub duplicated: usize,
    /// Ids in the sink that were neither accepted nor unanswered.
    pub unknown: Vec<String>,
}

impl Tally {
    pub fn new(accepted: &[String], unanswered: &[String], seen: &BTreeMap<String, usize>) -> Tally {
        let known: BTreeSet<&str> = accepted.iter().chain(unanswered).map(String::as_str).collect();
        Tally {
            accepted: accepted.len(),
            lost: accepted
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .cloned()
                .collect(),
            duplicated: seen.values().map(|n| n - 1).sum(),
            unknown: seen
                .keys()
                .filter(|id| !known.contains(id.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// Fails unless every accepted event arrived, nothing unknown did, and
    /// at most `max_duplicates` extra copies did; prints the figures.
    pub fn assert_complete(&self, what: &str, max_duplicates: usize) {
        eprintln!(
            "{what}: accepted {}, lost {}, duplicated {} (at most {max_duplicates} can be in flight)",
            self.accepted,
            self.lost.len(),
            self.duplicated
        );
        assert!(self.accepted > 0, "{what}: nothing was accepted");
        assert!(
            self.lost.is_empty(),
            "{what}: {} of {} accepted events lost, first {:?}",
            self.lost.len(),
            self.accepted,
            &self.lost[..self.lost.len().min(10)]
        );
        assert!(
            self.unknown.is_empty(),
            "{what}: events nobody posted: {:?}",
            &self.unknown[..self.unknown.len().min(10)]
        );
        assert!(
            self.duplicated <= max_duplicates,
            "{what}: {} duplicates, more than the {max_duplicates} that can be in flight",
            self.duplicated
        );
    }
}

/// The segment files of the disk queue under `state` (everything in
/// `<state>/queue/` that holds `needle`), sorted by name.
pub fn files_holding(state: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(state.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect();
    files.sort();
    files
}
