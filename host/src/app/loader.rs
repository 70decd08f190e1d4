//! Loading: compiles every plugin and opens every sink of a config into a
//! complete [`Snapshot`], off the hot path, reusing what has not changed
//! in the previous one. If one plugin fails, its previous version keeps
//! serving. (`reload` reads the config again and swaps the result in.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::registry;
use super::reload::LoadReport;
use crate::config::Config;
use crate::pipeline::Snapshot;
use crate::router::Router;
use crate::runtime::cache::{self, Origin};
use crate::runtime::compile::{Compiled, Compiler, RELOAD_WAIT};
use crate::runtime::plugin::check_size;
use crate::runtime::{FileFacts, Plugin, Runtime};
use crate::sinks::{self, Sink};

/// A plugin file changed this recently may still be being written: it is
/// loaded only once it is this old, or known complete (closed or renamed in).
pub const SETTLE: Duration = Duration::from_millis(300);

/// Builds snapshots; one per daemon, shared by the start and every reload.
pub struct Loader {
    rt: Arc<Runtime>,
    /// Compiles off the reload path; see `runtime::compile`.
    compiler: Compiler,
    /// The config file a reload reads again.
    pub(super) config_path: PathBuf,
    /// One load at a time: reloads from the watcher, SIGHUP and the API queue up.
    pub(super) serial: Mutex<()>,
    /// For sinks that deliver in the background (webhooks).
    sink_context: Option<sinks::SinkContext>,
}

impl Loader {
    pub fn new(rt: Arc<Runtime>, config_path: &Path) -> Loader {
        Loader {
            compiler: Compiler::new(rt.engine(), Arc::new(|| {})),
            rt,
            config_path: config_path.to_path_buf(),
            serial: Mutex::new(()),
            sink_context: None,
        }
    }

    /// Calls `notify` (from a compile thread) when a compile ends or goes
    /// over time: the daemon asks for a reload, which swaps the result in.
    pub fn with_compile_notify(mut self, notify: Arc<dyn Fn() + Send + Sync>) -> Loader {
        self.compiler = Compiler::new(self.rt.engine(), notify);
        self
    }

    /// Lets the snapshots built open webhook sinks.
    pub fn with_sink_context(mut self, ctx: sinks::SinkContext) -> Loader {
        self.sink_context = Some(ctx);
        self
    }

    /// Builds a snapshot from `config`, reusing unchanged plugins and sinks
    /// of `previous`. `settled` are files known to be completely written;
    /// `None` takes every file as it is (at start, nothing is being swapped).
    pub fn build(
        &self,
        config: Config,
        previous: Option<&Snapshot>,
        settled: Option<&BTreeSet<PathBuf>>,
    ) -> anyhow::Result<(Snapshot, LoadReport)> {
        let mut report = LoadReport {
            warnings: config.warnings.to_string().lines().map(str::to_string).collect(),
            ..LoadReport::default()
        };
        let files = registry::plugin_files(&config.plugins_dir)
            .with_context(|| format!("cannot list plugins in {}", config.plugins_dir.display()))?;
        let cache_dir = config.state_dir.join("compiled");
        // At start the compiles running may take their whole time limit; a
        // reload answers after a short wait. Either reports the rest as
        // `compiling` (those still waiting for a slot too), and swaps each
        // in by a reload when its compile ends.
        let until = match previous {
            None => crate::config::units::instant_after(Instant::now(), config.loading.compile_timeout),
            Some(_) => Instant::now() + RELOAD_WAIT,
        };
        let mut plugins = BTreeMap::new();
        let mut plugin_errors = BTreeMap::new();
        let mut pending = Vec::new();
        for (name, path) in &files {
            let old = previous.and_then(|p| p.plugins.get(name));
            match self.prepare(&config, name, path, old, settled, &mut report) {
                Step::Done(Ok(p)) => {
                    plugins.insert(name.clone(), p);
                }
                Step::Done(Err(e)) => {
                    report.failed.insert(name.clone(), e.clone());
                    plugin_errors.insert(name.clone(), e);
                    if let Some(old) = old {
                        plugins.insert(name.clone(), old.clone());
                    }
                }
                Step::Keep => keep(name, old, previous, &mut plugins, &mut plugin_errors, &mut report),
                Step::Compile(c) => pending.push(c),
            }
        }
        // Smallest file first, so that the slots go to the quick compiles
        // (issue 16: big modules must not delay the others).
        pending.sort_by_key(|c: &Pending| c.size);
        for c in &mut pending {
            if let Some(bytes) = c.bytes.take() {
                let limit = config.loading.compile_timeout;
                self.compiler.start(bytes, &c.sha256, &cache_dir, limit);
            }
        }
        let mut collected: BTreeMap<String, Compiled> = BTreeMap::new();
        for c in &pending {
            let (name, old) = (c.name.clone(), previous.and_then(|p| p.plugins.get(&c.name)));
            let compiled = collected
                .entry(c.sha256.clone())
                .or_insert_with(|| self.compiler.collect(&c.sha256, until))
                .clone();
            match self.finish(c, compiled, &mut report) {
                Ok(Some(p)) => {
                    plugins.insert(name, p);
                }
                Ok(None) => keep(
                    &name,
                    old,
                    previous,
                    &mut plugins,
                    &mut plugin_errors,
                    &mut report,
                ),
                Err(e) => {
                    report.failed.insert(name.clone(), e.clone());
                    plugin_errors.insert(name.clone(), e);
                    if let Some(old) = old {
                        plugins.insert(name, old.clone());
                    }
                }
            }
        }
        if let Some(prev) = previous {
            report.unloaded = prev
                .plugins
                .keys()
                .filter(|n| !files.contains_key(*n))
                .cloned()
                .collect();
        }
        let mut open: BTreeMap<String, Arc<dyn Sink>> = BTreeMap::new();
        for (name, sink) in &config.sinks {
            let reuse = previous
                .filter(|p| p.config.sinks.get(name) == Some(sink))
                .and_then(|p| p.sinks.get(name));
            let s = match reuse {
                Some(s) => s.clone(),
                None => Arc::from(
                    sinks::open(name, sink, self.sink_context.as_ref())
                        .with_context(|| format!("sink {name:?}"))?,
                ),
            };
            open.insert(name.clone(), s);
        }
        let snapshot = Snapshot {
            router: Router::new(config.routes.clone()),
            config: Arc::new(config),
            plugins,
            plugin_errors,
            sinks: open,
        };
        Ok((snapshot, report))
    }

    /// What to do with one plugin file: reuse, keep, refuse, or compile
    /// (asked for by [`Loader::build`], collected by [`Loader::finish`]).
    #[allow(clippy::too_many_arguments)]
    fn prepare(
        &self,
        config: &Config,
        name: &str,
        path: &Path,
        old: Option<&Arc<Plugin>>,
        settled: Option<&BTreeSet<PathBuf>>,
        report: &mut LoadReport,
    ) -> Step {
        let settings = config.settings_for(name);
        let limits = config.loading;
        if let Err(e) = check_size(name, path, limits.max_file_size) {
            return Step::Done(Err(e.to_string()));
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return Step::Done(Err(format!(
                    "plugin {name:?} ({}): cannot read: {e}",
                    path.display()
                )))
            }
        };
        let sha256 = cache::sha256_hex(&bytes);
        if let Some(old) = old.filter(|o| o.sha256 == sha256 && o.path == path) {
            report.reused += 1;
            if old.settings == settings {
                return Step::Done(Ok(old.clone()));
            }
            return Step::Done(
                old.with_settings(&self.rt, settings)
                    .map(Arc::new)
                    .map_err(|e| e.to_string()),
            );
        }
        let complete = settled.is_none_or(|s| s.contains(&std::fs::canonicalize(path).unwrap_or_default()));
        if !complete && recently_modified(path) {
            report.deferred.push(name.to_string());
            return Step::Keep;
        }
        let size = bytes.len() as u64;
        Step::Compile(Pending {
            name: name.to_string(),
            path: path.to_path_buf(),
            size,
            sha256,
            settings,
            bytes: Some(bytes),
        })
    }

    /// Turns a collected compile into the plugin; `Ok(None)` while it runs.
    fn finish(
        &self,
        c: &Pending,
        compiled: Compiled,
        report: &mut LoadReport,
    ) -> Result<Option<Arc<Plugin>>, String> {
        let where_ = format!("plugin {:?} ({})", c.name, c.path.display());
        let (module, origin) = match compiled {
            Compiled::Ready(module, origin) => (module, origin),
            Compiled::Compiling(how) => {
                report.compiling.insert(c.name.clone(), how);
                return Ok(None);
            }
            Compiled::Failed(msg) => return Err(format!("{where_}: {msg}")),
        };
        match origin {
            Origin::Cached => report.from_cache += 1,
            Origin::Compiled | Origin::Recompiled => report.compiled += 1,
        }
        let facts = FileFacts {
            path: &c.path,
            size: c.size,
            sha256: c.sha256.clone(),
        };
        let plugin = Plugin::from_module(&self.rt, &c.name, facts, module, c.settings.clone())
            .map_err(|e| e.to_string())?;
        report.loaded.push(c.name.clone());
        Ok(Some(Arc::new(plugin)))
    }
}

/// What [`Loader::prepare`] decided for one file.
enum Step {
    /// The plugin (reused or re-prepared), or why it cannot load.
    Done(Result<Arc<Plugin>, String>),
    /// Not loaded now (deferred or waiting to compile): the serving version
    /// and its last error stand.
    Keep,
    Compile(Pending),
}

/// A plugin whose compile was asked for: running, or waiting for a slot.
struct Pending {
    name: String,
    path: PathBuf,
    size: u64,
    sha256: String,
    settings: crate::config::PluginSettings,
    /// The bytes, until their compile is asked for.
    bytes: Option<Vec<u8>>,
}

/// Keeps the serving version of `name`, and its last error, as they are.
fn keep(
    name: &str,
    old: Option<&Arc<Plugin>>,
    previous: Option<&Snapshot>,
    plugins: &mut BTreeMap<String, Arc<Plugin>>,
    plugin_errors: &mut BTreeMap<String, String>,
    report: &mut LoadReport,
) {
    if let Some(old) = old {
        plugins.insert(name.to_string(), old.clone());
    }
    if let Some(e) = previous.and_then(|p| p.plugin_errors.get(name)) {
        report.failed.insert(name.to_string(), e.clone());
        plugin_errors.insert(name.to_string(), e.clone());
    }
}

fn recently_modified(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < SETTLE)
}
