//! `[plugins]` and `[plugin.NAME]`: which files in the plugins folder are
//! plugins, the limits each runs under, its `config` table, what loading
//! one may cost, and the rate limit on its log lines.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::raw::{RawConfig, RawLimits, RawPlugins};
use super::validate::{listing, toml_to_json, Validator};

/// Per-plugin resource limits: `[plugins]` defaults, `[plugin.NAME]` overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Fuel units per invocation (about one per wasm instruction).
    pub fuel: u64,
    /// Cap on linear memory, in bytes.
    pub memory: u64,
    /// Wall-clock deadline per invocation.
    pub timeout: Duration,
    /// Events one invocation may emit.
    pub max_emits: u32,
    /// Bytes of emitted JSON one invocation may produce.
    pub max_emit_bytes: u64,
    /// Whether each invocation gets a new instance or a worker's kept one.
    pub instance: Instance,
}

/// How a handler invocation gets its instance (`instance = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Instance {
    /// Each worker keeps an instance per plugin and calls it again, with
    /// fuel and deadline reset per call; any failure discards it, so the
    /// next call starts from a fresh one. Globals and heap persist between
    /// successful calls. Command plugins are always fresh.
    #[default]
    Reuse,
    /// A new instance for every invocation: nothing survives a call.
    Fresh,
}

impl Instance {
    pub fn as_str(self) -> &'static str {
        match self {
            Instance::Reuse => "reuse",
            Instance::Fresh => "fresh",
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000,
            memory: 32 << 20,
            timeout: Duration::from_millis(250),
            max_emits: 100,
            max_emit_bytes: 1 << 20,
            instance: Instance::default(),
        }
    }
}

/// Largest `memory` cap a plugin may have (wasm32's whole address space).
pub const MAX_PLUGIN_MEMORY: u64 = 4 << 30;

/// `[plugins] max_file_size` and `compile_timeout`: what loading a plugin
/// may cost (issue 16; see `runtime::compile`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadLimits {
    /// Largest plugin file loaded, in bytes.
    pub max_file_size: u64,
    /// Longest a compile may take.
    pub compile_timeout: Duration,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_file_size: 8 << 20,
            compile_timeout: Duration::from_secs(10),
        }
    }
}

/// The limits and `config` table one plugin runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSettings {
    pub limits: Limits,
    /// The `config` table, as the JSON object `switchyard_init` receives.
    pub config: Value,
}

/// `[plugins] log_rate`, `log_burst`, `log_bytes` and `log_bytes_burst`:
/// the per-plugin rate limit on log lines and log bytes (applied by the
/// runtime's log capability).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLimit {
    /// Lines per second a plugin may log on average; 0 means no limit.
    pub rate: u32,
    /// Lines a plugin may log at once after a quiet spell.
    pub burst: u32,
    /// Bytes of log messages per second a plugin may log on average; 0
    /// means no limit.
    pub bytes: u64,
    /// Bytes a plugin may log at once after a quiet spell; a line longer
    /// than this is always dropped.
    pub bytes_burst: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            rate: 100,
            burst: 500,
            bytes: 64 << 10,
            bytes_burst: 256 << 10,
        }
    }
}

/// Whether a file stem is a valid plugin name: ASCII letters, digits, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every `*.wasm` and `*.wat` in `dir`, by plugin name (the file stem):
/// the one rule for which files are plugins, used by [`super::Config::load`]
/// to check the names the config uses and by the loader to load them.
/// Files whose stem is not a valid name, and hidden files, are ignored. If a
/// name has both a `.wasm` and a `.wat`, the `.wasm` wins.
pub fn plugin_files(dir: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if !matches!(ext, "wasm" | "wat") || stem.starts_with('.') || !valid_name(stem) || !path.is_file() {
            continue;
        }
        let stem = stem.to_string();
        if ext == "wasm" || !found.contains_key(&stem) {
            found.insert(stem, path);
        }
    }
    Ok(found)
}

impl Validator<'_> {
    pub fn limits(&mut self, raw: RawLimits<'_>, prefix: &str, base: Limits) -> Limits {
        Limits {
            fuel: self.int(raw.fuel, &format!("{prefix}.fuel"), 1..i64::MAX, base.fuel as i64) as u64,
            memory: self.size(
                raw.memory,
                &format!("{prefix}.memory"),
                65_536..MAX_PLUGIN_MEMORY + 1,
                base.memory,
            ),
            timeout: self.duration(raw.timeout, &format!("{prefix}.timeout"), base.timeout),
            max_emits: self.int(
                raw.max_emits,
                &format!("{prefix}.max_emits"),
                0..1_000_001,
                base.max_emits.into(),
            ) as u32,
            max_emit_bytes: self.size(
                raw.max_emit_bytes,
                &format!("{prefix}.max_emit_bytes"),
                0..(1 << 30) + 1,
                base.max_emit_bytes,
            ),
            instance: match raw.instance {
                None => base.instance,
                Some(v) => match v.get_ref().as_str() {
                    "reuse" => Instance::Reuse,
                    "fresh" => Instance::Fresh,
                    other => {
                        self.error(
                            Some(v.span()),
                            format!("{prefix}.instance: expected \"reuse\" or \"fresh\", got {other:?}"),
                        );
                        base.instance
                    }
                },
            },
        }
    }

    /// The plugins in `dir` (`None`, with the error reported, when it
    /// cannot be listed).
    pub fn known_plugins(
        &mut self,
        raw: &RawPlugins,
        dir: &Path,
        list_plugins: impl FnOnce(&Path) -> Result<BTreeSet<String>, String>,
    ) -> Option<BTreeSet<String>> {
        match list_plugins(dir) {
            Ok(known) => Some(known),
            Err(e) => {
                let span = raw.dir.as_ref().map(|d| d.span());
                self.error(
                    span,
                    format!("plugins.dir: cannot list plugins in {}: {e}", dir.display()),
                );
                None
            }
        }
    }

    /// `[plugin.NAME]` tables: a name with no file is a warning.
    pub fn plugin_settings(
        &mut self,
        raw: &RawConfig,
        defaults: Limits,
        known: Option<&BTreeSet<String>>,
        plugins_dir: &Path,
    ) -> BTreeMap<String, PluginSettings> {
        let mut plugin_settings = BTreeMap::new();
        for (name, table) in &raw.plugin {
            let prefix = format!("plugin.{name}");
            if let Some(known) = known {
                if !known.contains(name) {
                    self.warn(
                        Some(table.span()),
                        format!(
                            "{prefix}: no plugin named {name:?} in {} ({})",
                            plugins_dir.display(),
                            listing(known)
                        ),
                    );
                }
            }
            let limits = self.limits(table.get_ref().limits(), &prefix, defaults);
            let config = table
                .get_ref()
                .config
                .as_ref()
                .map_or(Value::Object(Default::default()), |t| {
                    toml_to_json(&toml::Value::Table(t.clone()))
                });
            plugin_settings.insert(name.clone(), PluginSettings { limits, config });
        }
        plugin_settings
    }

    pub fn load_limits(&mut self, p: &RawPlugins) -> LoadLimits {
        let d = LoadLimits::default();
        LoadLimits {
            max_file_size: self.size(
                &p.max_file_size,
                "plugins.max_file_size",
                1..(1 << 32),
                d.max_file_size,
            ),
            compile_timeout: self.duration(&p.compile_timeout, "plugins.compile_timeout", d.compile_timeout),
        }
    }

    pub fn log_limit(&mut self, p: &RawPlugins) -> LogLimit {
        let d = LogLimit::default();
        LogLimit {
            rate: self.int(&p.log_rate, "plugins.log_rate", 0..1_000_001, d.rate.into()) as u32,
            burst: self.int(&p.log_burst, "plugins.log_burst", 1..1_000_001, d.burst.into()) as u32,
            bytes: self.size(&p.log_bytes, "plugins.log_bytes", 0..(1 << 40), d.bytes),
            bytes_burst: self.size(
                &p.log_bytes_burst,
                "plugins.log_bytes_burst",
                1..(1 << 40),
                d.bytes_burst,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_plugins() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a.wasm",
            "a.wat",
            "b.wat",
            ".hidden.wasm",
            "bad name.wasm",
            "c.txt",
            "d-1_x.wasm",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("e.wasm")).unwrap();
        let found = plugin_files(dir.path()).unwrap();
        let names: Vec<(&str, String)> = found
            .iter()
            .map(|(n, p)| (n.as_str(), p.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            [
                ("a", "a.wasm".to_string()),
                ("b", "b.wat".to_string()),
                ("d-1_x", "d-1_x.wasm".to_string())
            ]
        );
        assert!(plugin_files(&dir.path().join("missing")).is_err());
        assert!(!valid_name("") && !valid_name("a.b") && valid_name("A-z_9"));
    }
}
