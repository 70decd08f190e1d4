//! One executor per kind of guest, behind [`Guest`]: how its instances are
//! made, what a trial at load runs, and how one event runs in an instance.
//! What every kind shares (stores with fuel, memory cap and deadline, kept
//! instances, outcome classification) is in [`super::invoke`]; the host
//! imports are in [`super::host`].
//!
//! Kinds today (ABI.md): [`core`], a module exporting `switchyard_handle`
//! (the event passed in linear memory), and [`command`], a WASI program
//! with `_start` (the event on stdin). A new kind (components, issue 14:
//! `configure` and `handle` through the `switchyard:handler` world) is one
//! module here implementing [`Guest`] and [`Instance`], plus one arm in
//! [`PluginKind`] and in [`executor`] (or, for a component, where the
//! compiled artifact tells a component from a module).

pub mod command;
pub mod core;

use std::sync::Arc;

use switchyard_sdk::abi;
use wasmtime::{Module, Store};

use super::host::{self, HostState};
use super::Runtime;

/// The kind of guest, as listings (`/v1/plugins`) and `plugin run` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `switchyard_handle`: the event is passed in linear memory.
    Handler,
    /// A WASI program with `_start`: the event is its stdin.
    Command,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Handler => "handler",
            PluginKind::Command => "command",
        }
    }
}

/// How one kind of guest runs: made once per plugin version at load.
pub trait Guest: Send + Sync {
    fn kind(&self) -> PluginKind;

    /// Whether an instance may take more than one event (so that
    /// `instance = "reuse"` applies); otherwise every event gets a fresh one.
    fn reusable(&self) -> bool;

    /// What the guest reads on stdin for `event`, if it reads the event
    /// there; such a guest also gets its config in the environment.
    fn stdin(&self, event: &[u8]) -> Option<Vec<u8>>;

    /// Whether a stdout line that is a JSON object is an emit (else every
    /// stdout line is an `info` log line).
    fn stdout_emits(&self) -> bool;

    /// What every instance runs before its first event, alone: the trial
    /// instantiation at load (issue 16: start functions and initializers
    /// under the deadline), without the plugin's config.
    fn trial(&self, store: &mut Store<HostState>) -> wasmtime::Result<()>;

    /// Instantiates in `store` and readies the instance for events;
    /// `config` is the plugin's config as JSON text.
    fn start(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<Box<dyn Instance>>;
}

/// A started instance of a guest; its store is kept beside it.
pub trait Instance: Send {
    /// Runs one event (its envelope as JSON). `Err` is the failure, to
    /// classify ([`super::failure::classify`]).
    fn handle(&mut self, store: &mut Store<HostState>, event: &[u8]) -> wasmtime::Result<()>;

    /// Bytes of linear memory the instance uses, to decide whether it is
    /// worth keeping.
    fn memory_size(&self, store: &Store<HostState>) -> u64;
}

/// The executor for a compiled module: its kind told by its exports, its
/// exports and imports checked against ABI v1 (every problem listed), and
/// its imports resolved against the runtime's linker. `Err` lists the ABI
/// problems; `Ok` also says whether instances need a WASI context.
pub fn executor(rt: &Runtime, module: &Module) -> Result<(Arc<dyn Guest>, bool), ExecutorError> {
    let mut problems = Vec::new();
    let has = |name: &str| module.get_export(name).is_some();
    let kind = if has(abi::EXPORT_HANDLE) {
        core::check_exports(module, &mut problems);
        PluginKind::Handler
    } else if has(abi::EXPORT_START) {
        command::check_exports(module, &mut problems);
        PluginKind::Command
    } else {
        problems.push(format!(
            "exports neither `{}` (a handler plugin) nor `{}` (a command plugin)",
            abi::EXPORT_HANDLE,
            abi::EXPORT_START
        ));
        PluginKind::Handler
    };
    let needs_wasi = host::check_imports(module, &mut problems);
    if !problems.is_empty() {
        return Err(ExecutorError::Abi(problems));
    }
    let pre = rt.linker.instantiate_pre(module).map_err(ExecutorError::Link)?;
    let guest: Arc<dyn Guest> = match kind {
        PluginKind::Handler => Arc::new(core::Core::new(pre, module)),
        PluginKind::Command => Arc::new(command::Command::new(pre)),
    };
    Ok((guest, needs_wasi))
}

/// Why no executor was made for a module.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// What breaks ABI v1, every problem found.
    #[error("breaks ABI v1: {}", .0.join("; "))]
    Abi(Vec<String>),
    /// The linker could not resolve its imports.
    #[error("{0:#}")]
    Link(wasmtime::Error),
}

/// Checks that `name`, if exported (or always, when `required`), has the
/// type `want` as [`host::describe`] writes it.
fn expect_export(module: &Module, problems: &mut Vec<String>, name: &str, want: &str, required: bool) {
    match module.get_export(name).map(|ty| host::describe(&ty)) {
        Some(got) if got == want => {}
        Some(got) => problems.push(format!("export `{name}` is {got}, expected {want}")),
        None if required => problems.push(format!("missing export `{name}`: {want}")),
        None => {}
    }
}
