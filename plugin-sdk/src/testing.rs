//! Run a handler natively, as the host would, and look at what it did.
//! Only on non-wasm targets: `cargo test` of a plugin crate on the machine
//! that builds it.
//!
//! ```
//! use switchyard_sdk::{emit, json, testing, Error, Event};
//!
//! fn handle(ev: Event) -> Result<(), Error> {
//!     emit("app.Seen", json!({"from": ev.name}))?;
//!     Ok(())
//! }
//!
//! let out = testing::invoke(handle, json!({}), r#"{"name":"app.Ping"}"#);
//! assert!(out.ok());
//! assert_eq!(out.emits[0]["data"]["from"], "app.Ping");
//! ```

use std::fmt::Display;

use serde_json::Value;

use crate::__private as rt;
use crate::host::imp::{Capture, CAPTURE};
use crate::{Event, Level};

/// What one invocation did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What `switchyard_init` and `switchyard_handle` returned: 0 is success.
    pub status: i32,
    /// The last message passed to `fail`.
    pub failure: Option<String>,
    /// The emitted events, as passed to `emit`.
    pub emits: Vec<Value>,
    /// The log lines, with their levels.
    pub logs: Vec<(Level, String)>,
}

impl Outcome {
    /// True when the invocation succeeded.
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// Runs `switchyard_init` with `config`, then `switchyard_handle` with the
/// event JSON `event`, as one host invocation does.
pub fn invoke<E: Display>(
    handler: impl FnOnce(Event) -> Result<(), E>,
    config: Value,
    event: &str,
) -> Outcome {
    CAPTURE.with(|c| *c.borrow_mut() = Capture::default());
    let config = serde_json::to_vec(&config).expect("a Value serializes");
    let mut status = rt::init_from_json(&config);
    if status == 0 {
        status = rt::handle_event(Event::from_json(event.as_bytes()), handler);
    }
    let capture = CAPTURE.with(|c| std::mem::take(&mut *c.borrow_mut()));
    Outcome {
        status,
        failure: capture.failure,
        emits: capture.emits,
        logs: capture.logs,
    }
}
