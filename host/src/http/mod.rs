//! The HTTP interface on `[server] listen`: ingest, health, listings.

pub mod ingest;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::dispatch::{Dispatcher, Job, SubmitError};
use crate::envelope::Event;
use crate::stats::Stats;
use ingest::IngestError;

/// How long open requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AppState {
    pub dispatcher: Arc<Dispatcher>,
    pub max_body: u64,
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(status: StatusCode, message: &str) -> Resp {
    json_response(status, &json!({ "error": message }))
}

/// Accepts connections until `shutdown` fires, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    header_timeout: Duration,
    mut shutdown: broadcast::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, req, peer).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
    }
}

async fn route(state: &AppState, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let path = req.uri().path().to_string();
    let resp = match (req.method(), path.as_str()) {
        (&Method::POST, "/v1/events") => ingest_events(state, req).await,
        (&Method::POST, "/event/log") => ingest_eventlib(state, req).await,
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/v1/stats") => stats(state),
        (&Method::GET, "/v1/plugins") => plugins(state),
        (&Method::GET, "/v1/routes") => routes(state),
        (_, "/v1/events" | "/event/log") => {
            let mut r = error_response(StatusCode::METHOD_NOT_ALLOWED, &format!("{path} takes POST"));
            r.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            r
        }
        (m, _) => error_response(StatusCode::NOT_FOUND, &format!("no such endpoint: {m} {path}")),
    };
    tracing::trace!(%peer, %path, status = resp.status().as_u16(), "request");
    resp
}

/// Reads the whole body, refusing it with 413 past `max_body` (also for
/// chunked bodies, while reading).
async fn read_body(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<(hyper::http::request::Parts, Bytes), IngestError> {
    let too_large = || IngestError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("body is larger than max_body ({} bytes)", state.max_body),
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body) {
        return Err(too_large());
    }
    let limit = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(IngestError {
            status: StatusCode::BAD_REQUEST,
            message: format!("cannot read the body: {e}"),
        }),
    }
}

fn wants_wait(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "wait" && (v == "true" || v == "1" || v.is_empty()))
}

async fn ingest_events(state: &AppState, req: Request<Incoming>) -> Resp {
    let wait = wants_wait(req.uri().query());
    let events = match read_body(state, req).await {
        Ok((parts, body)) => ingest::events(&parts.headers, &body),
        Err(e) => Err(e),
    };
    match events {
        Ok(events) => accept(state, events, wait).await,
        Err(e) => error_response(e.status, &e.message),
    }
}

async fn ingest_eventlib(state: &AppState, req: Request<Incoming>) -> Resp {
    let query = req.uri().query().map(str::to_string);
    let wait = wants_wait(query.as_deref());
    let event = match read_body(state, req).await {
        Ok((parts, body)) => ingest::eventlib(query.as_deref(), &parts.headers, &body),
        Err(e) => Err(e),
    };
    match event {
        Ok(event) => accept(state, vec![event], wait).await,
        Err(e) => error_response(e.status, &e.message),
    }
}

/// Queues the events (all or none); answers 202 with their ids, or with
/// `wait`, 200 once every one of them has been handled.
async fn accept(state: &AppState, events: Vec<Event>, wait: bool) -> Resp {
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut replies = Vec::new();
    let jobs: Vec<Job> = events
        .into_iter()
        .map(|e| {
            if wait {
                let (job, rx) = Job::with_reply(e);
                replies.push(rx);
                job
            } else {
                Job::new(e)
            }
        })
        .collect();
    match state.dispatcher.try_submit(jobs) {
        Ok(()) => {}
        Err(e @ SubmitError::Full { .. }) => {
            Stats::add(&state.dispatcher.shared().stats.refused_queue_full, 1);
            let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        Err(e @ SubmitError::TooLarge { .. }) => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(e @ SubmitError::Closed) => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
    if !wait {
        return json_response(StatusCode::ACCEPTED, &json!({ "ids": ids }));
    }
    let mut reports = Vec::with_capacity(replies.len());
    for rx in replies {
        match rx.await {
            Ok(report) => reports.push(report),
            Err(_) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "a worker stopped before answering",
                )
            }
        }
    }
    json_response(StatusCode::OK, &json!({ "ids": ids, "events": reports }))
}

fn stats(state: &AppState) -> Resp {
    let d = &state.dispatcher;
    let mut body = d.shared().stats.to_json();
    body["queue"] = json!({"depth": d.depth(), "capacity": d.capacity()});
    json_response(StatusCode::OK, &body)
}

fn plugins(state: &AppState) -> Resp {
    let snap = state.dispatcher.shared().snapshot.load();
    let mut list: Vec<Value> = snap
        .plugins
        .values()
        .map(|p| {
            let l = p.limits();
            json!({
                "name": p.name, "file": p.path, "kind": p.kind, "size": p.size,
                "limits": {
                    "fuel": l.fuel, "memory": l.memory, "timeout_ms": l.timeout.as_millis() as u64,
                    "max_emits": l.max_emits, "max_emit_bytes": l.max_emit_bytes,
                },
                "error": null,
            })
        })
        .collect();
    for (name, error) in &snap.plugin_errors {
        list.push(json!({"name": name, "error": error}));
    }
    json_response(StatusCode::OK, &json!({ "plugins": list }))
}

fn routes(state: &AppState) -> Resp {
    let snap = state.dispatcher.shared().snapshot.load();
    let list: Vec<Value> = snap
        .router
        .routes()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "match": {
                    "name": r.matcher.name.as_ref().map(|g| g.as_str()),
                    "source": r.matcher.source.as_ref().map(|g| g.as_str()),
                    "version": r.matcher.version.as_ref().map(|v| v.to_string()),
                },
                "require": r.require.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "handlers": r.handlers, "sinks": r.sinks, "final": r.is_final,
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "routes": list }))
}
