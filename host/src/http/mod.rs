//! The HTTP interface: ingest on `[server] listen`; admin (metrics,
//! listings, stream, reload, replay) there too, or only on `[admin] listen`
//! when that is set; the probes `/healthz` and `/readyz` on both.
//!
//! - `routes`: the route table (every endpoint, its method, scope and
//!   handler); `server`: the accept loop and connection limits;
//!   `submit`: the ingest endpoints, handing events to the pipeline;
//!   `admin`: the admin endpoints; [`ingest`], [`body`], [`auth`],
//!   [`stream`]: request bodies to events, bodies, tokens, the live stream.

mod admin;
pub mod auth;
pub mod body;
pub mod ingest;
mod routes;
mod send_timeout;
mod server;
pub mod stream;
mod submit;

use crate::shutdown::Observer;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ACCEPT_ENCODING, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use crate::config::AuthConfig;
use crate::pipeline::{Pipeline, Waiting};
use crate::telemetry::{Stats, StreamHub};

pub use server::{serve, ConnLimits};

pub struct AppState {
    /// Set once plugins are loaded and workers run; until then ingest and
    /// listings answer 503 and `/readyz` says "starting".
    pub pipeline: OnceLock<Arc<Pipeline>>,
    pub max_body: u64,
    /// `[server] body_timeout`: longest time to receive a whole request body
    /// (issue 17, item 7); past it the answer is 408 and the connection closes.
    pub body_timeout: Duration,
    /// Exists before the pipeline: `/metrics` answers while loading.
    pub stats: Arc<Stats>,
    pub stream: Arc<StreamHub>,
    /// `[auth]` of the config started with, until the plugins are loaded;
    /// from then on that of the serving snapshot (a reload changes tokens).
    pub starting_auth: AuthConfig,
    /// The daemon's shutdown signal: once it fires, `/readyz` answers 503.
    pub shutdown: Observer,
    /// What `POST /v1/reload` asks to reload.
    pub reloads: Arc<dyn Reloads>,
}

/// How `POST /v1/reload` reloads: implemented by the daemon's lifecycle
/// (`app`), which sits above this module.
pub trait Reloads: Send + Sync {
    /// Reloads and waits for the outcome. Errors: the daemon is stopping.
    fn reload(&self) -> Waiting<'_, anyhow::Result<ReloadOutcome>>;
}

/// What a reload did, as `POST /v1/reload` answers it.
pub struct ReloadOutcome {
    /// No config error and every plugin loaded: 200, else 422.
    pub ok: bool,
    /// The load report, as JSON.
    pub report: Value,
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
