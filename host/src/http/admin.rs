//! The admin endpoints: `/metrics`, `/readyz`, `/v1/stats`,
//! `/v1/plugins`, `/v1/routes`, `/v1/reload`, `/v1/stream` and
//! `/v1/replay` (see the table in `routes`).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::body::read_body;
use super::stream::Framing;
use super::submit::accept;
use super::{error_response, json_response, AppState, Resp};
use crate::event::{self, Event};
use crate::pipeline::Submitter;
use crate::router::NameGlob;
use crate::telemetry::{self, Format, Live, SubscribeError};

/// Longest accepted `source` of a replayed event.
const MAX_SOURCE: usize = 1024;

fn accept_header(req: &Request<Incoming>) -> Option<&str> {
    req.headers().get(ACCEPT).and_then(|v| v.to_str().ok())
}

/// `GET /metrics`: Prometheus text (OpenMetrics if the scraper asks).
pub(super) fn metrics(state: &AppState, req: &Request<Incoming>) -> Resp {
    let format = Format::from_accept(accept_header(req));
    let d = state.pipeline.get();
    let live = Live {
        queue_depth: d.map(|d| d.depth() as u64),
        queue_capacity: d.map(|d| d.capacity() as u64),
        ready: readiness(state).0 == StatusCode::OK,
    };
    let text = telemetry::render(&state.stats, live, format);
    let mut r = Response::new(Full::new(Bytes::from(text)).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    r
}

/// Whether the daemon can take events, and why not.
fn readiness(state: &AppState) -> (StatusCode, Value) {
    if state.shutdown.is_shutdown() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "stopping", "reason": "the daemon is shutting down"}),
        );
    }
    let Some(d) = state.pipeline.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "starting", "reason": "config loaded; plugins are being loaded"}),
        );
    };
    if !d.workers_alive() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "failed", "reason": "a worker thread has stopped; see the log"}),
        );
    }
    let snap = d.shared().snapshot();
    (
        StatusCode::OK,
        json!({
            "status": "ready",
            "plugins": snap.plugins.len(),
            "plugin_errors": snap.plugin_errors.keys().collect::<Vec<_>>(),
            "routes": snap.router.routes().len(),
        }),
    )
}

/// `GET /readyz`: 200 once config and plugins are loaded and workers run.
pub(super) fn readyz(state: &AppState) -> Resp {
    let (status, body) = readiness(state);
    let mut r = json_response(status, &body);
    if status != StatusCode::OK {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// `GET /v1/stream?name=GLOB`: a live subscription.
pub(super) fn stream(state: &AppState, req: &Request<Incoming>, kill: Option<Arc<Notify>>) -> Resp {
    let mut glob = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "name" => match NameGlob::new(&v) {
                Ok(g) => glob = Some(g),
                Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("name: {e}")),
            },
            other => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown query parameter {other:?}: /v1/stream takes name=GLOB"),
                )
            }
        }
    }
    let framing = Framing::from_accept(accept_header(req));
    match super::stream::subscribe(&state.stream, glob, framing, kill) {
        Ok(body) => {
            let mut r = Response::new(body.boxed());
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static(framing.content_type()));
            h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // Tells nginx-style proxies not to buffer the stream.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            r
        }
        Err(e @ SubscribeError::TooMany(_)) => {
            let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Err(e @ SubscribeError::Closed) => error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// `POST /v1/replay`: re-ingests events from the dead-letter log as they
/// were, keeping their `id`, `time` and `source` (so routes that match on
/// the source take them again). A JSON array or NDJSON of envelopes; each is
/// stamped `meta.replayed_at`. `?wait=true` as for `/v1/events`.
pub(super) async fn replay(state: &AppState, req: Request<Incoming>, wait: bool) -> Resp {
    let (parts, body) = match read_body(state, req).await {
        Ok(x) => x,
        Err(e) => return error_response(e.status, &e.message),
    };
    let values: Result<Vec<Value>, String> = match super::ingest::media_type(&parts.headers).as_deref() {
        None | Some("application/json") => match serde_json::from_slice(&body) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(one @ Value::Object(_)) => Ok(vec![one]),
            Ok(other) => Err(format!(
                "expected an event or an array of events, got {}",
                event::json_type(&other)
            )),
            Err(e) => Err(format!("body: invalid JSON: {e}")),
        },
        Some("application/x-ndjson") => body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(|(i, l)| serde_json::from_slice(l).map_err(|e| format!("line {}: invalid JSON: {e}", i + 1)))
            .collect(),
        Some(other) => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported media type {other:?}: send application/json or application/x-ndjson"),
            )
        }
    };
    let values = match values {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &format!("{e}; nothing was replayed")),
    };
    let mut events = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        match replayed_event(v) {
            Ok(e) => events.push(e),
            Err(e) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    &format!("event [{i}]: {e}; nothing was replayed"),
                )
            }
        }
    }
    let n = events.len() as u64;
    let resp = accept(state, events, wait).await;
    if resp.status().is_success() {
        state.stats.metrics.replayed.inc_by(n);
    }
    resp
}

fn replayed_event(mut v: Value) -> Result<Event, String> {
    let source = match v.get("source") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SOURCE => s.clone(),
        Some(Value::String(_)) => return Err(format!("\"source\" must be 1 to {MAX_SOURCE} bytes")),
        Some(other) => {
            return Err(format!(
                "\"source\" must be a string, got {}",
                event::json_type(other)
            ))
        }
        None => return Err("missing \"source\" (a replayed event keeps the source it came from)".into()),
    };
    if let Some(Value::Object(meta)) = v.get_mut("meta") {
        meta.insert("replayed_at".into(), Value::String(event::now()));
    } else if let Some(obj) = v.as_object_mut() {
        if !obj.contains_key("meta") {
            obj.insert("meta".into(), json!({"replayed_at": event::now()}));
        }
    }
    Event::from_input(v, &source).map_err(|e| e.to_string())
}

/// What a listing answers if it is called before the plugins are loaded
/// (the route table answers that first).
fn not_loaded() -> Resp {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "starting: plugins are being loaded",
    )
}

/// `GET /v1/stats`: the counters, and the queue once loaded.
pub(super) fn stats(state: &AppState) -> Resp {
    let mut body = state.stats.to_json();
    if let Some(d) = state.pipeline.get() {
        body["queue"] = json!({"depth": d.depth(), "capacity": d.capacity()});
    }
    json_response(StatusCode::OK, &body)
}

/// Each plugin file: the version serving (if any) and its last load error
/// (if any; the previous version keeps serving).
pub(super) fn plugins(state: &AppState) -> Resp {
    let Some(pipeline) = state.pipeline.get() else {
        return not_loaded();
    };
    let snap = pipeline.shared().snapshot();
    let mut names: Vec<&String> = snap.plugins.keys().chain(snap.plugin_errors.keys()).collect();
    names.sort();
    names.dedup();
    let list: Vec<Value> = names
        .into_iter()
        .map(|name| {
            let error = snap.plugin_errors.get(name);
            match snap.plugins.get(name) {
                Some(p) => {
                    let l = p.limits();
                    json!({
                        "name": p.name, "file": p.path, "kind": p.kind, "size": p.size, "sha256": p.sha256,
                        "loaded_at": humantime::format_rfc3339_millis(p.loaded_at).to_string(),
                        "limits": {
                            "fuel": l.fuel, "memory": l.memory, "timeout_ms": l.timeout.as_millis() as u64,
                            "max_emits": l.max_emits, "max_emit_bytes": l.max_emit_bytes,
                        },
                        "instance": p.instance_mode(),
                        "error": error,
                    })
                }
                None => json!({"name": name, "loaded_at": null, "error": error}),
            }
        })
        .collect();
    let unavailable: Vec<Value> = snap
        .router
        .routes()
        .iter()
        .flat_map(|r| r.handlers.iter().map(move |h| (r, h)))
        .filter(|(_, h)| !snap.plugins.contains_key(*h))
        .map(|(r, h)| json!({"route": r.name, "plugin": h}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "plugins": list, "unavailable": unavailable }),
    )
}

/// `POST /v1/reload`: reloads and answers with the report; 422 when the
/// config or a plugin failed.
pub(super) async fn reload(state: &AppState) -> Resp {
    match state.reloads.reload().await {
        Ok(outcome) => {
            let status = if outcome.ok {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            json_response(status, &outcome.report)
        }
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, &format!("{e:#}")),
    }
}

/// `GET /v1/routes`: the routes serving.
pub(super) fn routes(state: &AppState) -> Resp {
    let Some(pipeline) = state.pipeline.get() else {
        return not_loaded();
    };
    let snap = pipeline.shared().snapshot();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_events_keep_id_time_and_source() {
        let e = replayed_event(json!({
            "id": "01A", "name": "a.B", "source": "tail:/var/log/x.log",
            "time": "2026-01-02T03:04:05.000Z", "meta": {"k": 1}, "data": {"x": 2}
        }))
        .unwrap();
        assert_eq!((e.id.as_str(), e.source.as_str()), ("01A", "tail:/var/log/x.log"));
        assert_eq!(e.time, "2026-01-02T03:04:05.000Z");
        assert_eq!(e.meta["k"], 1);
        assert!(e.meta["replayed_at"].is_string());
        assert_eq!(
            replayed_event(json!({"name": "a.B"})).unwrap_err(),
            "missing \"source\" (a replayed event keeps the source it came from)"
        );
        assert_eq!(
            replayed_event(json!({"name": "a.B", "source": 3})).unwrap_err(),
            "\"source\" must be a string, got a number"
        );
    }
}
