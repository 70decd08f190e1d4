//! switchyard: routes events to sandboxed WebAssembly handlers.
//!
//! # Layout
//!
//! Data path, in the order an event travels:
//! - [`http`]: the HTTP server; [`http::ingest`] turns request bodies (JSON,
//!   NDJSON, CloudEvents, eventlib's form) into events, purely;
//!   [`http::body`] receives bodies (`body_timeout`, `max_body`) and undoes
//!   their `Content-Encoding`; [`http::auth`] checks bearer tokens; [`http::stream`] is the live
//!   `/v1/stream` of routed events (bounded per subscriber, cut off when
//!   behind); every connection's writes are bounded by `send_timeout`
//!   (`http/send_timeout.rs`).
//! - [`envelope`]: the event envelope, ids, times; [`envelope::cloudevents`]
//!   the CloudEvents 1.0.2 rules and mapping.
//! - [`pipeline`]: the queue behind the [`pipeline::Submitter`] seam
//!   (memory today), admission (503 when full), the worker threads that
//!   run handlers, emitted-event cascades, hop limit and cascade budget.
//! - [`router`]: the pure function from (routes, event) to routes; name and
//!   source globs, [`version`] ranges, data/meta predicates, `require`.
//! - [`runtime`]: the wasm sandbox: engine, ABI check at load, per-event
//!   stores with fuel, memory cap, deadline (also over host calls that
//!   wait: [`runtime::host::poll`]); one executor per kind of guest
//!   ([`runtime::guest`]); host imports, one module per capability
//!   ([`runtime::host`]); failure kinds; compiles off
//!   the reload path within size and time limits ([`runtime::compile`]).
//! - [`sinks`]: where routed events are written (file, stdout, and
//!   [`sinks::http`] webhooks: batched, retried, dead-lettered).
//! - [`dead_letter`]: the NDJSON log of every failure, with the event.
//! - [`sources`]: event sources besides HTTP, behind the
//!   [`sources::Source`] trait; [`sources::tail`] follows log files like
//!   `tail -F`, with checkpoints (rotation, copytruncate, restart: every
//!   line handled once).
//!
//! Control plane:
//! - [`config`]: router.toml, validated with every error located;
//!   [`config::env`] interpolates `${VAR}`; [`config::ops`] holds the
//!   operations keys (`[admin]`, `[auth]`, `[stream]`, webhook sinks).
//! - [`app`]: the daemon's lifecycle: wiring, readiness, reloads (a
//!   complete snapshot built off the hot path, reusing what did not
//!   change, swapped in whole), the watcher, signals and graceful
//!   shutdown; [`app::registry`]: which files in the plugins folder are
//!   plugins. [`shutdown`]: the one stop signal of every long-running
//!   task; [`stats`]: plain
//!   counters; [`metrics`]: labelled metrics and the Prometheus exposition;
//!   [`log_limit`]: the per-plugin rate limit on log lines and bytes.
//! - [`check`] and [`plugin_run`]: the `check` and `plugin run` commands;
//!   [`cli`]: the client commands `send`, `tail` and `dead-letter
//!   list|replay` (with [`cli::marks`], the record of replayed lines).
//!
//! Adding a source: a folder `sources/NAME/` with a type implementing
//! [`sources::Source`] (and its settings type in `config`), and one arm in
//! [`sources::start_all`]. Adding a queue: one type implementing both
//! [`pipeline::Submitter`] and [`pipeline::queue::Queue`], chosen in
//! [`pipeline::Pipeline::start`]; workers do not change.

pub mod app;
pub mod cli;
pub mod config;
mod dead_letter;
pub mod event;
pub mod http;
mod ndjson;
mod pipeline;
mod router;
pub mod runtime;
mod shutdown;
mod sinks;
pub mod sources;
mod telemetry;
