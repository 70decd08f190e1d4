//! Write switchyard handler plugins in Rust.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip1` (or `wasm32-wasi`
//! on older toolchains). One function marked [`#[handler]`](handler)
//! receives each event; it can log, emit new events, read its config and
//! fail with a message. The crate implements the plugin ABI v1 described in
//! `ABI.md`; its constants are in [`abi`].
//!
//! ```no_run
//! use serde::Deserialize;
//! use switchyard_sdk::{config_as, emit, handler, info, json, Emit, Error, Event};
//!
//! /// The plugin's `config` table in router.toml.
//! #[derive(Deserialize)]
//! struct Config {
//!     channel: String,
//! }
//!
//! /// The payload of `deals.DealClick`.
//! #[derive(Deserialize)]
//! struct Click {
//!     deal_id: u64,
//!     user_id: u64,
//! }
//!
//! #[handler]
//! fn handle(ev: Event) -> Result<(), Error> {
//!     let config: Config = config_as()?; // a bad config fails with a clear message
//!     let click: Click = ev.data_as()?; // so does a payload of the wrong shape
//!     info!("user {} clicked deal {}", click.user_id, click.deal_id);
//!     if click.user_id == 0 {
//!         return Err(Error::new("anonymous clicks cannot be notified"));
//!     }
//!     emit("deals.ClickSeen", json!({"deal_id": click.deal_id}))?;
//!     Emit::new("deals.Notified")
//!         .data(json!({"deal_id": click.deal_id, "user_id": click.user_id}))
//!         .meta(json!({"channel": config.channel}))
//!         .version("1.0")
//!         .send()?;
//!     Ok(())
//! }
//! ```
//!
//! `Cargo.toml` of the plugin:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! switchyard-sdk = { path = "../plugin-sdk" }
//! serde = { version = "1", features = ["derive"] }
//!
//! [profile.release]
//! opt-level = "s"
//! lto = true
//! panic = "abort"
//! strip = true
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip1` and check it
//! with `switchyard plugin run target/wasm32-wasip1/release/NAME.wasm --event
//! event.json --config '{"channel":"email"}'`.
//!
//! # What the handler sees and does
//!
//! - The handler gets an [`Event`]: `id`, `name`, `version`, `source`,
//!   `time`, `meta` and `data`, with [`Event::data_as`] for typed payloads.
//!   An event that is not valid JSON fails the invocation with a clear
//!   message before the handler runs.
//! - Returning `Err(e)` fails the invocation: the message (`e.to_string()`)
//!   goes to the host and `switchyard_handle` returns 1. The handler's error
//!   type can be [`Error`] or anything that implements `Display`. Emits of
//!   a failed invocation are discarded.
//! - [`emit`] and [`Emit`] route new events; the host's refusals (malformed,
//!   too many, too large) come back as [`EmitError`].
//! - [`trace!`], [`debug!`], [`info!`], [`warn!`] and [`error!`] log like
//!   `format!`; [`fail!`] returns an [`Error`] built the same way.
//! - [`config`] / [`config_as`] read the plugin's `config` from router.toml.
//! - A panic traps the invocation (kind `trap`); its message is logged first.
//!
//! An instance may serve many events (`instance = "reuse"`, the default)
//! or only one: do not rely on state in statics between events. The
//! event and config buffers are freed after use. The exports are generated only on `wasm32`; on other
//! targets [`testing::invoke`] runs a handler natively for unit tests.

#[doc(hidden)]
#[path = "rt.rs"]
pub mod __private;
pub mod abi;
mod config;
mod emit;
mod error;
mod event;
mod host;
mod log;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use config::{config, config_as};
pub use emit::{emit, Emit};
pub use error::{EmitError, Error};
pub use event::Event;
pub use log::{log, Level};
/// Marks the function that handles each event; see the crate example.
pub use switchyard_sdk_macros::handler;

/// `serde_json`, re-exported so plugins can use [`json!`] and [`Value`]
/// without depending on it themselves.
pub use serde_json::{self, json, Map, Value};
