//! Handing events to the pipeline: the ingest endpoints, and `accept`,
//! which answers 202 once the events are accepted or, with `?wait=true`,
//! 200 with their reports once they are handled (both acknowledged through
//! the [`Submitter`]).
//!
//! A queue that cannot take the events now answers 503 with `Retry-After`:
//! full (`[server] queue`), its disk backlog at `[queue] max_bytes`, or
//! unable to write to disk (a full disk: issue 12; logged, at most once a
//! second); each counted.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode};
use serde_json::json;

use super::body::read_body;
use super::{error_response, ingest, json_response, AppState, Resp};
use crate::event::Event;
use crate::pipeline::{Ack, SubmitError, Submitter};
use crate::telemetry::Stats;

/// Whether the query asks to wait until the events are handled
/// (`?wait=true`, `?wait=1`, `?wait`).
pub(super) fn wants_wait(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "wait" && (v == "true" || v == "1" || v.is_empty()))
}

/// `POST /v1/events`: JSON, NDJSON, CloudEvents (see [`ingest`]).
pub(super) async fn events(state: &AppState, req: Request<Incoming>) -> Resp {
    let wait = wants_wait(req.uri().query());
    let events = match read_body(state, req).await {
        Ok((parts, body)) => ingest::events_within(&parts.headers, &body, state.max_body),
        Err(e) => Err(e),
    };
    match events {
        Ok(events) => accept(state, events, wait).await,
        Err(e) => error_response(e.status, &e.message),
    }
}

/// `POST /event/log`: eventlib's form.
pub(super) async fn eventlib(state: &AppState, req: Request<Incoming>) -> Resp {
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
pub(super) async fn accept(state: &AppState, events: Vec<Event>, wait: bool) -> Resp {
    let Some(pipeline) = state.pipeline.get() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: plugins are being loaded",
        );
    };
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let ack = if wait { Ack::Report } else { Ack::Accepted };
    let len = events.len();
    let receipt = match pipeline.try_submit(events, ack).await {
        Ok(receipt) => receipt,
        Err(e @ SubmitError::Full { .. }) => {
            Stats::add(&state.stats.refused_queue_full, 1);
            return retry_later(&e, "1");
        }
        Err(e @ SubmitError::Backlog { .. }) => {
            Stats::add(&state.stats.refused_queue_backlog, 1);
            return retry_later(&e, "1");
        }
        Err(e @ SubmitError::Unavailable { .. }) => {
            Stats::add(&state.stats.refused_queue_unavailable, 1);
            log_unavailable(&e, len, &state.stats);
            return retry_later(&e, UNAVAILABLE_RETRY_AFTER);
        }
        Err(e @ SubmitError::TooLarge { .. }) => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(e @ SubmitError::Closed) => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    };
    if !wait {
        return json_response(StatusCode::ACCEPTED, &json!({ "ids": ids }));
    }
    let mut reports = Vec::with_capacity(receipt.handled.len());
    for handled in receipt.handled {
        match handled.await {
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

/// `Retry-After` when the disk queue cannot write: a full disk is freed by
/// someone, not by the workers draining the queue, so retrying every second
/// would only add load.
const UNAVAILABLE_RETRY_AFTER: &str = "5";

/// 503 with `Retry-After: <secs>` and the reason.
fn retry_later(e: &SubmitError, secs: &'static str) -> Resp {
    let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(secs));
    r
}

/// Logs a refusal because the disk queue cannot write, at most once a
/// second (a full disk under load would log every request); the counter
/// says how many there were.
fn log_unavailable(e: &SubmitError, events: usize, stats: &Stats) {
    static LOGGED_AT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LOGGED_AT.swap(now, Relaxed) != now {
        let refused = stats.refused_queue_unavailable.load(Relaxed);
        tracing::warn!(error = %e, events, refused_total = refused, retry_after_s = UNAVAILABLE_RETRY_AFTER, "ingest refused with 503: the queue cannot write to disk");
    }
}
