//! The route table: every endpoint, with its method, who may call it (and
//! on which listener), whether it needs the plugins loaded, and what
//! answers it. Adding an endpoint is one row here and one arm in [`call`].

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};
use serde_json::json;
use tokio::sync::Notify;

use super::{admin, auth, error_response, json_response, submit, AppState, Resp, Role};
use crate::telemetry::{SCOPE_ADMIN, SCOPE_INGEST};

/// Who may call an endpoint, and on which listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every listener, no token (probes).
    Probe,
    /// The ingest listener; `[auth] ingest`.
    Ingest,
    /// The admin listener; `[auth] admin`.
    Admin,
}

/// What answers a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    Stats,
    Events,
    EventLog,
    Plugins,
    Routes,
    Stream,
    Reload,
    Replay,
}

/// One row of the table.
struct Route {
    path: &'static str,
    /// The one method the path takes; others get 405.
    method: Method,
    scope: Scope,
    /// Answers 503 until the plugins are loaded and the workers run.
    needs_loaded: bool,
    endpoint: Endpoint,
}

const fn row(
    path: &'static str,
    method: Method,
    scope: Scope,
    needs_loaded: bool,
    endpoint: Endpoint,
) -> Route {
    Route {
        path,
        method,
        scope,
        needs_loaded,
        endpoint,
    }
}

/// Every route the daemon serves.
static ROUTES: [Route; 11] = [
    row("/healthz", Method::GET, Scope::Probe, false, Endpoint::Healthz),
    row("/readyz", Method::GET, Scope::Probe, false, Endpoint::Readyz),
    row("/v1/events", Method::POST, Scope::Ingest, true, Endpoint::Events),
    row(
        "/event/log",
        Method::POST,
        Scope::Ingest,
        true,
        Endpoint::EventLog,
    ),
    row("/metrics", Method::GET, Scope::Admin, false, Endpoint::Metrics),
    row("/v1/stats", Method::GET, Scope::Admin, false, Endpoint::Stats),
    row("/v1/plugins", Method::GET, Scope::Admin, true, Endpoint::Plugins),
    row("/v1/routes", Method::GET, Scope::Admin, true, Endpoint::Routes),
    row("/v1/stream", Method::GET, Scope::Admin, true, Endpoint::Stream),
    row("/v1/reload", Method::POST, Scope::Admin, true, Endpoint::Reload),
    row("/v1/replay", Method::POST, Scope::Admin, true, Endpoint::Replay),
];

/// Answers one request: 404 for an unknown path or the wrong listener,
/// 401 without the right token, 405 for another method, 503 while
/// starting, else the endpoint's answer.
pub(super) async fn route(
    state: &AppState,
    role: Role,
    req: Request<Incoming>,
    peer: SocketAddr,
    kill: Arc<Notify>,
) -> Resp {
    let path = req.uri().path().to_string();
    let resp = match ROUTES.iter().find(|r| r.path == path) {
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("no such endpoint: {} {path}", req.method()),
        ),
        Some(r) => match check_scope(state, role, r.scope, &req) {
            Some(refusal) => refusal,
            None if *req.method() != r.method => {
                let mut resp = error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &format!("{path} takes {}", r.method),
                );
                resp.headers_mut().insert(
                    ALLOW,
                    HeaderValue::from_str(r.method.as_str()).expect("a method is a header value"),
                );
                resp
            }
            None if r.needs_loaded && state.pipeline.get().is_none() => {
                let mut resp = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "starting: plugins are being loaded; retry shortly (see /readyz)",
                );
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
            None => call(r.endpoint, state, req, kill).await,
        },
    };
    tracing::trace!(%peer, %path, status = resp.status().as_u16(), "request");
    resp
}

/// What answers each endpoint.
async fn call(endpoint: Endpoint, state: &AppState, req: Request<Incoming>, kill: Arc<Notify>) -> Resp {
    match endpoint {
        Endpoint::Healthz => json_response(StatusCode::OK, &json!({"status": "ok"})),
        Endpoint::Readyz => admin::readyz(state),
        Endpoint::Metrics => admin::metrics(state, &req),
        Endpoint::Stats => admin::stats(state),
        Endpoint::Events => submit::events(state, req).await,
        Endpoint::EventLog => submit::eventlib(state, req).await,
        Endpoint::Plugins => admin::plugins(state),
        Endpoint::Routes => admin::routes(state),
        Endpoint::Stream => admin::stream(state, &req, Some(kill)),
        Endpoint::Reload => admin::reload(state).await,
        Endpoint::Replay => {
            let wait = submit::wants_wait(req.uri().query());
            admin::replay(state, req, wait).await
        }
    }
}

/// 404 on the wrong listener, 401 without the right token. Tokens are
/// those of the serving config, so a reload changes them (before the
/// plugins are loaded, those of the config started with).
fn check_scope(state: &AppState, role: Role, scope: Scope, req: &Request<Incoming>) -> Option<Resp> {
    let path = req.uri().path();
    let snapshot = state.pipeline.get().map(|p| p.shared().snapshot());
    let auth = snapshot.as_ref().map_or(&state.starting_auth, |s| &s.config.auth);
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
        (Scope::Ingest, _) => (auth.ingest.as_ref(), SCOPE_INGEST),
        (Scope::Admin, _) => (auth.admin.as_ref(), SCOPE_ADMIN),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_listed_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[..i]
                    .iter()
                    .all(|o| o.path != r.path && o.endpoint != r.endpoint),
                "{} is listed twice",
                r.path
            );
        }
    }
}
