//! A plugin: one loaded version of a plugin file, compiled once (a core
//! module or a component, [`super::artifact`]), checked at load against ABI
//! v1 or the component world and linked to the executor of its kind of
//! guest ([`super::guest`]), then tried once. Invocation is in
//! [`super::invoke`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::Engine;

use super::artifact::Artifact;

use super::compile::LoadLimits;
use super::failure;
use super::guest::{self, ExecutorError, Guest};
use super::host::log_limit::LogBudget;
use super::host::HostState;
use super::Runtime;
use crate::config::{Instance, Limits, PluginSettings};
pub use guest::PluginKind;

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
    #[error("plugin {name:?} ({path}): does not target the world `{}`: {}", super::host::world::WORLD, problems.join("; "))]
    World {
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
            | PluginError::World { name, .. }
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
    /// The executor of its kind of guest, linked once per compiled module:
    /// a settings-only change reuses it without compiling or linking.
    pub(super) guest: Arc<dyn Guest>,
    /// The engine its stores are made in.
    pub(super) engine: Engine,
    /// The budget its log lines are forwarded within; shared by every
    /// version of the plugin (by name) and every worker.
    pub log_budget: LogBudget,
    /// `settings.config` as the JSON text `switchyard_init` receives.
    pub(super) config_json: String,
    /// Whether the module imports WASI; if not, no WASI context (and no
    /// stdout/stderr capture) is built per instance.
    pub(super) needs_wasi: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What is known about a plugin's file besides its compiled module.
pub struct FileFacts<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub sha256: String,
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
                let _ = tx.send(Artifact::compile(&engine, &owned));
            })
            .map_err(read_error)?;
        let artifact = match rx.recv_timeout(limits.compile_timeout) {
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
        Plugin::from_artifact(rt, name, file, artifact, settings)
    }

    /// Compiles and checks a plugin from its bytes (wasm or wat).
    pub fn from_bytes(
        rt: &Runtime,
        name: &str,
        path: &Path,
        bytes: &[u8],
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let artifact = Artifact::compile(rt.engine(), bytes).map_err(|e| PluginError::Compile {
            name: name.into(),
            path: path.into(),
            message: format!("{e:#}"),
        })?;
        let file = FileFacts {
            path,
            size: bytes.len() as u64,
            sha256: super::cache::sha256_hex(bytes),
        };
        Plugin::from_artifact(rt, name, file, artifact, settings)
    }

    /// Checks a compiled module against the ABI (or a component against
    /// the world) and prepares it to run.
    pub fn from_artifact(
        rt: &Runtime,
        name: &str,
        file: FileFacts<'_>,
        artifact: Artifact,
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let (guest, needs_wasi) = guest::executor(rt, &artifact).map_err(|e| match e {
            ExecutorError::Abi(problems) => PluginError::Abi {
                name: name.into(),
                path: file.path.into(),
                problems,
            },
            ExecutorError::World(problems) => PluginError::World {
                name: name.into(),
                path: file.path.into(),
                problems,
            },
            ExecutorError::Link(e) => instantiate_error(name, file.path, &e),
        })?;
        Plugin::prepared(rt, name, file, guest, needs_wasi, settings)
    }

    /// A plugin of a linked executor: tried once (see [`Plugin::trial`]).
    fn prepared(
        rt: &Runtime,
        name: &str,
        file: FileFacts<'_>,
        guest: Arc<dyn Guest>,
        needs_wasi: bool,
        settings: PluginSettings,
    ) -> Result<Plugin, PluginError> {
        let plugin = Plugin {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            path: file.path.into(),
            kind: guest.kind(),
            size: file.size,
            sha256: file.sha256,
            loaded_at: std::time::SystemTime::now(),
            config_json: settings.config.to_string(),
            settings,
            needs_wasi,
            guest,
            engine: rt.engine.clone(),
            log_budget: rt.log_budgets.of(name),
        };
        plugin.trial()?;
        Ok(plugin)
    }

    /// A trial instantiation catches what only shows at run time: an
    /// initial memory over the cap, a start function or `_initialize` that
    /// traps, loops or sleeps, a component's `configure` refusing the
    /// config. Both run under the plugin's deadline (fuel
    /// and epoch in wasm, `Deadline` in host calls: issue 16), so a start
    /// function that sleeps fails the load as `timeout` instead of holding
    /// start-up or a reload.
    fn trial(&self) -> Result<(), PluginError> {
        let mut store: wasmtime::Store<HostState> = self.new_store(b"");
        self.guest.trial(&mut store, &self.config_json).map_err(|e| {
            let f = failure::classify(&e, &self.failure_context(&store));
            instantiate_error(&self.name, &self.path, &wasmtime::Error::msg(f.to_string()))
        })
    }

    /// The same plugin with other settings, without compiling again.
    pub fn with_settings(&self, rt: &Runtime, settings: PluginSettings) -> Result<Plugin, PluginError> {
        let file = FileFacts {
            path: &self.path,
            size: self.size,
            sha256: self.sha256.clone(),
        };
        Plugin::prepared(
            rt,
            &self.name,
            file,
            self.guest.clone(),
            self.needs_wasi,
            settings,
        )
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
        if self.guest.reusable() {
            self.settings.limits.instance
        } else {
            Instance::Fresh
        }
    }
}

fn instantiate_error(name: &str, path: &Path, e: &wasmtime::Error) -> PluginError {
    PluginError::Instantiate {
        name: name.into(),
        path: path.into(),
        message: format!("{e:#}"),
    }
}
