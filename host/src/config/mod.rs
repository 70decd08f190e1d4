//! router.toml: parsing (serde, `deny_unknown_fields`) and semantic
//! validation that collects every error, each with file, line and column.
//!
//! The bottom layer of the crate: plain settings types and their
//! validation, importing only the event and router types. Each section has
//! its module: `server` (`[server]`, `[admin]`), `plugins` (`[plugins]`,
//! `[plugin.NAME]`, which files are plugins), `routes` (`[[route]]`,
//! `[router]`), `sink` (`[sink.NAME]`, one module per type), `tail`
//! (`[[source.tail]]`), `auth`, `stream`, `queue` (`[queue]`); [`env`](mod@env) interpolates `${VAR}` in
//! string values and [`units`] reads sizes and durations. Which settings a
//! reload cannot apply is told by [`restart_only_changes`].

mod assemble;
mod auth;
pub mod env;
mod plugins;
mod queue;
mod raw;
mod restart;
mod routes;
mod server;
mod sink;
mod stream;
mod tail;
pub mod units;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::router::Route;
pub use auth::{AuthConfig, Token};
pub use plugins::{plugin_files, Instance, Limits, LoadLimits, LogLimit, PluginSettings, MAX_PLUGIN_MEMORY};
pub use queue::{QueueConfig, QueueType, SyncMode};
use raw::RawConfig;
pub use restart::restart_only_changes;
pub use server::ServerConfig;
pub use sink::{BatchFormat, FileSinkConfig, HttpSinkConfig, SinkConfig};
pub use stream::StreamConfig;
pub use tail::{Pattern, StartAt, TailFormat, TailSource};
use validate::Validator;

/// `[router] max_cascade` when not set: events one root event may cause.
pub const DEFAULT_MAX_CASCADE: u32 = 1000;

/// `[router] max_cascade_bytes` when not set: bytes of emitted JSON one root
/// event's cascade may hold in all (issue 16).
pub const DEFAULT_MAX_CASCADE_BYTES: u64 = 16 << 20;

/// A validated router.toml. Relative paths are resolved against the
/// directory of the config file.
///
/// Its serialized form holds exactly the settings a reload cannot apply
/// (each under its name in the file): every field a reload applies is
/// `#[serde(skip)]`, so a new field counts as restart-only until it is
/// made live and marked so. [`restart_only_changes`] diffs it.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    #[serde(skip)]
    pub file: PathBuf,
    /// Listeners, queue and workers are set up at start.
    pub server: ServerConfig,
    /// Read by every reload (the watcher keeps watching the folder it was
    /// started on).
    #[serde(skip)]
    pub plugins_dir: PathBuf,
    #[serde(skip)]
    pub default_limits: Limits,
    /// `[plugins] max_file_size` and `compile_timeout`.
    #[serde(skip)]
    pub loading: LoadLimits,
    /// Only plugins with a `[plugin.NAME]` table are here.
    #[serde(skip)]
    pub plugin_settings: BTreeMap<String, PluginSettings>,
    /// Emits deeper than this go to dead letters instead of being routed.
    #[serde(skip)]
    pub hop_limit: u32,
    /// Events one root event may cause in all (emitted and routed, at any
    /// depth); further emits go to dead letters as `cascade_limit` (issue 16).
    #[serde(skip)]
    pub max_cascade: u32,
    /// Bytes of emitted JSON one root event's cascade may hold in all; an
    /// emit past this or `max_cascade` is refused to the guest with
    /// `cascade_limit` (issue 16).
    #[serde(skip)]
    pub max_cascade_bytes: u64,
    /// The dead-letter log is opened at start.
    #[serde(rename = "dead_letter.path")]
    pub dead_letter: PathBuf,
    /// Where the daemon keeps its own state: compiled-module cache, checkpoints.
    /// Tail checkpoints are opened at start.
    #[serde(rename = "state.dir")]
    pub state_dir: PathBuf,
    /// `[[source.tail]]`: log files followed like `tail -F`; their threads
    /// are started at start.
    #[serde(rename = "source.tail")]
    pub tail_sources: Vec<TailSource>,
    #[serde(skip)]
    pub routes: Vec<Route>,
    #[serde(skip)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[admin] listen`: when set, admin endpoints are served there only,
    /// and ingest only on `[server] listen`. Bound at start.
    #[serde(rename = "admin.listen")]
    pub admin_listen: Option<SocketAddr>,
    /// Read per request from the serving snapshot.
    #[serde(skip)]
    pub auth: AuthConfig,
    /// The stream hub is sized at start.
    pub stream: StreamConfig,
    /// `[queue]`: the queue is opened at start (its folder is
    /// `<state.dir>/queue`).
    pub queue: QueueConfig,
    /// `[plugins] log_rate`, `log_burst`, `log_bytes`, `log_bytes_burst`.
    #[serde(skip)]
    pub plugin_log: LogLimit,
    /// Problems that let the config serve but that `switchyard check`
    /// reports: routes and `[plugin.NAME]` tables naming plugins with no file.
    #[serde(skip)]
    pub warnings: ConfigErrors,
}

impl Config {
    /// The limits and config a plugin runs with.
    pub fn settings_for(&self, plugin: &str) -> PluginSettings {
        self.plugin_settings
            .get(plugin)
            .cloned()
            .unwrap_or_else(|| PluginSettings {
                limits: self.default_limits,
                config: Value::Object(Default::default()),
            })
    }

    /// Reads and validates a config file; plugin names are checked against
    /// the plugins in the plugins directory ([`plugin_files`]).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![ConfigError {
                at: None,
                message: format!("cannot read config file: {e}"),
            }],
        })?;
        let base = config_dir(path);
        Config::parse(&src, path, &base, |dir| {
            plugin_files(dir)
                .map(|files| files.into_keys().collect())
                .map_err(|e| e.to_string())
        })
    }

    /// Validates config text. `base_dir` is the directory relative paths in
    /// the file are resolved against (see [`config_dir`]). `list_plugins` names the plugins in a directory.
    pub fn parse(
        src: &str,
        file: &Path,
        base_dir: &Path,
        list_plugins: impl FnOnce(&Path) -> Result<BTreeSet<String>, String>,
    ) -> Result<Config, ConfigErrors> {
        let mut v = Validator::new(src);
        let raw: RawConfig = match env::from_str(src) {
            Ok(raw) => raw,
            Err(errors) => {
                for (span, message) in errors {
                    v.error(span, message);
                }
                return Err(v.finish(file));
            }
        };
        let config = v.config(raw, base_dir, list_plugins);
        if v.errors.is_empty() {
            let mut warnings = std::mem::take(&mut v.warnings);
            warnings.sort_by_key(|w| w.at);
            Ok(Config {
                file: file.to_path_buf(),
                warnings: ConfigErrors {
                    file: file.to_path_buf(),
                    errors: warnings,
                },
                ..config
            })
        } else {
            v.errors.append(&mut v.warnings);
            Err(v.finish(file))
        }
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// 1-based line and column, where the file has a place to point at.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

/// Every problem found in a config file, printed one per line as
/// `file:line:column: message`.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match e.at {
                Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), e.message)?,
                None => write!(f, "{}: {}", self.file.display(), e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The absolute directory of a config file, which every relative path in
/// the file (tail globs, `state.dir`, `plugins.dir`, sink and dead-letter
/// paths, auth files) is resolved against, once, at load.
///
/// Issue 18: resolving against the path *as typed* gave each spelling of
/// `--config` (`t1/router.toml`, `/tmp/x/t1/router.toml`, `router.toml` from
/// `t1/`) its own tail checkpoint and lock. The directory is made absolute
/// against the current directory without resolving symlinks, so a config
/// given by an absolute path without `..` keeps the paths (and checkpoint
/// names) it always had; a directory spelled with `..` is canonicalized
/// (the config file was just read, so it exists), since `a/../b` is only the
/// same place as `b` after symlinks are resolved. Falls back to the path as
/// given if the current directory is unavailable.
pub fn config_dir(config_file: &Path) -> PathBuf {
    let dir = match config_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.components().any(|c| c == std::path::Component::ParentDir) {
        if let Ok(canonical) = std::fs::canonicalize(dir) {
            return canonical;
        }
    }
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

#[cfg(test)]
mod tests;
