//! The core handler guest (ABI.md, "Handler plugins"): a module exporting
//! `memory`, `switchyard_alloc` and `switchyard_handle`, optionally
//! `_initialize` (run once per instance) and `switchyard_init` (given the
//! plugin's config once per instance). The event is copied into a buffer
//! from `switchyard_alloc`; every pointer it returns is checked.

use switchyard_sdk::abi;
use wasmtime::{InstancePre, Memory, Module, Store, TypedFunc};

use super::{expect_export, Guest, Instance, PluginKind};
use crate::runtime::failure::{BadAbi, HandlerError};
use crate::runtime::host::HostState;

/// Checks a handler's exports (those it must have, and the types of the
/// optional ones).
pub fn check_exports(module: &Module, problems: &mut Vec<String>) {
    expect_export(
        module,
        problems,
        abi::EXPORT_HANDLE,
        "func(i32, i32) -> i32",
        true,
    );
    expect_export(module, problems, abi::EXPORT_ALLOC, "func(i32) -> i32", true);
    expect_export(module, problems, abi::EXPORT_MEMORY, "memory", true);
    expect_export(module, problems, abi::EXPORT_INIT, "func(i32, i32) -> i32", false);
    expect_export(module, problems, abi::EXPORT_INITIALIZE, "func()", false);
}

pub struct Core {
    pre: InstancePre<HostState>,
    /// Whether it exports `_initialize`, run once per instance.
    has_initialize: bool,
    /// Whether it exports `switchyard_init`, given the config per instance.
    has_init: bool,
}

impl Core {
    pub fn new(pre: InstancePre<HostState>, module: &Module) -> Core {
        let has = |n: &str| module.get_export(n).is_some();
        Core {
            pre,
            has_initialize: has(abi::EXPORT_INITIALIZE),
            has_init: has(abi::EXPORT_INIT),
        }
    }

    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<wasmtime::Instance> {
        let instance = self.pre.instantiate(&mut *store)?;
        if self.has_initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?
                .call(&mut *store, ())?;
        }
        Ok(instance)
    }
}

impl Guest for Core {
    fn kind(&self) -> PluginKind {
        PluginKind::Handler
    }

    fn reusable(&self) -> bool {
        true
    }

    fn stdin(&self, _event: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn stdout_emits(&self) -> bool {
        false
    }

    fn trial(&self, store: &mut Store<HostState>, _config: &str) -> wasmtime::Result<()> {
        self.instantiate(store).map(drop)
    }

    /// Instantiates, runs `_initialize` and `switchyard_init`, and looks up
    /// the exports a call needs.
    fn start(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<Box<dyn Instance>> {
        let instance = self.instantiate(store)?;
        let memory = instance
            .get_memory(&mut *store, abi::EXPORT_MEMORY)
            .ok_or_else(|| BadAbi("no exported memory".into()))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, abi::EXPORT_ALLOC)?;
        if self.has_init {
            let init = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_INIT)?;
            let args = pass(store, &alloc, memory, config.as_bytes())?;
            let rc = init.call(&mut *store, args)?;
            if rc != abi::HANDLE_OK {
                return Err(guest_failure(store, abi::EXPORT_INIT, rc));
            }
        }
        let handle = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_HANDLE)?;
        Ok(Box::new(Exports {
            memory,
            alloc,
            handle,
        }))
    }
}

/// The exports a handler call needs, looked up once per instance.
struct Exports {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    handle: TypedFunc<(i32, i32), i32>,
}

impl Instance for Exports {
    /// Copies the event in and calls `switchyard_handle`.
    fn handle(&mut self, store: &mut Store<HostState>, event: &[u8]) -> wasmtime::Result<()> {
        let args = pass(store, &self.alloc, self.memory, event)?;
        let rc = self.handle.call(&mut *store, args)?;
        if rc != abi::HANDLE_OK {
            return Err(guest_failure(store, abi::EXPORT_HANDLE, rc));
        }
        Ok(())
    }

    fn memory_size(&self, store: &Store<HostState>) -> u64 {
        self.memory.data_size(store) as u64
    }
}

/// Copies `bytes` into a buffer from `switchyard_alloc`, checking what it returned.
fn pass(
    store: &mut Store<HostState>,
    alloc: &TypedFunc<i32, i32>,
    memory: Memory,
    bytes: &[u8],
) -> wasmtime::Result<(i32, i32)> {
    let len = i32::try_from(bytes.len())
        .map_err(|_| BadAbi(format!("input of {} bytes is too large", bytes.len())))?;
    let ptr = alloc.call(&mut *store, len)?;
    if ptr == 0 && len > 0 {
        return Err(BadAbi(format!("{}({len}) returned 0", abi::EXPORT_ALLOC)).into());
    }
    memory
        .write(&mut *store, ptr as u32 as usize, bytes)
        .map_err(|_| {
            BadAbi(format!(
                "{}({len}) returned {:#x}, but {len} bytes there are outside linear memory ({} bytes)",
                abi::EXPORT_ALLOC,
                ptr as u32,
                memory.data_size(&*store)
            ))
        })?;
    Ok((ptr, len))
}

/// A non-zero return: `handler_error` with the message passed to `fail`,
/// or one naming the export and its code.
fn guest_failure(store: &Store<HostState>, export: &str, rc: i32) -> wasmtime::Error {
    let msg = store
        .data()
        .fail_message
        .clone()
        .unwrap_or_else(|| format!("{export} returned {rc}"));
    HandlerError(msg).into()
}
