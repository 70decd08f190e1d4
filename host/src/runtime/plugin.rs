//! A plugin: compiled once (module + prepared instance), checked against
//! ABI v1 at load, and invoked in a fresh store for every event.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard_sdk::abi;
use wasmtime::{ExternType, InstancePre, Memory, Module, Store, TypedFunc, ValType};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::WasiCtxBuilder;

use super::failure::{self, BadAbi, Failure, HandlerError};
use super::host::{Emitted, HostState, Level, LogLine};
use super::Runtime;
use crate::config::{Limits, PluginSettings};

/// Bytes of stdout and of stderr kept per invocation.
const MAX_STDIO: usize = 1 << 20;
const WASI_MODULE: &str = "wasi_snapshot_preview1";

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

/// Why a plugin file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {name:?} ({path}): cannot read: {source}")]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin {name:?} ({path}): does not compile: {message}")]
    Compile {
        name: String,
        path: PathBuf,
        message: String,
    },
    #[error("plugin {name:?} ({path}): breaks ABI v1: {}", problems.join("; "))]
    Abi {
        name: String,
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("plugin {name:?} ({path}): cannot be instantiated: {message}")]
    Instantiate {
        name: String,
        path: PathBuf,
        message: String,
    },
}

impl PluginError {
    /// The plugin the error is about.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Read { name, .. }
            | PluginError::Compile { name, .. }
            | PluginError::Abi { name, .. }
            | PluginError::Instantiate { name, .. } => name,
        }
    }
}

pub struct Plugin {
    pub name: String,
    pub path: PathBuf,
    pub kind: PluginKind,
    /// Size of the file, for listings.
    pub size: u64,
    /// sha256 of the file's bytes: what a reload compares to reuse a plugin.
    pub sha256: String,
    pub loaded_at: std::time::SystemTime,
    pub settings: PluginSettings,
    /// Kept so a settings-only change re-prepares without compiling.
    module: Module,
    /// `settings.config` as the JSON text `switchyard_init` receives.
    config_json: String,
    pre: InstancePre<HostState>,
    /// Whether the module imports WASI; if not, no WASI context is built.
    needs_wasi: bool,
    has_initialize: bool,
    has_init: bool,
}

/// What is known about a plugin's file besides its compiled module.
pub struct FileFacts<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub sha256: String,
}

/// The result of one invocation.
#[derive(Debug)]
pub struct Invocation {
    pub outcome: Result<(), Failure>,
    /// Events the guest emitted; always empty when the invocation failed.
    pub emitted: Vec<Emitted>,
    pub logs: Vec<LogLine>,
    /// Log lines over the per-invocation cap, not kept.
    pub dropped_logs: u64,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            let params = list(&mut f.params());
            let results = list(&mut f.results());
            if results.is_empty() {
                format!("func({params})")
            } else {
                format!("func({params}) -> {results}")
            }
        }
        ExternType::Memory(_) => "memory".into(),
        ExternType::Table(_) => "table".into(),
        ExternType::Global(_) => "global".into(),
        ExternType::Tag(_) => "tag".into(),
    }
}

/// Checks exports and imports against ABI v1 and tells the plugin's kind.
fn check_abi(module: &Module) -> Result<(PluginKind, bool), Vec<String>> {
    let mut problems = Vec::new();
    let export = |name: &str| {
        module
            .exports()
            .find(|e| e.name() == name)
            .map(|e| describe(&e.ty()))
    };
    let mut expect = |name: &str, want: &str, required: bool| match export(name) {
        Some(got) if got == want => true,
        Some(got) => {
            problems.push(format!("export `{name}` is {got}, expected {want}"));
            false
        }
        None if required => {
            problems.push(format!("missing export `{name}`: {want}"));
            false
        }
        None => false,
    };
    let kind = if export(abi::EXPORT_HANDLE).is_some() {
        expect(abi::EXPORT_HANDLE, "func(i32, i32) -> i32", true);
        expect(abi::EXPORT_ALLOC, "func(i32) -> i32", true);
        expect(abi::EXPORT_MEMORY, "memory", true);
        expect(abi::EXPORT_INIT, "func(i32, i32) -> i32", false);
        expect(abi::EXPORT_INITIALIZE, "func()", false);
        PluginKind::Handler
    } else if export(abi::EXPORT_START).is_some() {
        expect(abi::EXPORT_START, "func()", true);
        PluginKind::Command
    } else {
        problems.push(format!(
            "exports neither `{}` (a handler plugin) nor `{}` (a command plugin)",
            abi::EXPORT_HANDLE,
            abi::EXPORT_START
        ));
        PluginKind::Handler
    };
    let mut needs_wasi = false;
    for import in module.imports() {
        let ty = describe(&import.ty());
        match (import.module(), import.name()) {
            (abi::IMPORT_MODULE, abi::IMPORT_LOG) if ty == "func(i32, i32, i32)" => {}
            (abi::IMPORT_MODULE, abi::IMPORT_EMIT) if ty == "func(i32, i32) -> i32" => {}
            (abi::IMPORT_MODULE, abi::IMPORT_FAIL) if ty == "func(i32, i32)" => {}
            (abi::IMPORT_MODULE, name) => problems.push(format!(
                "imports `switchyard::{name}` as {ty}; the host provides log: func(i32, i32, i32), \
                 emit: func(i32, i32) -> i32, fail: func(i32, i32)"
            )),
            (WASI_MODULE, _) => needs_wasi = true,
            (m, name) => problems.push(format!(
                "imports `{m}::{name}`, which the host does not provide (only `switchyard` and `{WASI_MODULE}`)"
            )),
        }
    }
    if problems.is_empty() {
        Ok((kind, needs_wasi))
    } else {
        Err(problems)
    }
}

impl Plugin {
    /// Reads, compiles and checks a `.wasm` or `.wat` file.
    pub fn load(
        rt: &Runtime,
        name: &str,
        path: &Path,
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            name: name.into(),
            path: path.into(),
            source,
        })?;
        Plugin::from_bytes(rt, name, path, &bytes, settings)
    }

    /// Compiles and checks a plugin from its bytes (wasm or wat).
    pub fn from_bytes(
        rt: &Runtime,
        name: &str,
        path: &Path,
        bytes: &[u8],
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let module = Module::new(rt.engine(), bytes).map_err(|e| PluginError::Compile {
            name: name.into(),
            path: path.into(),
            message: format!("{e:#}"),
        })?;
        let file = FileFacts {
            path,
            size: bytes.len() as u64,
            sha256: super::cache::sha256_hex(bytes),
        };
        Plugin::from_module(rt, name, file, module, settings)
    }

    /// Checks a compiled module against the ABI and prepares it to run.
    pub fn from_module(
        rt: &Runtime,
        name: &str,
        file: FileFacts<'_>,
        module: Module,
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let path = file.path;
        let (kind, needs_wasi) = check_abi(&module).map_err(|problems| PluginError::Abi {
            name: name.into(),
            path: path.into(),
            problems,
        })?;
        let instantiate_error = |e: wasmtime::Error| PluginError::Instantiate {
            name: name.into(),
            path: path.into(),
            message: format!("{e:#}"),
        };
        let pre = rt.linker.instantiate_pre(&module).map_err(instantiate_error)?;
        let has = |n: &str| module.exports().any(|e| e.name() == n);
        let plugin = Plugin {
            name: name.into(),
            path: path.into(),
            kind,
            size: file.size,
            sha256: file.sha256,
            loaded_at: std::time::SystemTime::now(),
            config_json: settings.config.to_string(),
            settings,
            needs_wasi,
            has_initialize: has(abi::EXPORT_INITIALIZE),
            has_init: has(abi::EXPORT_INIT),
            module,
            pre,
        };
        // A trial instantiation catches what only shows at run time: an
        // initial memory over the cap, a start function that traps.
        let mut store = plugin.store(b"");
        plugin.pre.instantiate(&mut store).map_err(|e| {
            let f = failure::classify(&e, &plugin.failure_context(&store));
            instantiate_error(wasmtime::Error::msg(f.to_string()))
        })?;
        Ok(plugin)
    }

    /// The same plugin with other settings, without compiling again.
    pub fn with_settings(&self, rt: &Runtime, settings: PluginSettings) -> Result<Plugin, PluginError> {
        let file = FileFacts {
            path: &self.path,
            size: self.size,
            sha256: self.sha256.clone(),
        };
        Plugin::from_module(rt, &self.name, file, self.module.clone(), settings)
    }

    pub fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    fn store(&self, stdin: &[u8]) -> Store<HostState> {
        self.store_with_pipes(stdin, None)
    }

    fn store_with_pipes(
        &self,
        stdin: &[u8],
        pipes: Option<(&MemoryOutputPipe, &MemoryOutputPipe)>,
    ) -> Store<HostState> {
        let wasi = self.needs_wasi.then(|| {
            let mut b = WasiCtxBuilder::new();
            b.arg(&self.name);
            if let Some((out, err)) = pipes {
                b.stdout(out.clone()).stderr(err.clone());
            }
            if self.kind == PluginKind::Command {
                b.stdin(MemoryInputPipe::new(stdin.to_vec()))
                    .env(abi::COMMAND_CONFIG_ENV, &self.config_json);
            }
            b.build_p1()
        });
        let limits = self.settings.limits;
        let mut store = Store::new(self.pre.module().engine(), HostState::new(wasi, limits));
        store.limiter(|s| &mut s.memory_cap);
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on the engine");
        store.set_epoch_deadline(Runtime::deadline_ticks(limits.timeout));
        store
    }

    fn failure_context<'s>(&self, store: &'s Store<HostState>) -> failure::Context<'s> {
        failure::Context {
            memory_limit_hit: store.data().memory_cap.hit.as_deref(),
            fuel: self.settings.limits.fuel,
            timeout: self.settings.limits.timeout,
        }
    }

    /// Runs the plugin on one event (its envelope as JSON) in a fresh store.
    pub fn invoke(&self, event_json: &[u8]) -> Invocation {
        let started = Instant::now();
        let stdout = MemoryOutputPipe::new(MAX_STDIO);
        let stderr = MemoryOutputPipe::new(MAX_STDIO);
        let mut stdin = Vec::with_capacity(event_json.len() + 1);
        if self.kind == PluginKind::Command {
            stdin.extend_from_slice(event_json);
            stdin.push(b'\n');
        }
        let mut store = self.store_with_pipes(&stdin, Some((&stdout, &stderr)));
        let run = match self.kind {
            PluginKind::Handler => self.run_handler(&mut store, event_json),
            PluginKind::Command => self.run_command(&mut store, &stderr),
        };
        let outcome = run.map_err(|e| failure::classify(&e, &self.failure_context(&store)));
        let fuel_used = self.settings.limits.fuel - store.get_fuel().unwrap_or(0);
        drop(store.data_mut().wasi.take());
        let mut state = store.into_data();
        let out_lines = lines(&stdout.contents());
        let err_lines = lines(&stderr.contents());
        match self.kind {
            PluginKind::Handler => {
                for line in out_lines {
                    state.log(Level::Info, line);
                }
            }
            PluginKind::Command => {
                for line in out_lines {
                    if line.trim_start().starts_with('{') {
                        state.emit(line.as_bytes());
                    } else {
                        state.log(Level::Info, line);
                    }
                }
            }
        }
        for line in err_lines {
            state.log(Level::Warn, line);
        }
        Invocation {
            emitted: if outcome.is_ok() { state.emits } else { Vec::new() },
            outcome,
            logs: state.logs,
            dropped_logs: state.dropped_logs,
            fuel_used,
            elapsed: started.elapsed(),
        }
    }

    fn run_handler(&self, store: &mut Store<HostState>, event_json: &[u8]) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate(&mut *store)?;
        if self.has_initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?
                .call(&mut *store, ())?;
        }
        let memory = instance
            .get_memory(&mut *store, abi::EXPORT_MEMORY)
            .ok_or_else(|| BadAbi("no exported memory".into()))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, abi::EXPORT_ALLOC)?;
        if self.has_init {
            let init = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_INIT)?;
            let args = pass(store, &alloc, memory, self.config_json.as_bytes())?;
            let rc = init.call(&mut *store, args)?;
            if rc != abi::HANDLE_OK {
                return Err(guest_failure(store, abi::EXPORT_INIT, rc));
            }
        }
        let handle = instance.get_typed_func::<(i32, i32), i32>(&mut *store, abi::EXPORT_HANDLE)?;
        let args = pass(store, &alloc, memory, event_json)?;
        let rc = handle.call(&mut *store, args)?;
        if rc != abi::HANDLE_OK {
            return Err(guest_failure(store, abi::EXPORT_HANDLE, rc));
        }
        Ok(())
    }

    fn run_command(&self, store: &mut Store<HostState>, stderr: &MemoryOutputPipe) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate(&mut *store)?;
        let start = instance.get_typed_func::<(), ()>(&mut *store, abi::EXPORT_START)?;
        let Err(e) = start.call(&mut *store, ()) else {
            return Ok(());
        };
        let Some(code) = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|exit| exit.0) else {
            return Err(e);
        };
        if code == 0 {
            return Ok(());
        }
        let why = match &store.data().fail_message {
            Some(msg) => msg.clone(),
            None => lines(&stderr.contents())
                .pop()
                .unwrap_or_else(|| "no message on stderr".into()),
        };
        Err(HandlerError(format!("exit code {code}: {why}")).into())
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

fn guest_failure(store: &Store<HostState>, export: &str, rc: i32) -> wasmtime::Error {
    let msg = store
        .data()
        .fail_message
        .clone()
        .unwrap_or_else(|| format!("{export} returned {rc}"));
    HandlerError(msg).into()
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}
