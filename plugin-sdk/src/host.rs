//! The host imports (module `switchyard`). On `wasm32` they are the real
//! imports; elsewhere they record into a thread-local capture that
//! [`crate::testing`] reads, so handlers can be unit-tested natively.

use crate::Level;

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "switchyard")]
    extern "C" {
        #[link_name = "log"]
        fn host_log(level: i32, ptr: i32, len: i32);
        #[link_name = "emit"]
        fn host_emit(ptr: i32, len: i32) -> i32;
        #[link_name = "fail"]
        fn host_fail(ptr: i32, len: i32);
    }

    // On wasm32 pointers and `usize` are 32 bits, as the ABI's i32 values.
    pub fn log(level: crate::Level, message: &[u8]) {
        let (ptr, len) = (message.as_ptr() as i32, message.len() as i32);
        unsafe { host_log(level.code(), ptr, len) }
    }

    pub fn emit(json: &[u8]) -> i32 {
        unsafe { host_emit(json.as_ptr() as i32, json.len() as i32) }
    }

    pub fn fail(message: &[u8]) {
        unsafe { host_fail(message.as_ptr() as i32, message.len() as i32) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;

    use serde_json::Value;

    use crate::{abi, Level};

    /// What a handler did, recorded instead of calling a host.
    #[derive(Default)]
    pub struct Capture {
        pub emits: Vec<Value>,
        pub logs: Vec<(Level, String)>,
        pub failure: Option<String>,
    }

    thread_local! {
        pub static CAPTURE: RefCell<Capture> = RefCell::new(Capture::default());
    }

    pub fn log(level: Level, message: &[u8]) {
        let message = String::from_utf8_lossy(message).into_owned();
        CAPTURE.with(|c| c.borrow_mut().logs.push((level, message)));
    }

    /// Accepts what the real host accepts: a JSON object with a string name.
    pub fn emit(json: &[u8]) -> i32 {
        match serde_json::from_slice::<Value>(json) {
            Ok(event) if event.get("name").map_or(false, Value::is_string) => {
                CAPTURE.with(|c| c.borrow_mut().emits.push(event));
                abi::emit::OK
            }
            _ => abi::emit::MALFORMED,
        }
    }

    pub fn fail(message: &[u8]) {
        let message = String::from_utf8_lossy(message).into_owned();
        CAPTURE.with(|c| c.borrow_mut().failure = Some(message));
    }
}

pub(crate) fn log(level: Level, message: &str) {
    imp::log(level, message.as_bytes());
}

pub(crate) fn emit(json: &[u8]) -> i32 {
    imp::emit(json)
}

pub(crate) fn fail(message: &str) {
    imp::fail(message.as_bytes());
}
