//! What a guest can reach: the per-invocation host state and the host
//! imports, one module per capability, in the manner of wasmtime's
//! `crates/wasi` (each capability has its own state, its own
//! `add_to_linker` and its own rows of the signature table):
//! - [`log`]: `switchyard::log`, lines kept per invocation, forwarded to
//!   the daemon's log within [`log_limit`];
//! - [`emit`]: `switchyard::emit`, validated events and the cascade budget;
//! - [`fail`]: `switchyard::fail`, the message of a failed invocation;
//! - [`wasi`]: WASI preview 1 and 0.2 with nothing granted (stdio
//!   captured, the deadline-bounded [`poll`]);
//! - [`world`]: the component world's `host` interface, through `log` and
//!   `emit` above.
//!
//! [`CAPABILITIES`] lists them once: the linker is built from it and the
//! load-time import check reads the same rows, so a guest is refused at load
//! exactly when it imports what the linker does not provide. A new
//! capability (KV, issue 15) is one module here plus one row of
//! [`CAPABILITIES`]. The contract is `plugin-sdk/ABI.md`; every pointer and
//! length from the guest is checked ([`with_guest_bytes`]).

pub mod emit;
pub mod fail;
pub mod log;
pub mod log_limit;
pub mod poll;
pub mod wasi;
pub mod world;

use std::time::Instant;

use switchyard_sdk::abi;
use wasmtime::{Caller, Extern, ExternType, Linker, Module, ValType};

use super::failure::BadAbi;
use super::limits::{Deadline, MemoryCap};
use crate::config::Limits;
pub use emit::{CascadeBudget, Emitted, Refused};
pub use log::{Level, LogLine};

/// Everything one invocation's guest can touch through imports, grouped by
/// capability.
pub struct HostState {
    /// WASI with nothing granted; absent when the module imports no WASI.
    pub wasi: Option<wasi::WasiState>,
    pub memory_cap: MemoryCap,
    pub limits: Limits,
    /// The current call's deadline; see [`Deadline`].
    pub deadline: Deadline,
    /// Origin of the guest's WASI monotonic clock, so that `poll_oneoff`
    /// can turn an absolute monotonic time into a wait.
    pub clock_origin: Instant,
    /// Lines logged in this call.
    pub log: log::LogState,
    /// Events emitted in this call, routed only if it succeeds.
    pub emit: emit::EmitState,
    /// Last message passed to `fail`.
    pub fail_message: Option<String>,
}

impl HostState {
    /// The state of a new instance: `limits` are the plugin's, the deadline
    /// starts now, `clock_origin` is the guest's monotonic zero.
    pub fn new(wasi: Option<wasi::WasiState>, limits: Limits, clock_origin: Instant) -> HostState {
        HostState {
            wasi,
            deadline: Deadline::starting_now(limits.timeout),
            clock_origin,
            memory_cap: MemoryCap {
                cap: usize::try_from(limits.memory).unwrap_or(usize::MAX),
                hit: None,
                largest: 0,
            },
            limits,
            log: log::LogState::default(),
            emit: emit::EmitState::default(),
            fail_message: None,
        }
    }
}

/// One host function a core module may import, as the linker provides it.
#[derive(Debug)]
pub struct Import {
    pub module: &'static str,
    pub name: &'static str,
    /// Parameter and result types, in wasm's names (`i32`, `i64`).
    pub params: &'static [&'static str],
    pub results: &'static [&'static str],
}

impl Import {
    /// The type as the load check and its messages write it:
    /// `func(i32, i32) -> i32`.
    pub fn describe(&self) -> String {
        signature(self.params.join(", "), self.results.join(", "))
    }
}

/// One capability: the functions it provides and how to link them.
pub struct Capability {
    /// What it is, for errors while linking.
    pub name: &'static str,
    /// Every function it adds to the `switchyard` module; empty for
    /// capabilities that provide a whole module of their own (WASI).
    pub imports: &'static [Import],
    pub add_to_linker: fn(&mut Linker<HostState>) -> wasmtime::Result<()>,
}

/// Every capability of the `switchyard` import module, in the order of
/// ABI.md; WASI is linked beside them by [`add_to_linker`].
pub const CAPABILITIES: &[Capability] = &[log::CAPABILITY, emit::CAPABILITY, fail::CAPABILITY];

/// Links WASI preview 1 (with the deadline-bounded `poll_oneoff`) and every
/// row of [`CAPABILITIES`].
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    wasi::add_to_linker(linker)?;
    for c in CAPABILITIES {
        (c.add_to_linker)(linker)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot link the switchyard {} import", c.name))?;
    }
    Ok(())
}

/// Links what a component may import: WASI 0.2 (with the
/// deadline-bounded waits) and the world's `host` interface.
pub fn add_to_component_linker(linker: &mut wasmtime::component::Linker<HostState>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    wasi::add_to_component_linker(linker)?;
    world::add_to_linker(linker)
        .map_err(anyhow::Error::from)
        .context("cannot link the switchyard:handler world")
}

/// The `switchyard` imports alone (no WASI): for harnesses that call the
/// host functions directly, such as the `guest_boundary` fuzz target.
pub fn add_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    CAPABILITIES.iter().try_for_each(|c| (c.add_to_linker)(linker))
}

fn imports() -> impl Iterator<Item = &'static Import> {
    CAPABILITIES.iter().flat_map(|c| c.imports)
}

/// Checks a module's imports against [`CAPABILITIES`] and WASI, adding a
/// line to `problems` for each import the host does not provide; returns
/// whether it imports WASI (so each instance needs a WASI context).
pub fn check_imports(module: &Module, problems: &mut Vec<String>) -> bool {
    let mut needs_wasi = false;
    for import in module.imports() {
        let ty = describe(&import.ty());
        match (import.module(), import.name()) {
            (abi::IMPORT_MODULE, name) => {
                if !imports().any(|i| i.name == name && i.describe() == ty) {
                    let provided: Vec<String> = imports()
                        .map(|i| format!("{}: {}", i.name, i.describe()))
                        .collect();
                    problems.push(format!(
                        "imports `switchyard::{name}` as {ty}; the host provides {}",
                        provided.join(", ")
                    ));
                }
            }
            (wasi::MODULE, _) => needs_wasi = true,
            (m, name) => problems.push(format!(
                "imports `{m}::{name}`, which the host does not provide (only `switchyard` and `{}`)",
                wasi::MODULE
            )),
        }
    }
    needs_wasi
}

fn signature(params: String, results: String) -> String {
    if results.is_empty() {
        format!("func({params})")
    } else {
        format!("func({params}) -> {results}")
    }
}

/// An import's or export's type as messages write it: `func(i32) -> i32`,
/// `memory`, `table`, `global`, `tag`.
pub fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            signature(list(&mut f.params()), list(&mut f.results()))
        }
        ExternType::Memory(_) => "memory".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// Checks `[ptr, ptr+len)` against the guest's memory and hands the bytes and
/// the host state to `f`; a range outside memory is `bad_abi`.
pub fn with_guest_bytes<R>(
    caller: &mut Caller<'_, HostState>,
    import: &str,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> wasmtime::Result<R> {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::EXPORT_MEMORY) else {
        return Err(BadAbi(format!("{import}: the module exports no memory named \"memory\"")).into());
    };
    let (data, state) = memory.data_and_store_mut(caller);
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let bytes = start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| {
            BadAbi(format!(
                "{import}: range of {len} bytes at {start:#x} is outside linear memory ({} bytes)",
                data.len()
            ))
        })?;
    Ok(f(bytes, state))
}

/// A guest's message: at most [`abi::MAX_MESSAGE_BYTES`], invalid UTF-8 replaced.
pub fn message(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(abi::MAX_MESSAGE_BYTES)];
    String::from_utf8_lossy(cut).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The linker and the load check read one table: a module importing
    /// every row, with the row's type, links; one with any other type is
    /// refused at load naming what the host provides.
    #[test]
    fn every_row_of_the_table_is_linked_with_its_type() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).unwrap();
        let wat_ty = |ps: &[&str], rs: &[&str]| {
            let p: String = ps.iter().map(|t| format!(" {t}")).collect();
            let r: String = rs.iter().map(|t| format!(" {t}")).collect();
            format!("(param{p}) (result{r})")
        };
        let rows: String = imports()
            .map(|i| {
                format!(
                    "(import \"{}\" \"{}\" (func {}))\n",
                    i.module,
                    i.name,
                    wat_ty(i.params, i.results)
                )
            })
            .collect();
        assert!(imports().count() >= 3, "{rows}");
        let module = Module::new(&engine, format!("(module {rows})")).unwrap();
        linker.instantiate_pre(&module).unwrap();
        let mut problems = Vec::new();
        assert!(!check_imports(&module, &mut problems));
        assert_eq!(problems, Vec::<String>::new());

        let bad = Module::new(
            &engine,
            r#"(module (import "switchyard" "log" (func (param i32))))"#,
        )
        .unwrap();
        assert!(linker.instantiate_pre(&bad).is_err());
        check_imports(&bad, &mut problems);
        assert_eq!(
            problems,
            [
                "imports `switchyard::log` as func(i32); the host provides log: func(i32, i32, i32), \
              emit: func(i32, i32) -> i32, fail: func(i32, i32)"
            ]
        );
    }
}
