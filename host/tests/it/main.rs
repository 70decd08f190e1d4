//! Integration tests: the real daemon on a loopback port, real HTTP, real
//! wasm modules (inline WAT), real files.

#[macro_use]
mod fixtures;

mod access;
mod bounds;
mod budgets;
mod cli;
mod client_cli;
mod closed_stdout;
mod components;
mod config_errors;
mod config_paths;
mod conformance;
mod disk_queue;
mod failures;
mod faults;
mod fsync_faults;
mod go_reactor;
mod harness;
mod http_ingest;
mod ingest_edges;
mod layers;
mod loading;
mod metrics;
mod protocol_edges;
mod reload;
mod routing;
mod send_timeout;
mod shutdown;
mod stream;
mod tail;
mod tail_start_at;
mod webhook;
