//! switchyard: routes events to sandboxed WebAssembly handlers.
//!
//! # Layout
//!
//! Data path, in the order an event travels:
//! - [`http`]: the HTTP server; [`http::ingest`] turns request bodies (JSON,
//!   NDJSON, CloudEvents, eventlib's form) into events, purely.
//! - [`envelope`]: the event envelope, ids, times, the CloudEvents mapping.
//! - [`dispatch`]: the bounded queue, admission (503 when full), the worker
//!   threads that run handlers, emitted-event cascades and hop limit.
//! - [`router`]: the pure function from (routes, event) to routes; name and
//!   source globs, [`version`] ranges, data/meta predicates, `require`.
//! - [`runtime`]: the wasm sandbox: engine, ABI check at load, per-event
//!   stores with fuel, memory cap, deadline; host imports; failure kinds.
//! - [`sinks`]: where routed events are written (file, stdout).
//! - [`dead_letter`]: the NDJSON log of every failure, with the event.
//!
//! Control plane:
//! - [`config`]: router.toml, validated with every error located.
//! - [`registry`]: the plugins folder and loading every plugin in it.
//! - [`daemon`]: wiring and graceful shutdown; [`stats`]: counters.
//! - [`check`] and [`plugin_run`]: the `check` and `plugin run` commands.

pub mod check;
pub mod config;
pub mod daemon;
pub mod dead_letter;
pub mod dispatch;
pub mod envelope;
pub mod http;
pub mod plugin_run;
pub mod registry;
pub mod router;
pub mod runtime;
pub mod sinks;
pub mod stats;
pub mod version;
