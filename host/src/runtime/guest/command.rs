//! The command guest (ABI.md, "Command plugins"): a WASI program with
//! `_start`, run once per event in a fresh instance. The event (and a
//! newline) is its stdin, its config is in `SWITCHYARD_CONFIG`; stdout
//! lines that are JSON objects are emits, other output is logged; a
//! non-zero exit is `handler_error` with the `fail` message or the last
//! stderr line.

use switchyard_sdk::abi;
use wasmtime::{InstancePre, Memory, Module, Store, TypedFunc};

use super::{expect_export, Guest, Instance, PluginKind};
use crate::runtime::failure::HandlerError;
use crate::runtime::host::HostState;

/// Checks a command's exports.
pub fn check_exports(module: &Module, problems: &mut Vec<String>) {
    expect_export(module, problems, abi::EXPORT_START, "func()", true);
}

pub struct Command {
    pre: InstancePre<HostState>,
}

impl Command {
    pub fn new(pre: InstancePre<HostState>) -> Command {
        Command { pre }
    }
}

impl Guest for Command {
    fn kind(&self) -> PluginKind {
        PluginKind::Command
    }

    fn reusable(&self) -> bool {
        false
    }

    fn stdin(&self, event: &[u8]) -> Option<Vec<u8>> {
        let mut stdin = Vec::with_capacity(event.len() + 1);
        stdin.extend_from_slice(event);
        stdin.push(b'\n');
        Some(stdin)
    }

    fn stdout_emits(&self) -> bool {
        true
    }

    fn trial(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
        self.pre.instantiate(&mut *store).map(drop)
    }

    fn start(&self, store: &mut Store<HostState>, _config: &str) -> wasmtime::Result<Box<dyn Instance>> {
        let instance = self.pre.instantiate(&mut *store)?;
        let start = instance.get_typed_func::<(), ()>(&mut *store, abi::EXPORT_START)?;
        let memory = instance.get_memory(&mut *store, abi::EXPORT_MEMORY);
        Ok(Box::new(Started { start, memory }))
    }
}

/// An instantiated command, before `_start`.
struct Started {
    start: TypedFunc<(), ()>,
    /// Its exported memory, if any (a command need not export one).
    memory: Option<Memory>,
}

impl Instance for Started {
    /// Runs `_start`; the event is already on stdin.
    fn handle(&mut self, store: &mut Store<HostState>, _event: &[u8]) -> wasmtime::Result<()> {
        let Err(e) = self.start.call(&mut *store, ()) else {
            return Ok(());
        };
        let Some(code) = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|exit| exit.0) else {
            return Err(e);
        };
        if code == 0 {
            return Ok(());
        }
        let state = store.data();
        let why = match &state.fail_message {
            Some(msg) => msg.clone(),
            None => state
                .wasi
                .as_ref()
                .and_then(|w| w.stdio.last_err_line())
                .unwrap_or_else(|| "no message on stderr".into()),
        };
        Err(HandlerError(format!("exit code {code}: {why}")).into())
    }

    fn memory_size(&self, store: &Store<HostState>) -> u64 {
        self.memory.map_or(0, |m| m.data_size(store) as u64)
    }
}
