//! The `fail` capability: `switchyard::fail(ptr, len)` sets the message of
//! a handler that then returns non-zero (or a command that exits non-zero):
//! the `handler_error` message in dead letters and `?wait=true` answers
//! (ABI.md, "Host imports").

use switchyard_sdk::abi;
use wasmtime::{Caller, Linker};

use super::{message, with_guest_bytes, Capability, HostState, Import};

const FAIL: Import = Import {
    module: abi::IMPORT_MODULE,
    name: abi::IMPORT_FAIL,
    params: &["i32", "i32"],
    results: &[],
};

pub const CAPABILITY: Capability = Capability {
    name: "fail",
    imports: &[FAIL],
    add_to_linker,
};

fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        FAIL.module,
        FAIL.name,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "fail", ptr, len, |bytes, state| {
                state.fail_message = Some(message(bytes))
            })
        },
    )?;
    Ok(())
}
