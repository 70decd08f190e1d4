//! switchyard: routes events to sandboxed WebAssembly handlers.
//!
//! # Layout
//!
//! Modules in layers, bottom to top; a module names only modules below it
//! (`tests/it/layers.rs` holds this, and that no file is longer than about
//! 450 lines before its unit tests):
//!
//! - [`event`]: the envelope, ids and times; [`event::cloudevents`] the
//!   CloudEvents 1.0.2 rules and mapping; [`event::version`] versions and
//!   ranges. `shutdown`: the one stop signal of every long-running task
//!   (drop-to-complete).
//! - `router`: the pure function from (routes, event) to routes: name
//!   and source globs, version ranges, data/meta predicates, `require`.
//! - [`config`]: router.toml as plain settings types, validated with every
//!   error located (`file:line:column`); one module per section and per
//!   sink type. It imports only `event` and `router`: a route's matcher is
//!   validated into the router's own types once, at load (a glob, a
//!   version range), so the router never sees a string it could refuse; [`config::env`] interpolates `${VAR}`;
//!   [`config::restart_only_changes`] names what a reload cannot apply;
//!   [`config::plugin_files`] says which files are plugins.
//! - [`runtime`]: the wasm sandbox: engine, compile cache, compiles off the
//!   reload path within size and time limits, per-event stores with fuel,
//!   memory cap and deadline, failure kinds; [`runtime::guest`] one
//!   executor per kind of guest (core module, command, component of
//!   `plugin-sdk/wit/switchyard.wit`); [`runtime::host`] the host imports, one
//!   module per capability, with one signature table for the load-time
//!   import check and the linker.
//! - `telemetry`: counters declared once (Prometheus and `/v1/stats` read
//!   the same declaration), labelled metrics, the live-stream hub.
//! - `ndjson`: the append-only NDJSON file under dead letters and file
//!   sinks. `dead_letter`: the log of every failure with its event, and the
//!   one `DeadLetterKind` enum that letters, metrics and the CLI use.
//! - `sinks`: where routed events are written (file, stdout, webhooks),
//!   behind the `Sink` trait (write, flush, close with a deadline).
//! - `pipeline`: the queue behind the `Submitter` seam (on disk by
//!   default, `pipeline::disk`; or in memory), the worker threads that run
//!   handlers, cascades, the snapshot swapped whole on reload.
//! - [`sources`]: event sources besides HTTP behind the [`sources::Source`]
//!   trait; [`sources::tail`] follows log files like `tail -F`, with
//!   checkpoints.
//! - [`http`]: the server: one route table, [`http::ingest`] (request
//!   bodies to events, purely), admin endpoints, the stream body, bearer
//!   tokens, body and send timeouts.
//! - [`app`]: the daemon's lifecycle: bind, load, serve, reload (watcher,
//!   SIGHUP, `POST /v1/reload`), graceful shutdown; [`app::PluginLoader`]
//!   loads plugins for the daemon and for `check` alike.
//! - [`cli`]: the commands, one module each (`run`, `check`, `plugin run`,
//!   `send`, `tail`, `dead-letter`); `main.rs` is clap → [`cli`].
//!
//! Only what the binary, the integration tests, the benchmarks and the fuzz
//! targets use is public; the modules shown in plain type are private.
//!
//! # Where a new part goes
//!
//! - A source: a folder `sources/NAME/` with a type implementing
//!   [`sources::Source`], started in [`sources::start_all`]. Its settings:
//!   `config/NAME.rs` (types and validation), its table in `config/raw.rs`
//!   (`RawSources`), one call in `config/assemble.rs` and a field of
//!   [`config::Config`]: config is the bottom layer and validates the whole
//!   file at once, every error located, so a source's settings live there
//!   and not in its folder.
//! - A sink: `sinks/NAME.rs` implementing `Sink`, and one arm in
//!   `sinks::open`. Its settings: `config/sink/NAME.rs`, one arm in
//!   `config::SinkConfig` and in `Validator::sinks` (`config/sink/mod.rs`,
//!   which also lists the known types), and its keys in the raw
//!   `[sink.NAME]` table (`RawSink`), refused for the other types.
//! - A kind of guest (as components were, issue 14): one module in
//!   `runtime/guest/` implementing `Guest` and `Instance`, and one arm each
//!   in `runtime::guest::PluginKind` and `runtime::guest::executor`.
//! - A host capability (KV, issue 15): one module in `runtime/host/` with
//!   its state, its rows of the signature table and its `add_to_linker`,
//!   and one entry in `runtime::host::CAPABILITIES`.
//! - A queue (disk, issue 12; JetStream, issue 13): one type implementing
//!   `pipeline::Submitter` and `pipeline::Queue`, chosen in
//!   `Pipeline::start`; workers, sources and HTTP ingest do not change.
//!
//! The internal docs are read with `cargo doc --document-private-items`,
//! so public docs may link to private items.
#![allow(rustdoc::private_intra_doc_links)]

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
