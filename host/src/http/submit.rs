//! Handing events to the pipeline: the ingest endpoints, and `accept`,
//! which answers 202 once the events are accepted or, with `?wait=true`,
//! 200 with their reports once they are handled (both acknowledged through
//! the [`Submitter`]).

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
    let receipt = match pipeline.try_submit(events, ack).await {
        Ok(receipt) => receipt,
        Err(
            e @ (SubmitError::Full { .. } | SubmitError::Backlog { .. } | SubmitError::Unavailable { .. }),
        ) => {
            Stats::add(&state.stats.refused_queue_full, 1);
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
