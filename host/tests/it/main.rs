//! Integration tests: the real daemon on a loopback port, real HTTP, real
//! wasm modules (inline WAT), real files.

mod cli;
mod conformance;
mod failures;
mod fixtures;
mod harness;
mod http_ingest;
mod routing;
mod shutdown;
