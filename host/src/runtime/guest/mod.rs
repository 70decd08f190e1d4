//! One executor per kind of guest, behind [`Guest`]: how its instances are
//! made, what a trial at load runs, and how one event runs in an instance.
//! What every kind shares (stores with fuel, memory cap and deadline, kept
//! instances, outcome classification) is in [`super::invoke`]; the host
//! imports are in [`super::host`].
//!
//! Kinds today: [`core`], a module exporting `switchyard_handle` (the
//! event passed in linear memory, ABI.md), [`command`], a WASI program with
//! `_start` (the event on stdin, ABI.md), and [`component`], a WASI 0.2
//! component of the `switchyard:handler` world (`configure` and `handle`,
//! `plugin-sdk/wit/switchyard.wit`). A new kind is one module here
//! implementing [`Guest`] and [`Instance`], plus one arm in [`PluginKind`]
//! and in [`executor`].

pub mod command;
pub mod component;
pub mod core;

use std::sync::Arc;

use switchyard_sdk::abi;
use wasmtime::{Module, Store};

use super::artifact::Artifact;
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
    /// A component of the `switchyard:handler` world: the event is a record.
    Component,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Handler => "handler",
            PluginKind::Command => "command",
            PluginKind::Component => "component",
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
    /// under the deadline). `config` is the plugin's config as JSON text,
    /// for a kind whose config is part of its start (a component's
    /// `configure`); a core module is tried without it.
    fn trial(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<()>;

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

/// The executor for a compiled plugin: a component's is
/// [`component::executor`]; a module's kind is told by its exports, its
/// exports and imports checked against ABI v1 (every problem listed), and
/// its imports resolved against the runtime's linker. `Err` lists the
/// problems; `Ok` also says whether instances need a WASI context.
pub fn executor(rt: &Runtime, artifact: &Artifact) -> Result<(Arc<dyn Guest>, bool), ExecutorError> {
    let module = match artifact {
        Artifact::Module(module) => module,
        Artifact::Component(component) => return component::executor(rt, component),
    };
    let mut problems = Vec::new();
    let has = |name: &str| module.get_export(name).is_some();
    let is_command = if has(abi::EXPORT_HANDLE) {
        core::check_exports(module, &mut problems);
        false
    } else if has(abi::EXPORT_START) {
        command::check_exports(module, &mut problems);
        true
    } else {
        problems.push(format!(
            "exports neither `{}` (a handler plugin) nor `{}` (a command plugin)",
            abi::EXPORT_HANDLE,
            abi::EXPORT_START
        ));
        false
    };
    let needs_wasi = host::check_imports(module, &mut problems);
    if !problems.is_empty() {
        return Err(ExecutorError::Abi(problems));
    }
    let pre = rt.linker.instantiate_pre(module).map_err(ExecutorError::Link)?;
    let guest: Arc<dyn Guest> = if is_command {
        Arc::new(command::Command::new(pre))
    } else {
        Arc::new(core::Core::new(pre, module))
    };
    Ok((guest, needs_wasi))
}

/// Why no executor was made for a module.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// What breaks ABI v1, every problem found.
    #[error("breaks ABI v1: {}", .0.join("; "))]
    Abi(Vec<String>),
    /// What keeps a component from being a handler of the world, every
    /// problem found.
    #[error("does not target the world `{}`: {}", host::world::WORLD, .0.join("; "))]
    World(Vec<String>),
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
