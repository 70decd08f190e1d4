//! The component guest (`plugin-sdk/wit/switchyard.wit`): a WASI 0.2
//! component targeting the world `switchyard:handler/handler@1.0.0`. Each
//! instance is given the plugin's config once through `configure`, then
//! each event as the world's `event` record through `handle`; an `Err` from
//! `handle` is `handler_error` with its message, an `Err` from `configure`
//! fails the load (the trial at load runs it with the plugin's config).
//!
//! A component that does not target the world is refused at load, every
//! problem listed: a missing or mistyped export, an import the host does
//! not provide (only the world's `host` interface and WASI 0.2 are).

use std::sync::Arc;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;
use wasmtime::Store;

use super::{ExecutorError, Guest, Instance, PluginKind};
use crate::runtime::failure::{BadAbi, HandlerError};
use crate::runtime::host::world::{event_record, Handler, HandlerPre};
use crate::runtime::host::HostState;
use crate::runtime::Runtime;

/// The world's exports, with their WIT types for messages.
const EXPORTS: [(&str, &str); 2] = [
    ("configure", "func(config: string) -> result<_, string>"),
    ("handle", "func(event: event) -> result<_, string>"),
];

/// Import names the host provides: the world's interfaces, and WASI 0.2.
const PROVIDED: [&str; 2] = ["switchyard:handler/", "wasi:"];

/// The executor for a compiled component: its exports and imports checked
/// against the world (every problem listed), its imports resolved against
/// the runtime's component linker. `Ok` also says whether instances need a
/// WASI context (it imports a `wasi:` interface).
pub fn executor(rt: &Runtime, component: &Component) -> Result<(Arc<dyn Guest>, bool), ExecutorError> {
    let ty = component.component_type();
    let engine = rt.engine();
    let mut problems = Vec::new();
    for (name, want) in EXPORTS {
        match ty.get_export(engine, name).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(_)) => {}
            Some(_) => problems.push(format!("export `{name}` is not a function: expected {want}")),
            None => problems.push(format!("missing export `{name}`: {want}")),
        }
    }
    let mut needs_wasi = false;
    for (name, _) in ty.imports(engine) {
        needs_wasi |= name.starts_with("wasi:");
        if !PROVIDED.iter().any(|p| name.starts_with(p)) {
            problems.push(format!(
                "imports `{name}`, which the host does not provide (only `switchyard:handler/host` and WASI 0.2)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ExecutorError::World(problems));
    }
    // What names alone cannot tell: a WASI interface the host does not
    // link (wasi:http), or an export or import of another type.
    let pre = rt
        .component_linker
        .instantiate_pre(component)
        .map_err(|e| ExecutorError::World(vec![format!("{e:#}")]))?;
    let pre = HandlerPre::new(pre).map_err(|e| ExecutorError::World(vec![format!("{e:#}")]))?;
    Ok((Arc::new(ComponentGuest { pre }), needs_wasi))
}

pub struct ComponentGuest {
    pre: HandlerPre<HostState>,
}

impl ComponentGuest {
    /// Instantiates and calls `configure`; its `Err` is a handler error.
    fn configured(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<Handler> {
        let handler = self.pre.instantiate(&mut *store)?;
        handler
            .call_configure(&mut *store, config)?
            .map_err(|msg| HandlerError(format!("configure failed: {msg}")))?;
        Ok(handler)
    }
}

impl Guest for ComponentGuest {
    fn kind(&self) -> PluginKind {
        PluginKind::Component
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

    /// Instantiates and runs `configure` with the plugin's config: a
    /// config the component refuses fails the load.
    fn trial(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<()> {
        self.configured(store, config).map(drop)
    }

    fn start(&self, store: &mut Store<HostState>, config: &str) -> wasmtime::Result<Box<dyn Instance>> {
        Ok(Box::new(Configured {
            handler: self.configured(store, config)?,
        }))
    }
}

/// An instance that has been given its config.
struct Configured {
    handler: Handler,
}

impl Instance for Configured {
    /// Calls `handle` with the envelope as the world's `event` record.
    fn handle(&mut self, store: &mut Store<HostState>, event: &[u8]) -> wasmtime::Result<()> {
        let record = event_record(event).map_err(|e| BadAbi(format!("the event is not an envelope: {e}")))?;
        self.handler
            .call_handle(&mut *store, &record)?
            .map_err(|msg| HandlerError(msg).into())
    }

    /// A component has no one exported memory: its largest linear memory.
    fn memory_size(&self, store: &Store<HostState>) -> u64 {
        store.data().memory_cap.largest as u64
    }
}

#[cfg(test)]
mod tests;
