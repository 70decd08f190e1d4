//! `reshape`: parses each event (a `deals.DealClick`-shaped envelope) and
//! emits a reshaped `deals.ClickReshaped`. Written against the raw ABI v1
//! (see plugin-sdk/ABI.md) so that the benchmarks compare exactly the same
//! JSON code in wasm and native: the logic is in `reshape.rs`.

mod reshape;

pub use reshape::reshape;

/// The ABI exports and imports exist only in the wasm build; natively the
/// crate is `reshape` and its tests.
#[cfg(target_arch = "wasm32")]
mod abi {
    use std::alloc::{alloc, dealloc, Layout};

    use super::reshape;

    #[link(wasm_import_module = "switchyard")]
    extern "C" {
        fn emit(ptr: *const u8, len: usize) -> i32;
        fn fail(ptr: *const u8, len: usize);
    }

    /// `len` bytes for the host to fill; 0 if they cannot be had.
    #[no_mangle]
    pub extern "C" fn switchyard_alloc(len: i32) -> i32 {
        match Layout::array::<u8>(len.max(1) as usize) {
            Ok(layout) => unsafe { alloc(layout) as i32 },
            Err(_) => 0,
        }
    }

    #[no_mangle]
    pub extern "C" fn switchyard_handle(ptr: i32, len: i32) -> i32 {
        let len = len as usize;
        // SAFETY: the host filled `len` bytes at `ptr`, a buffer from `switchyard_alloc(len)`.
        let input = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
        let rc = match reshape::reshape(input) {
            Ok(out) => match unsafe { emit(out.as_ptr(), out.len()) } {
                0 => 0,
                _ => 1,
            },
            Err(e) => {
                let msg = format!("not a click event: {}", e);
                unsafe { fail(msg.as_ptr(), msg.len()) };
                1
            }
        };
        // SAFETY: allocated by `switchyard_alloc` with this layout; not used after.
        unsafe { dealloc(ptr as *mut u8, Layout::array::<u8>(len.max(1)).unwrap()) };
        rc
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    #[test]
    fn picks_the_click_out_of_the_envelope() {
        let ev = json!({"id": "01J", "name": "deals.DealClick", "time": "2026-11-26T10:00:00Z",
            "source": "http", "meta": {"host": "web-3"}, "data": {"deal_id": 7, "user_id": 42, "x": [1]}});
        let out: Value = serde_json::from_slice(&super::reshape(ev.to_string().as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"name": "deals.ClickReshaped",
                "data": {"deal": 7, "user": 42, "clicked_at": "2026-11-26T10:00:00Z", "host": "web-3"},
                "meta": {"reshaped_from": "01J", "original_name": "deals.DealClick"}})
        );
    }

    #[test]
    fn refuses_an_event_without_a_click() {
        let err = super::reshape(br#"{"id":"1","name":"a","time":"t","data":{}}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `deal_id`"), "{}", err);
    }
}
