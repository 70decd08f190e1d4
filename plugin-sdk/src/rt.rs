//! What the `#[handler]` expansion calls. Not a public API.

use std::fmt::Display;

use crate::{host, Error, Event};

/// Type check for the annotated function (on every target).
pub fn check_handler<E: Display, F: FnOnce(Event) -> Result<(), E>>(_handler: F) {}

/// `switchyard_init` once the input is read: stores the config for
/// [`crate::config`]. Returns the ABI result.
pub fn init_from_json(json: &[u8]) -> i32 {
    install_panic_hook();
    match serde_json::from_slice(json) {
        Ok(config) => {
            crate::config::set(config);
            0
        }
        Err(e) => {
            host::fail(&format!("malformed plugin config JSON: {}", e));
            1
        }
    }
}

/// `switchyard_handle` once the input is parsed: runs the handler and
/// reports its error. Returns the ABI result.
pub fn handle_event<E: Display>(
    event: Result<Event, Error>,
    handler: impl FnOnce(Event) -> Result<(), E>,
) -> i32 {
    install_panic_hook();
    let result = match event {
        Ok(event) => handler(event).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            host::fail(&message);
            1
        }
    }
}

/// A panic still traps (plugins build with `panic = "abort"`), but its
/// message and location reach the host first, as an error log line and as
/// the failure message.
#[cfg(target_arch = "wasm32")]
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let message = info.to_string();
            host::log(crate::Level::Error, &message);
            host::fail(&message);
        }))
    });
}

/// Natively a panic is an ordinary test failure.
#[cfg(not(target_arch = "wasm32"))]
fn install_panic_hook() {}

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::{alloc as raw_alloc, Layout};
    use std::ptr::{slice_from_raw_parts_mut, NonNull};

    use crate::Event;

    /// `switchyard_alloc`: `len` bytes for the host to fill, or 0 when the
    /// allocation failed. `init` and `handle` free the buffer after use.
    pub fn alloc(len: i32) -> i32 {
        let len = len as u32 as usize;
        if len == 0 {
            return NonNull::<u8>::dangling().as_ptr() as i32;
        }
        match Layout::array::<u8>(len) {
            Ok(layout) => unsafe { raw_alloc(layout) as i32 },
            Err(_) => 0,
        }
    }

    /// Takes back ownership of a buffer from [`alloc`].
    ///
    /// # Safety
    /// `ptr` must come from `alloc(len)` and not have been taken before.
    unsafe fn take(ptr: i32, len: i32) -> Box<[u8]> {
        let len = len as u32 as usize;
        let ptr = if len == 0 {
            NonNull::<u8>::dangling().as_ptr()
        } else {
            ptr as u32 as usize as *mut u8
        };
        Box::from_raw(slice_from_raw_parts_mut(ptr, len))
    }

    /// `switchyard_init`.
    ///
    /// # Safety
    /// `(ptr, len)` is a buffer from [`alloc`], as the ABI guarantees.
    pub unsafe fn init(ptr: i32, len: i32) -> i32 {
        super::init_from_json(&take(ptr, len))
    }

    /// `switchyard_handle`. The input is freed before the handler runs.
    ///
    /// # Safety
    /// `(ptr, len)` is a buffer from [`alloc`], as the ABI guarantees.
    pub unsafe fn handle<E: std::fmt::Display>(
        ptr: i32,
        len: i32,
        handler: impl FnOnce(Event) -> Result<(), E>,
    ) -> i32 {
        let input = take(ptr, len);
        let event = Event::from_json(&input);
        drop(input);
        super::handle_event(event, handler)
    }
}

/// The attribute refuses what cannot be a handler:
///
/// ```compile_fail
/// #[switchyard_sdk::handler]
/// async fn handle(ev: switchyard_sdk::Event) -> Result<(), switchyard_sdk::Error> { Ok(()) }
/// ```
///
/// ```compile_fail
/// #[switchyard_sdk::handler(init)]
/// fn handle(ev: switchyard_sdk::Event) -> Result<(), switchyard_sdk::Error> { Ok(()) }
/// ```
///
/// ```compile_fail
/// #[switchyard_sdk::handler]
/// fn handle(ev: &str) -> Result<(), switchyard_sdk::Error> { Ok(()) }
/// ```
///
/// ```compile_fail
/// #[switchyard_sdk::handler]
/// struct Handler;
/// ```
#[allow(dead_code)]
fn refused_handlers() {}
