//! A plugin: compiled once (module + prepared instance) and checked against
//! ABI v1 at load. Invocation is in `invoke.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use switchyard_sdk::abi;
use wasmtime::{ExternType, InstancePre, Module, ValType};

use super::compile::LoadLimits;
use super::failure;
use super::host::HostState;
use super::Runtime;
use crate::config::{Instance, Limits, PluginSettings};

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
    #[error("plugin {name:?} ({path}): file of {size} bytes is over the limit of {limit} bytes ([plugins] max_file_size)")]
    TooLarge {
        name: String,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("plugin {name:?} ({path}): did not compile within {limit:?} ([plugins] compile_timeout)")]
    CompileTimeout {
        name: String,
        path: PathBuf,
        limit: std::time::Duration,
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
            | PluginError::TooLarge { name, .. }
            | PluginError::CompileTimeout { name, .. }
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
    /// Unique per loaded version, so a worker never calls an instance of
    /// an older version kept from before a reload.
    id: u64,
    /// Kept so a settings-only change re-prepares without compiling.
    module: Module,
    /// `settings.config` as the JSON text `switchyard_init` receives.
    pub(super) config_json: String,
    pub(super) pre: InstancePre<HostState>,
    /// Whether the module imports WASI; if not, no WASI context (and no
    /// stdout/stderr capture) is built per instance.
    pub(super) needs_wasi: bool,
    pub(super) has_initialize: bool,
    pub(super) has_init: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What is known about a plugin's file besides its compiled module.
pub struct FileFacts<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub sha256: String,
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

/// Refuses a plugin file over `limit` bytes before reading it (issue 16).
pub fn check_size(name: &str, path: &Path, limit: u64) -> Result<u64, PluginError> {
    let size = std::fs::metadata(path)
        .map_err(|source| PluginError::Read {
            name: name.into(),
            path: path.into(),
            source,
        })?
        .len();
    if size > limit {
        return Err(PluginError::TooLarge {
            name: name.into(),
            path: path.into(),
            size,
            limit,
        });
    }
    Ok(size)
}

impl Plugin {
    /// Reads, compiles and checks a `.wasm` or `.wat` file, within the
    /// size and compile-time limits (a compile over time is abandoned on
    /// its thread: for one-shot commands, `check` and `plugin run`).
    pub fn load(
        rt: &Runtime,
        name: &str,
        path: &Path,
        settings: PluginSettings,
        limits: LoadLimits,
    ) -> Result<Plugin, PluginError> {
        let read_error = |source| PluginError::Read {
            name: name.into(),
            path: path.into(),
            source,
        };
        check_size(name, path, limits.max_file_size)?;
        let bytes = std::fs::read(path).map_err(read_error)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (engine, owned) = (rt.engine().clone(), bytes.clone());
        std::thread::Builder::new()
            .name("compile".into())
            .spawn(move || {
                let _ = tx.send(Module::new(&engine, &owned));
            })
            .map_err(read_error)?;
        let module = match rx.recv_timeout(limits.compile_timeout) {
            Ok(compiled) => compiled.map_err(|e| PluginError::Compile {
                name: name.into(),
                path: path.into(),
                message: format!("{e:#}"),
            })?,
            Err(_) => {
                return Err(PluginError::CompileTimeout {
                    name: name.into(),
                    path: path.into(),
                    limit: limits.compile_timeout,
                })
            }
        };
        let file = FileFacts {
            path,
            size: bytes.len() as u64,
            sha256: super::cache::sha256_hex(&bytes),
        };
        Plugin::from_module(rt, name, file, module, settings)
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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
        // initial memory over the cap, a start function or `_initialize`
        // that traps, loops or sleeps. Both run under the plugin's deadline
        // (fuel and epoch in wasm, `Deadline` in host calls: issue 16), so a
        // start function that sleeps fails the load as `timeout` instead of
        // holding start-up or a reload.
        let (mut store, _) = plugin.new_store(b"");
        plugin.trial(&mut store).map_err(|e| {
            let f = failure::classify(&e, &plugin.failure_context(&store));
            instantiate_error(wasmtime::Error::msg(f.to_string()))
        })?;
        Ok(plugin)
    }

    /// Instantiates (running the start function) and, for a handler, runs
    /// `_initialize`: what every instance does before its first event.
    fn trial(&self, store: &mut wasmtime::Store<HostState>) -> wasmtime::Result<()> {
        let instance = self.pre.instantiate(&mut *store)?;
        if self.kind == PluginKind::Handler && self.has_initialize {
            instance
                .get_typed_func::<(), ()>(&mut *store, abi::EXPORT_INITIALIZE)?
                .call(&mut *store, ())?;
        }
        Ok(())
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

    /// A number no other plugin version loaded by this process has: what a
    /// worker's kept instances are keyed by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How invocations get their instance: command plugins are always fresh.
    pub fn instance_mode(&self) -> Instance {
        match self.kind {
            PluginKind::Handler => self.settings.limits.instance,
            PluginKind::Command => Instance::Fresh,
        }
    }
}
