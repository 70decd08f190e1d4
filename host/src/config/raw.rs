//! router.toml exactly as written: serde types with `deny_unknown_fields` and
//! spans on every value that semantic validation may need to point at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::units::RawSize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub plugin: BTreeMap<String, Spanned<RawPluginOverride>>,
    #[serde(default)]
    pub router: RawRouter,
    #[serde(default)]
    pub dead_letter: RawDeadLetter,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub source: RawSources,
    #[serde(default)]
    pub admin: super::server::RawAdmin,
    #[serde(default)]
    pub auth: super::auth::RawAuth,
    #[serde(default)]
    pub stream: super::stream::RawStream,
    #[serde(default)]
    pub queue: super::queue::RawQueue,
    #[serde(default, rename = "route")]
    pub routes: Vec<Spanned<RawRoute>>,
    #[serde(default, rename = "sink")]
    pub sinks: BTreeMap<String, Spanned<super::sink::RawSink>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub max_body: Option<Spanned<RawSize>>,
    pub queue: Option<Spanned<i64>>,
    pub workers: Option<Spanned<i64>>,
    pub header_timeout: Option<Spanned<String>>,
    pub body_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub send_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    pub dir: Option<Spanned<String>>,
    pub fuel: Option<Spanned<i64>>,
    pub memory: Option<Spanned<RawSize>>,
    pub timeout: Option<Spanned<String>>,
    pub max_emits: Option<Spanned<i64>>,
    pub max_emit_bytes: Option<Spanned<RawSize>>,
    pub instance: Option<Spanned<String>>,
    /// Plugin log lines per second, per plugin (0: no limit).
    pub log_rate: Option<Spanned<i64>>,
    pub log_burst: Option<Spanned<i64>>,
    /// Plugin log bytes per second, per plugin (0: no limit).
    pub log_bytes: Option<Spanned<RawSize>>,
    pub log_bytes_burst: Option<Spanned<RawSize>>,
    /// Largest plugin file loaded.
    pub max_file_size: Option<Spanned<RawSize>>,
    /// Longest a plugin's compile may take.
    pub compile_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginOverride {
    pub fuel: Option<Spanned<i64>>,
    pub memory: Option<Spanned<RawSize>>,
    pub timeout: Option<Spanned<String>>,
    pub max_emits: Option<Spanned<i64>>,
    pub max_emit_bytes: Option<Spanned<RawSize>>,
    pub instance: Option<Spanned<String>>,
    pub config: Option<toml::Table>,
}

/// The limit keys shared by `[plugins]` (defaults) and `[plugin.NAME]`
/// (overrides), borrowed from either table.
pub struct RawLimits<'a> {
    pub fuel: &'a Option<Spanned<i64>>,
    pub memory: &'a Option<Spanned<RawSize>>,
    pub timeout: &'a Option<Spanned<String>>,
    pub max_emits: &'a Option<Spanned<i64>>,
    pub max_emit_bytes: &'a Option<Spanned<RawSize>>,
    pub instance: &'a Option<Spanned<String>>,
}

impl RawPlugins {
    pub fn limits(&self) -> RawLimits<'_> {
        RawLimits {
            fuel: &self.fuel,
            memory: &self.memory,
            timeout: &self.timeout,
            max_emits: &self.max_emits,
            max_emit_bytes: &self.max_emit_bytes,
            instance: &self.instance,
        }
    }
}

impl RawPluginOverride {
    pub fn limits(&self) -> RawLimits<'_> {
        RawLimits {
            fuel: &self.fuel,
            memory: &self.memory,
            timeout: &self.timeout,
            max_emits: &self.max_emits,
            max_emit_bytes: &self.max_emit_bytes,
            instance: &self.instance,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    pub hop_limit: Option<Spanned<i64>>,
    pub max_cascade: Option<Spanned<i64>>,
    pub max_cascade_bytes: Option<Spanned<RawSize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadLetter {
    pub path: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSources {
    #[serde(default)]
    pub tail: Vec<Spanned<RawTail>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTail {
    pub path: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    pub pattern: Option<Spanned<String>>,
    pub start_at: Option<Spanned<String>>,
    pub max_line: Option<Spanned<RawSize>>,
    pub rotate_wait: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    #[serde(default)]
    pub require: Vec<Spanned<String>>,
    #[serde(default)]
    pub handlers: Vec<Spanned<String>>,
    #[serde(default)]
    pub sinks: Vec<Spanned<String>>,
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
    pub source: Option<Spanned<String>>,
    #[serde(default)]
    pub data: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub meta: BTreeMap<String, Spanned<toml::Value>>,
}
