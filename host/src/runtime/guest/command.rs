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

    fn trial(&self, store: &mut Store<HostState>, _config: &str) -> wasmtime::Result<()> {
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

#[cfg(test)]
mod tests {
    use crate::config::{Instance, Limits, PluginSettings};
    use crate::runtime::guest::PluginKind;
    use crate::runtime::{FailureKind, Level, Plugin, Runtime};

    /// Writes an emit to stdout and `boom` to stderr, then exits with `code`.
    fn command(code: i32) -> String {
        format!(
            r#"(module
              (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (data (i32.const 100) "{{\"name\":\"a.B\"}}\n")
              (data (i32.const 200) "boom\n")
              (func (export "_start")
                (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 15))
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
                (i32.store (i32.const 8) (i32.const 200)) (i32.store (i32.const 12) (i32.const 5))
                (drop (call $w (i32.const 2) (i32.const 8) (i32.const 1) (i32.const 16)))
                (call $exit (i32.const {code}))))"#
        )
    }

    fn load(rt: &Runtime, wat: &str) -> Plugin {
        let settings = PluginSettings {
            limits: Limits {
                instance: Instance::Reuse,
                ..Limits::default()
            },
            config: serde_json::json!({}),
        };
        Plugin::from_bytes(rt, "c", "c.wat".as_ref(), wat.as_bytes(), settings).unwrap()
    }

    #[test]
    fn stdout_objects_are_emits_stderr_is_logged_and_every_event_is_fresh() {
        let rt = Runtime::new(1).unwrap();
        let p = load(&rt, &command(0));
        assert_eq!(p.kind, PluginKind::Command);
        assert_eq!(
            p.instance_mode(),
            Instance::Fresh,
            "a command never keeps its instance"
        );
        let inv = p.invoke(b"{}");
        assert_eq!(inv.outcome, Ok(()));
        assert_eq!(inv.emitted.len(), 1);
        assert_eq!(inv.emitted[0].name, "a.B");
        assert_eq!(inv.logs.len(), 1);
        assert_eq!(
            (inv.logs[0].level, inv.logs[0].message.as_str()),
            (Level::Warn, "boom")
        );
    }

    #[test]
    fn a_non_zero_exit_is_a_handler_error_with_the_last_stderr_line() {
        let rt = Runtime::new(1).unwrap();
        let inv = load(&rt, &command(3)).invoke(b"{}");
        let f = inv.outcome.unwrap_err();
        assert_eq!(
            (f.kind, f.message.as_str()),
            (FailureKind::HandlerError, "exit code 3: boom")
        );
        assert!(inv.emitted.is_empty(), "a failed invocation emits nothing");
    }
}
