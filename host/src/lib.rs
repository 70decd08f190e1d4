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
//! - [`dispatch`]: the bounded queue, admission (503 when full), the worker
//!   threads that run handlers, emitted-event cascades, hop limit and
//!   cascade budget.
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
//! - [`dead_letter`]: the NDJSON log of every failure, with the event;
//!   [`ndjson`]: the append-only file under it and under file sinks.
//! - [`sources`]: event sources besides HTTP; [`sources::tail`] follows log
//!   files like `tail -F`, with checkpoints (rotation, copytruncate,
//!   restart: every line handled once).
//!
//! Control plane:
//! - [`config`]: router.toml, validated with every error located;
//!   [`config::env`] interpolates `${VAR}`; one module per section
//!   (`[server]`, `[auth]`, `[stream]`, one per sink type, ...);
//!   [`config::restart_only_changes`] names what a reload cannot apply.
//! - [`registry`]: which files in the plugins folder are plugins.
//! - [`reload`]: builds a complete snapshot (config, plugins, sinks) off the
//!   hot path, reusing what did not change, and swaps it in whole.
//! - [`watcher`]: notices changes to plugins and config; asks for a reload.
//! - [`daemon`]: wiring, readiness and graceful shutdown; [`telemetry`]:
//!   counters declared once, labelled metrics, the Prometheus exposition
//!   and the live-stream hub; [`log_limit`]: the settings of the
//!   per-plugin rate limit on log lines and bytes.
//! - [`cli`]: the commands, one module each: `run`, `check`, `plugin run`,
//!   and the client commands `send`, `tail` and `dead-letter list|replay`
//!   (with [`cli::marks`], the record of replayed lines).

pub mod cli;
pub mod config;
pub mod daemon;
pub mod dead_letter;
pub mod dispatch;
pub mod envelope;
pub mod http;
pub mod ndjson;
pub mod registry;
pub mod reload;
pub mod router;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod version;
pub mod watcher;
