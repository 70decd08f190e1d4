//! HTTP load generator for switchyard's ingest: N keep-alive connections,
//! each sending requests back to back for a fixed time. Prints one JSON
//! object: events/s accepted, requests/s, latency percentiles, statuses.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Parser, Clone)]
struct Args {
    /// Daemon address.
    #[arg(long, default_value = "127.0.0.1:7600")]
    addr: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Events per request: 1 sends a JSON object, more send NDJSON.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// How long to send, after the warm-up.
    #[arg(long, default_value = "10")]
    seconds: f64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value = "1")]
    warmup: f64,
    /// Ask for `?wait=true`: latency is then to handler completion.
    #[arg(long)]
    wait: bool,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Requests per second over all connections (0: as fast as answered).
    /// Each connection sends on a fixed schedule (its share of the rate);
    /// a request that falls behind it goes out at once, so a slow answer
    /// delays the ones behind it rather than thinning the load. Latency is
    /// from the moment a request is sent: tokio's timer wakes on
    /// millisecond ticks, which would otherwise be counted as latency.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

struct ConnResult {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
}

fn body(batch: usize) -> (Bytes, &'static str) {
    let event = |i: usize| {
        json!({"name": "deals.DealClick", "version": "1.2", "meta": {"host": "bench"},
               "data": {"deal_id": i, "user_id": 42}})
        .to_string()
    };
    if batch == 1 {
        (Bytes::from(event(1)), "application/json")
    } else {
        let lines: Vec<String> = (0..batch).map(event).collect();
        (Bytes::from(lines.join("\n") + "\n"), "application/x-ndjson")
    }
}

async fn connection(args: Args, warm_until: Instant, stop_at: Instant) -> anyhow::Result<ConnResult> {
    let stream = tokio::net::TcpStream::connect(&args.addr)
        .await
        .with_context(|| format!("connect {}", args.addr))?;
    stream.set_nodelay(true)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (payload, content_type) = body(args.batch);
    let path = if args.wait {
        "/v1/events?wait=true"
    } else {
        "/v1/events"
    };
    let mut out = ConnResult {
        latencies: Vec::new(),
        statuses: BTreeMap::new(),
    };
    // With a rate, this connection's share of it, as the gap between sends.
    let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
    let mut due = Instant::now();
    loop {
        if let Some(gap) = gap {
            due += gap;
            tokio::time::sleep_until(due.into()).await;
        }
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let req = Request::post(path)
            .header("host", &args.addr)
            .header("content-type", content_type)
            .body(Full::new(payload.clone()))?;
        send.ready().await?;
        let resp = send.send_request(req).await?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await?;
        if now >= warm_until {
            out.latencies.push(now.elapsed());
            *out.statuses.entry(status).or_default() += 1;
        }
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let start = Instant::now();
        let warm_until = start + Duration::from_secs_f64(args.warmup);
        let stop_at = warm_until + Duration::from_secs_f64(args.seconds);
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(connection(args.clone(), warm_until, stop_at)))
            .collect();
        let mut latencies = Vec::new();
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        for t in tasks {
            let r = t.await??;
            latencies.extend(r.latencies);
            for (s, n) in r.statuses {
                *statuses.entry(s).or_default() += n;
            }
        }
        latencies.sort();
        let n = latencies.len().max(1);
        let pct = |q: f64| latencies.get(((n as f64 * q) as usize).min(n - 1)).map_or(0.0, |d| d.as_secs_f64() * 1e6);
        let accepted = statuses.get(&202).copied().unwrap_or(0) + statuses.get(&200).copied().unwrap_or(0);
        let requests: u64 = statuses.values().sum();
        let result = json!({
            "connections": args.connections,
            "batch": args.batch,
            "wait": args.wait,
            "rate": args.rate,
            "seconds": args.seconds,
            "requests": requests,
            "requests_per_sec": (requests as f64 / args.seconds).round(),
            "events_per_sec": ((accepted * args.batch as u64) as f64 / args.seconds).round(),
            "latency_us": {"p50": pct(0.5).round(), "p99": pct(0.99).round(), "max": pct(1.0).round()},
            "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{result}");
        Ok(())
    })
}
