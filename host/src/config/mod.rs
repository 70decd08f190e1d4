//! router.toml: parsing (serde, `deny_unknown_fields`) and semantic
//! validation that collects every error, each with file, line and column.

pub mod env;
pub mod ops;
mod raw;
mod tail;
pub mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;

use crate::router::{FieldPath, Matcher, NameGlob, Predicate, Route};
use crate::version::VersionReq;
pub use ops::{AuthConfig, BatchFormat, HttpSinkConfig};
use raw::{RawConfig, RawLimits, RawRoute};
pub use tail::{StartAt, TailFormat, TailSource};
use units::{parse_duration, parse_size, RawSize};

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

/// `[router] max_cascade` when not set: events one root event may cause.
pub const DEFAULT_MAX_CASCADE: u32 = 1000;

/// `[router] max_cascade_bytes` when not set: bytes of emitted JSON one root
/// event's cascade may hold in all (issue 16).
pub const DEFAULT_MAX_CASCADE_BYTES: u64 = 16 << 20;

/// Largest `memory` cap a plugin may have (wasm32's whole address space).
pub const MAX_PLUGIN_MEMORY: u64 = 4 << 30;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, enforced while reading.
    pub max_body: u64,
    /// Events accepted but not yet handled; beyond this ingest answers 503.
    pub queue: usize,
    /// Threads running wasm; 0 in the file means one per core.
    pub workers: usize,
    /// How long a client may take to send request headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a whole request body, from the
    /// end of its headers; then 408 and the connection closes (issue 17).
    pub body_timeout: Duration,
    /// Open connections per listener; past it 503 and close (issue 17).
    pub max_connections: usize,
    /// How long a write to a client may stay pending (it stopped reading)
    /// before its connection is closed.
    pub send_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginSettings {
    pub limits: Limits,
    /// The `config` table, as the JSON object `switchyard_init` receives.
    pub config: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    /// Append NDJSON, one envelope per line.
    File { path: PathBuf },
    /// One envelope per line on the daemon's stdout.
    Stdout,
    /// Batches POSTed to a webhook, retried, dead-lettered when undeliverable.
    Http(HttpSinkConfig),
}

/// A validated router.toml. Relative paths are resolved against the
/// directory of the config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub server: ServerConfig,
    pub plugins_dir: PathBuf,
    pub default_limits: Limits,
    /// `[plugins] max_file_size` and `compile_timeout`.
    pub loading: LoadLimits,
    /// Only plugins with a `[plugin.NAME]` table are here.
    pub plugin_settings: BTreeMap<String, PluginSettings>,
    /// Emits deeper than this go to dead letters instead of being routed.
    pub hop_limit: u32,
    /// Events one root event may cause in all (emitted and routed, at any
    /// depth); further emits go to dead letters as `cascade_limit` (issue 16).
    pub max_cascade: u32,
    /// Bytes of emitted JSON one root event's cascade may hold in all; an
    /// emit past this or `max_cascade` is refused to the guest with
    /// `cascade_limit` (issue 16).
    pub max_cascade_bytes: u64,
    pub dead_letter: PathBuf,
    /// Where the daemon keeps its own state: compiled-module cache, checkpoints.
    pub state_dir: PathBuf,
    /// `[[source.tail]]`: log files followed like `tail -F`.
    pub tail_sources: Vec<TailSource>,
    pub routes: Vec<Route>,
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[admin] listen`: when set, admin endpoints are served there only,
    /// and ingest only on `[server] listen`.
    pub admin_listen: Option<SocketAddr>,
    pub auth: AuthConfig,
    pub stream: crate::http::stream::StreamConfig,
    /// `[plugins] log_rate`, `log_burst`, `log_bytes`, `log_bytes_burst`.
    pub plugin_log: crate::log_limit::LogLimit,
    /// Problems that let the config serve but that `switchyard check`
    /// reports: routes and `[plugin.NAME]` tables naming plugins with no file.
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
    /// the `*.wasm`/`*.wat` files in the plugins directory.
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
            crate::app::registry::plugin_files(dir)
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
        let mut v = Validator {
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
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

struct Validator<'s> {
    src: &'s str,
    errors: Vec<ConfigError>,
    /// Problems that do not stop the config from serving: a route naming a
    /// plugin with no file (its events are dead-lettered as `unavailable`).
    warnings: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, span: Option<Range<usize>>, message: String) {
        let at = span.map(|s| line_col(self.src, s.start));
        self.errors.push(ConfigError { at, message });
    }

    fn warn(&mut self, span: Option<Range<usize>>, message: String) {
        let at = span.map(|s| line_col(self.src, s.start));
        self.warnings.push(ConfigError { at, message });
    }

    fn finish(mut self, file: &Path) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.at);
        ConfigErrors {
            file: file.to_path_buf(),
            errors: self.errors,
        }
    }

    fn check<T>(&mut self, span: Range<usize>, what: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(Some(span), format!("{what}: {msg}"));
                None
            }
        }
    }

    fn int(&mut self, value: &Option<Spanned<i64>>, what: &str, range: Range<i64>, default: i64) -> i64 {
        match value {
            None => default,
            Some(s) if range.contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                let msg = if range.end == i64::MAX {
                    format!("must be at least {}, got {}", range.start, s.get_ref())
                } else {
                    format!(
                        "must be from {} to {}, got {}",
                        range.start,
                        range.end - 1,
                        s.get_ref()
                    )
                };
                self.error(Some(s.span()), format!("{what}: {msg}"));
                default
            }
        }
    }

    fn size(&mut self, value: &Option<Spanned<RawSize>>, what: &str, range: Range<u64>, default: u64) -> u64 {
        let Some(s) = value else { return default };
        let parsed = parse_size(s.get_ref()).and_then(|n| {
            if range.contains(&n) {
                Ok(n)
            } else {
                Err(format!(
                    "must be from {} to {} bytes, got {n}",
                    range.start,
                    range.end - 1
                ))
            }
        });
        self.check(s.span(), what, parsed).unwrap_or(default)
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, what: &str, default: Duration) -> Duration {
        let Some(s) = value else { return default };
        let parsed = parse_duration(s.get_ref()).and_then(|d| {
            if d.is_zero() {
                Err("must be longer than zero".to_string())
            } else {
                Ok(d)
            }
        });
        self.check(s.span(), what, parsed).unwrap_or(default)
    }

    fn limits(&mut self, raw: RawLimits<'_>, prefix: &str, base: Limits) -> Limits {
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

    fn config(
        &mut self,
        raw: RawConfig,
        base: &Path,
        list_plugins: impl FnOnce(&Path) -> Result<BTreeSet<String>, String>,
    ) -> Config {
        let listen = match &raw.server.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 7600)),
            Some(s) => {
                let parsed = s.get_ref().parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "invalid address {:?}: expected IP:PORT, like \"127.0.0.1:7600\"",
                        s.get_ref()
                    )
                });
                self.check(s.span(), "server.listen", parsed)
                    .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7600)))
            }
        };
        let server = ServerConfig {
            listen,
            max_body: self.size(&raw.server.max_body, "server.max_body", 1..(1 << 32), 1 << 20),
            queue: self.int(&raw.server.queue, "server.queue", 1..10_000_001, 10_000) as usize,
            workers: match self.int(&raw.server.workers, "server.workers", 0..257, 0) {
                0 => num_cpus::get().max(1),
                n => n as usize,
            },
            header_timeout: self.duration(
                &raw.server.header_timeout,
                "server.header_timeout",
                Duration::from_secs(10),
            ),
            body_timeout: self.duration(
                &raw.server.body_timeout,
                "server.body_timeout",
                Duration::from_secs(10),
            ),
            max_connections: self.int(
                &raw.server.max_connections,
                "server.max_connections",
                1..1_000_001,
                1024,
            ) as usize,
            send_timeout: self.duration(
                &raw.server.send_timeout,
                "server.send_timeout",
                Duration::from_secs(10),
            ),
        };
        let default_limits = self.limits(raw.plugins.limits(), "plugins", Limits::default());
        let plugins_dir = base.join(raw.plugins.dir.as_ref().map_or("plugins/dist", |d| d.get_ref()));
        let known = match list_plugins(&plugins_dir) {
            Ok(known) => Some(known),
            Err(e) => {
                let span = raw.plugins.dir.as_ref().map(|d| d.span());
                self.error(
                    span,
                    format!(
                        "plugins.dir: cannot list plugins in {}: {e}",
                        plugins_dir.display()
                    ),
                );
                None
            }
        };
        let mut plugin_settings = BTreeMap::new();
        for (name, table) in &raw.plugin {
            let prefix = format!("plugin.{name}");
            if let Some(known) = &known {
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
            let limits = self.limits(table.get_ref().limits(), &prefix, default_limits);
            let config = table
                .get_ref()
                .config
                .as_ref()
                .map_or(Value::Object(Default::default()), |t| {
                    toml_to_json(&toml::Value::Table(t.clone()))
                });
            plugin_settings.insert(name.clone(), PluginSettings { limits, config });
        }
        let hop_limit = self.int(&raw.router.hop_limit, "router.hop_limit", 1..256, 8) as u32;
        let max_cascade = self.int(
            &raw.router.max_cascade,
            "router.max_cascade",
            1..1_000_001,
            DEFAULT_MAX_CASCADE.into(),
        ) as u32;
        let max_cascade_bytes = self.size(
            &raw.router.max_cascade_bytes,
            "router.max_cascade_bytes",
            1..(1 << 30) + 1,
            DEFAULT_MAX_CASCADE_BYTES,
        );
        let dead_letter = base.join(
            raw.dead_letter
                .path
                .as_ref()
                .map_or("data/dead-letter.ndjson", |p| p.get_ref()),
        );
        let state_dir = base.join(raw.state.dir.as_ref().map_or("data", |d| d.get_ref()));
        let tail_sources = self.tail_sources(&raw.source.tail, base);
        let mut sinks = BTreeMap::new();
        for (name, sink) in &raw.sinks {
            let s = sink.get_ref();
            let kind = s.kind.get_ref().as_str();
            if kind != "http" {
                self.no_http_keys(name, kind, s);
            }
            let parsed = match (kind, &s.path) {
                ("http", _) => self.http_sink(name, s, sink.span()).map(SinkConfig::Http),
                ("file", Some(path)) => Some(SinkConfig::File {
                    path: base.join(path.get_ref()),
                }),
                ("file", None) => {
                    self.error(
                        Some(sink.span()),
                        format!("sink.{name}: type \"file\" needs a path"),
                    );
                    None
                }
                ("stdout", None) => Some(SinkConfig::Stdout),
                ("stdout", Some(path)) => {
                    self.error(
                        Some(path.span()),
                        format!("sink.{name}.path: a \"stdout\" sink takes no path"),
                    );
                    None
                }
                (other, _) => {
                    self.error(
                        Some(s.kind.span()),
                        format!(
                            "sink.{name}.type: unknown sink type {other:?} (known: \"file\", \"stdout\", \"http\")"
                        ),
                    );
                    None
                }
            };
            if let Some(parsed) = parsed {
                sinks.insert(name.clone(), parsed);
            }
        }
        let admin_listen = self.admin(&raw.admin, server.listen);
        let auth = self.auth(&raw.auth, base);
        let stream = self.stream(&raw.stream);
        let plugin_log = self.log_limit(&raw.plugins);
        let loading = {
            let d = LoadLimits::default();
            LoadLimits {
                max_file_size: self.size(
                    &raw.plugins.max_file_size,
                    "plugins.max_file_size",
                    1..(1 << 32),
                    d.max_file_size,
                ),
                compile_timeout: self.duration(
                    &raw.plugins.compile_timeout,
                    "plugins.compile_timeout",
                    d.compile_timeout,
                ),
            }
        };
        let mut routes: Vec<Route> = Vec::new();
        let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for spanned in &raw.routes {
            let r = spanned.get_ref();
            let name = r.name.get_ref().clone();
            let here = line_col(self.src, r.name.span().start);
            if name.is_empty() {
                self.error(Some(r.name.span()), "route.name: must not be empty".into());
            } else if let Some((line, col)) = seen.get(&name) {
                self.error(
                    Some(r.name.span()),
                    format!(
                        "route {name:?}: duplicate route name (first defined at line {line}, column {col})"
                    ),
                );
            } else {
                seen.insert(name.clone(), here);
            }
            if let Some(route) = self.route(r, spanned.span(), known.as_ref(), &raw.sinks, &plugins_dir) {
                routes.push(route);
            }
        }
        Config {
            file: PathBuf::new(),
            warnings: ConfigErrors {
                file: PathBuf::new(),
                errors: Vec::new(),
            },
            server,
            plugins_dir,
            default_limits,
            loading,
            plugin_settings,
            hop_limit,
            max_cascade,
            max_cascade_bytes,
            dead_letter,
            state_dir,
            tail_sources,
            routes,
            sinks,
            admin_listen,
            auth,
            stream,
            plugin_log,
        }
    }

    fn route<S>(
        &mut self,
        r: &RawRoute,
        span: Range<usize>,
        known: Option<&BTreeSet<String>>,
        sinks: &BTreeMap<String, S>,
        plugins_dir: &Path,
    ) -> Option<Route> {
        let before = self.errors.len();
        let what = format!("route {:?}", r.name.get_ref());
        let m = &r.matcher;
        let name = m.name.as_ref().and_then(|g| {
            self.check(
                g.span(),
                &format!("{what}: match.name"),
                NameGlob::new(g.get_ref()),
            )
        });
        let source = m.source.as_ref().and_then(|g| {
            self.check(
                g.span(),
                &format!("{what}: match.source"),
                NameGlob::new(g.get_ref()),
            )
        });
        let version = m.version.as_ref().and_then(|v| {
            self.check(
                v.span(),
                &format!("{what}: match.version"),
                VersionReq::parse(v.get_ref()),
            )
        });
        let data = self.predicates(&m.data, &format!("{what}: match.data"));
        let meta = self.predicates(&m.meta, &format!("{what}: match.meta"));
        let mut require = Vec::new();
        for key in &r.require {
            if let Some(p) = self.check(
                key.span(),
                &format!("{what}: require"),
                FieldPath::new(key.get_ref()),
            ) {
                require.push(p);
            }
        }
        for h in &r.handlers {
            if let Some(known) = known {
                if !known.contains(h.get_ref()) {
                    self.warn(
                        Some(h.span()),
                        format!(
                            "{what}: handlers: unknown plugin {:?}: no {0}.wasm or {0}.wat in {} ({}); \
                             its events go to dead letters as `unavailable`",
                            h.get_ref(),
                            plugins_dir.display(),
                            listing(known)
                        ),
                    );
                }
            }
        }
        for s in &r.sinks {
            if !sinks.contains_key(s.get_ref()) {
                let names: BTreeSet<String> = sinks.keys().cloned().collect();
                self.error(
                    Some(s.span()),
                    format!(
                        "{what}: sinks: unknown sink {:?} ({})",
                        s.get_ref(),
                        listing_of("sinks", &names)
                    ),
                );
            }
        }
        if r.handlers.is_empty() && r.sinks.is_empty() {
            self.error(
                Some(span),
                format!("{what}: has neither handlers nor sinks, so it would do nothing"),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Route {
            name: r.name.get_ref().clone(),
            matcher: Matcher {
                name,
                version,
                source,
                data,
                meta,
            },
            require,
            handlers: r.handlers.iter().map(|h| h.get_ref().clone()).collect(),
            sinks: r.sinks.iter().map(|s| s.get_ref().clone()).collect(),
            is_final: r.is_final,
        })
    }

    fn predicates(
        &mut self,
        table: &BTreeMap<String, Spanned<toml::Value>>,
        what: &str,
    ) -> Vec<(FieldPath, Predicate)> {
        let mut out = Vec::new();
        for (key, value) in table {
            let Some(path) = self.check(value.span(), what, FieldPath::new(key)) else {
                continue;
            };
            let predicate = match value.get_ref() {
                toml::Value::Table(t) => match (t.len(), t.get("exists"), t.get("one_of")) {
                    (1, Some(toml::Value::Boolean(b)), _) => Ok(Predicate::Exists(*b)),
                    (1, _, Some(toml::Value::Array(vs))) => {
                        Ok(Predicate::OneOf(vs.iter().map(toml_to_json).collect()))
                    }
                    _ => Err(format!(
                        "{key:?}: a predicate is a value, {{ exists = true|false }} or {{ one_of = [..] }}"
                    )),
                },
                other => Ok(Predicate::Equals(toml_to_json(other))),
            };
            if let Some(p) = self.check(value.span(), what, predicate) {
                out.push((path, p));
            }
        }
        out
    }
}

fn listing(known: &BTreeSet<String>) -> String {
    listing_of("plugins", known)
}

fn listing_of(what: &str, names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!(
            "{what}: {}",
            names.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
        )
    }
}

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

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests;
