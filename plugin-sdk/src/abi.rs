//! The plugin ABI, version 1: names, codes and limits shared by the host and
//! every guest binding. `ABI.md` beside this crate is the normative text.

/// The ABI version this crate describes.
pub const ABI_VERSION: u32 = 1;

/// Module name of the host imports.
pub const IMPORT_MODULE: &str = "switchyard";
/// `log(level: i32, ptr: i32, len: i32)`
pub const IMPORT_LOG: &str = "log";
/// `emit(ptr: i32, len: i32) -> i32`
pub const IMPORT_EMIT: &str = "emit";
/// `fail(ptr: i32, len: i32)`
pub const IMPORT_FAIL: &str = "fail";

/// The guest's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `switchyard_alloc(len: i32) -> i32`
pub const EXPORT_ALLOC: &str = "switchyard_alloc";
/// `switchyard_handle(ptr: i32, len: i32) -> i32`
pub const EXPORT_HANDLE: &str = "switchyard_handle";
/// Optional `switchyard_init(ptr: i32, len: i32) -> i32`
pub const EXPORT_INIT: &str = "switchyard_init";
/// Optional WASI reactor start-up, `_initialize()`.
pub const EXPORT_INITIALIZE: &str = "_initialize";
/// WASI command entry point, `_start()`: marks a command plugin.
pub const EXPORT_START: &str = "_start";

/// Environment variable through which a command plugin receives its config.
pub const COMMAND_CONFIG_ENV: &str = "SWITCHYARD_CONFIG";

/// `switchyard_handle` / `switchyard_init` return value for success.
pub const HANDLE_OK: i32 = 0;

/// `emit` return codes.
pub mod emit {
    /// The event was accepted and will be routed if the invocation succeeds.
    pub const OK: i32 = 0;
    /// Not a JSON object with a valid `name`, or not UTF-8.
    pub const MALFORMED: i32 = -1;
    /// Over the per-invocation event count limit.
    pub const TOO_MANY: i32 = -2;
    /// Over the per-invocation byte limit.
    pub const TOO_LARGE: i32 = -3;
    /// Over the root event's cascade budget (`[router] max_cascade` events
    /// or `max_cascade_bytes` bytes caused in all, issue 16): nothing of the
    /// event is kept. ABI 1.x minor addition; older hosts never return it.
    pub const CASCADE_LIMIT: i32 = -4;
}

/// `log` levels.
pub mod level {
    pub const TRACE: i32 = 0;
    pub const DEBUG: i32 = 1;
    pub const INFO: i32 = 2;
    pub const WARN: i32 = 3;
    pub const ERROR: i32 = 4;
}

/// Longest `log` or `fail` message kept; longer ones are truncated.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Failure kinds of an invocation, named the same everywhere.
pub mod kind {
    pub const TRAP: &str = "trap";
    pub const OUT_OF_FUEL: &str = "out_of_fuel";
    pub const TIMEOUT: &str = "timeout";
    pub const MEMORY_LIMIT: &str = "memory_limit";
    pub const STACK_OVERFLOW: &str = "stack_overflow";
    pub const HANDLER_ERROR: &str = "handler_error";
    pub const BAD_ABI: &str = "bad_abi";
}
