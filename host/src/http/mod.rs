//! The HTTP interface: ingest on `[server] listen`; admin (metrics,
//! listings, stream, reload, replay) there too, or only on `[admin] listen`
//! when that is set; the probes `/healthz` and `/readyz` on both.

mod admin;
pub mod auth;
pub mod body;
pub mod ingest;
mod send_timeout;
pub mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Notify, Semaphore};

use crate::config::AuthConfig;
use crate::dispatch::{Dispatcher, Job, SubmitError};
use crate::envelope::Event;
use crate::telemetry::Stats;
use crate::telemetry::{StreamHub, SCOPE_ADMIN, SCOPE_INGEST};

/// How long open requests may take to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AppState {
    /// Set once plugins are loaded and workers run; until then ingest and
    /// listings answer 503 and `/readyz` says "starting".
    pub dispatcher: OnceLock<Arc<Dispatcher>>,
    pub max_body: u64,
    /// `[server] body_timeout`: longest time to receive a whole request body
    /// (issue 17, item 7); past it the answer is 408 and the connection closes.
    pub body_timeout: Duration,
    /// Exists before the dispatcher: `/metrics` answers while loading.
    pub stats: Arc<Stats>,
    pub stream: Arc<StreamHub>,
    pub auth: AuthConfig,
    /// Set when shutdown begins: `/readyz` answers 503.
    pub stopping: AtomicBool,
    /// Where `POST /v1/reload` sends its request.
    pub reloads: tokio::sync::mpsc::UnboundedSender<crate::daemon::ReloadRequest>,
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[server] listen` without an `[admin] listen`: everything.
    All,
    /// `[server] listen` when `[admin] listen` is set.
    Ingest,
    /// `[admin] listen`.
    Admin,
}

type Resp = Response<BoxBody<Bytes, Infallible>>;

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A JSON `{"error": message}` answer. A 408 also closes the connection;
/// a 415 says in `Accept-Encoding` which codings are decoded (RFC 7694).
fn error_response(status: StatusCode, message: &str) -> Resp {
    let mut r = json_response(status, &json!({ "error": message }));
    if status == StatusCode::REQUEST_TIMEOUT {
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        r.headers_mut().insert(
            ACCEPT_ENCODING,
            HeaderValue::from_static(body::ACCEPTED_ENCODINGS),
        );
    }
    r
}

/// Per-listener connection limits from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `header_timeout`: how long a client may take to send request headers.
    pub header_timeout: Duration,
    /// `max_connections`: open connections on one listener; past it a new
    /// connection gets a 503 and is closed (issue 17, item 7).
    pub max_connections: usize,
    /// `send_timeout`: how long a write to the client may stay pending
    /// before the connection is closed (a client that stopped reading).
    pub send_timeout: Duration,
}

/// What a connection beyond `max_connections` is told before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 70\r\n\r\n\
    {\"error\":\"too many open connections (max_connections); retry shortly\"}";

/// Accepts connections until `shutdown` fires, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    role: Role,
    limits: ConnLimits,
    mut shutdown: broadcast::Receiver<()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Refused connections being answered; past as many again they are just closed.
    let lingering = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            Stats::add(&state.stats.connections_refused, 1);
            tracing::debug!(%peer, max = limits.max_connections, "too many connections; refusing one");
            if let Ok(linger) = lingering.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(linger);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stats = state.stats.clone();
        let state = state.clone();
        // Closes this connection: for a stream subscriber that stopped reading.
        let kill = Arc::new(Notify::new());
        let killer = kill.clone();
        let service = service_fn(move |req| {
            let (state, kill) = (state.clone(), kill.clone());
            async move { Ok::<_, Infallible>(route(&state, role, req, peer, kill).await) }
        });
        let io = send_timeout::SendTimeout::new(stream, limits.send_timeout, stats);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                done = conn => if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = killer.notified() => tracing::debug!(%peer, "connection closed by the server"),
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

/// Answers 503 past `max_connections` and closes without a reset: what the
/// client already sent is read and dropped for up to a second (a lingering
/// close), so that it sees the answer rather than ECONNRESET.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let linger = async {
        stream.write_all(TOO_MANY_CONNECTIONS).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}

/// Who may call an endpoint, and on which listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `/healthz`, `/readyz`: every listener, no token (probes).
    Probe,
    Ingest,
    Admin,
}

/// An endpoint's scope and the one method it takes.
fn endpoint(path: &str) -> Option<(Scope, Method)> {
    Some(match path {
        "/healthz" | "/readyz" => (Scope::Probe, Method::GET),
        "/v1/events" | "/event/log" => (Scope::Ingest, Method::POST),
        "/metrics" | "/v1/stats" | "/v1/plugins" | "/v1/routes" | "/v1/stream" => (Scope::Admin, Method::GET),
        "/v1/reload" | "/v1/replay" => (Scope::Admin, Method::POST),
        _ => return None,
    })
}

async fn route(
    state: &AppState,
    role: Role,
    req: Request<Incoming>,
    peer: SocketAddr,
    kill: Arc<Notify>,
) -> Resp {
    let path = req.uri().path().to_string();
    let resp = match endpoint(&path) {
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("no such endpoint: {} {path}", req.method()),
        ),
        Some((scope, method)) => match check_scope(state, role, scope, &req) {
            Some(refusal) => refusal,
            None if req.method() != method => {
                let mut r = error_response(StatusCode::METHOD_NOT_ALLOWED, &format!("{path} takes {method}"));
                r.headers_mut().insert(
                    ALLOW,
                    HeaderValue::from_str(method.as_str()).expect("a method is a header value"),
                );
                r
            }
            None => serve_endpoint(state, &path, req, kill).await,
        },
    };
    tracing::trace!(%peer, %path, status = resp.status().as_u16(), "request");
    resp
}

/// 404 on the wrong listener, 401 without the right token.
fn check_scope(state: &AppState, role: Role, scope: Scope, req: &Request<Incoming>) -> Option<Resp> {
    let path = req.uri().path();
    let (token, label) = match (scope, role) {
        (Scope::Probe, _) => return None,
        (Scope::Ingest, Role::Admin) => {
            return Some(error_response(
                StatusCode::NOT_FOUND,
                &format!(
                    "{path} is served on the ingest listener ([server] listen), not on the admin listener"
                ),
            ))
        }
        (Scope::Admin, Role::Ingest) => {
            return Some(error_response(
                StatusCode::NOT_FOUND,
                &format!(
                    "{path} is served on the admin listener ([admin] listen), not on the ingest listener"
                ),
            ))
        }
        (Scope::Ingest, _) => (state.auth.ingest.as_ref(), SCOPE_INGEST),
        (Scope::Admin, _) => (state.auth.admin.as_ref(), SCOPE_ADMIN),
    };
    match auth::check(req.headers(), token, label) {
        Ok(()) => None,
        Err(e) => {
            state.stats.metrics.unauthorized(label);
            tracing::debug!(path, scope = label, error = %e, "request refused");
            let mut r = error_response(StatusCode::UNAUTHORIZED, &e.to_string());
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard\""),
            );
            Some(r)
        }
    }
}

async fn serve_endpoint(state: &AppState, path: &str, req: Request<Incoming>, kill: Arc<Notify>) -> Resp {
    match path {
        "/healthz" => return json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => return admin::readyz(state),
        "/metrics" => return admin::metrics(state, &req),
        "/v1/stats" => return stats(state),
        _ => {}
    }
    let Some(dispatcher) = state.dispatcher.get() else {
        let mut r = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: plugins are being loaded; retry shortly (see /readyz)",
        );
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    match path {
        "/v1/events" => ingest_events(state, req).await,
        "/event/log" => ingest_eventlib(state, req).await,
        "/v1/plugins" => plugins(dispatcher),
        "/v1/routes" => routes(dispatcher),
        "/v1/stream" => admin::stream(state, &req, Some(kill)),
        "/v1/reload" => reload(state).await,
        "/v1/replay" => {
            let wait = wants_wait(req.uri().query());
            admin::replay(state, req, wait).await
        }
        other => error_response(StatusCode::NOT_FOUND, &format!("no such endpoint: {other}")),
    }
}

fn wants_wait(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "wait" && (v == "true" || v == "1" || v.is_empty()))
}

async fn ingest_events(state: &AppState, req: Request<Incoming>) -> Resp {
    let wait = wants_wait(req.uri().query());
    let events = match body::read_body(state, req).await {
        Ok((parts, body)) => ingest::events_within(&parts.headers, &body, state.max_body),
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
    let event = match body::read_body(state, req).await {
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
    let Some(dispatcher) = state.dispatcher.get() else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: plugins are being loaded",
        );
    };
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
    match dispatcher.try_submit(jobs) {
        Ok(()) => {}
        Err(e @ SubmitError::Full { .. }) => {
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
    let mut body = state.stats.to_json();
    if let Some(d) = state.dispatcher.get() {
        body["queue"] = json!({"depth": d.depth(), "capacity": d.capacity()});
    }
    json_response(StatusCode::OK, &body)
}

/// Each plugin file: the version serving (if any) and its last load error
/// (if any; the previous version keeps serving).
fn plugins(dispatcher: &Dispatcher) -> Resp {
    let snap = dispatcher.shared().snapshot.load();
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

async fn reload(state: &AppState) -> Resp {
    match crate::daemon::request_reload(&state.reloads).await {
        Ok(report) => {
            let status = if report.ok() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            json_response(status, &serde_json::to_value(&report).unwrap_or_default())
        }
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, &format!("{e:#}")),
    }
}

fn routes(dispatcher: &Dispatcher) -> Resp {
    let snap = dispatcher.shared().snapshot.load();
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
    #[test]
    fn the_too_many_connections_answer_is_well_formed() {
        let text = std::str::from_utf8(super::TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("max_connections"));
    }
}
