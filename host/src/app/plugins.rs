//! Loading plugins: the one function through which the daemon (at start
//! and on every reload) and `switchyard check` load the plugins of a
//! config, [`PluginLoader::load`]: list the folder, check sizes, reuse
//! what has not changed, compile the rest, check each module's ABI. Only
//! how compiles run differs (see [`PluginLoader`]). If one plugin fails,
//! its previous version keeps serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::reload::LoadReport;
use crate::config::plugin_files;
use crate::config::Config;
use crate::pipeline::Snapshot;
use crate::runtime::artifact::Artifact;
use crate::runtime::cache::{self, Origin};
use crate::runtime::compile::{Compiled, Compiler, RELOAD_WAIT};
use crate::runtime::plugin::check_size;
use crate::runtime::{FileFacts, Plugin, Runtime};

/// A plugin file changed this recently may still be being written: it is
/// loaded only once it is this old, or known complete (closed or renamed in).
pub const SETTLE: Duration = Duration::from_millis(300);

/// How a [`PluginLoader`] compiles.
enum Compiling {
    /// Off the reload path, a few at a time, smallest first, cached in
    /// `<[state] dir>/compiled` (`runtime::compile`): the daemon.
    Background(Compiler),
    /// Each in turn, now, within `compile_timeout`, cached nowhere:
    /// `switchyard check`, which must not write the daemon's state.
    Now,
}

/// Loads the plugins of a config.
pub struct PluginLoader {
    rt: Arc<Runtime>,
    compiling: Compiling,
}

/// The plugins that loaded (or serve on from before), and why the others
/// did not.
pub struct Plugins {
    pub loaded: BTreeMap<String, Arc<Plugin>>,
    /// By plugin name, the error of its last load.
    pub errors: BTreeMap<String, String>,
}

impl PluginLoader {
    /// The daemon's loader. It calls `notify` (from a compile thread) when
    /// a compile it stopped waiting for ends or goes over time: the daemon
    /// asks for a reload, which swaps the result in.
    pub fn background(rt: Arc<Runtime>, notify: Arc<dyn Fn() + Send + Sync>) -> PluginLoader {
        PluginLoader {
            compiling: Compiling::Background(Compiler::new(rt.engine(), notify)),
            rt,
        }
    }

    /// `switchyard check`'s loader: compiles each plugin now and caches
    /// nothing.
    pub fn now(rt: Arc<Runtime>) -> PluginLoader {
        PluginLoader {
            rt,
            compiling: Compiling::Now,
        }
    }

    /// Loads every plugin of `config`, reusing unchanged ones of
    /// `previous`; notes what it did in `report`. `settled` are files known
    /// to be completely written; `None` takes every file as it is (at start
    /// and in `check`, nothing is being swapped). Errors: the plugins folder
    /// cannot be listed.
    pub fn load(
        &self,
        config: &Config,
        previous: Option<&Snapshot>,
        settled: Option<&BTreeSet<PathBuf>>,
        report: &mut LoadReport,
    ) -> anyhow::Result<Plugins> {
        let files = plugin_files(&config.plugins_dir)
            .with_context(|| format!("cannot list plugins in {}", config.plugins_dir.display()))?;
        let cache_dir = config.state_dir.join("compiled");
        let limit = config.loading.compile_timeout;
        // At start the compiles running may take their whole time limit; a
        // reload answers after a short wait. Either reports the rest as
        // `compiling` (those still waiting for a slot too), and swaps each
        // in by a reload when its compile ends.
        let until = match previous {
            None => crate::config::units::instant_after(Instant::now(), limit),
            Some(_) => Instant::now() + RELOAD_WAIT,
        };
        let mut plugins = BTreeMap::new();
        let mut plugin_errors = BTreeMap::new();
        let mut pending = Vec::new();
        for (name, path) in &files {
            let old = previous.and_then(|p| p.plugins.get(name));
            match self.prepare(config, name, path, old, settled, report) {
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
                Step::Keep => keep(name, old, previous, &mut plugins, &mut plugin_errors, report),
                Step::Compile(c) => pending.push(c),
            }
        }
        // Smallest file first, so that the slots go to the quick compiles
        // (issue 16: big modules must not delay the others).
        pending.sort_by_key(|c: &Pending| c.size);
        if let Compiling::Background(compiler) = &self.compiling {
            for c in &mut pending {
                if let Some(bytes) = c.bytes.take() {
                    compiler.start(bytes, &c.sha256, &cache_dir, limit);
                }
            }
        }
        let mut collected: BTreeMap<String, Compiled> = BTreeMap::new();
        for c in &mut pending {
            let (name, old) = (c.name.clone(), previous.and_then(|p| p.plugins.get(&c.name)));
            let compiled = match &self.compiling {
                Compiling::Background(compiler) => collected
                    .entry(c.sha256.clone())
                    .or_insert_with(|| compiler.collect(&c.sha256, until))
                    .clone(),
                Compiling::Now => compile_now(&self.rt, c.bytes.take().unwrap_or_default(), limit),
            };
            match self.finish(c, compiled, report) {
                Ok(Some(p)) => {
                    plugins.insert(name, p);
                }
                Ok(None) => keep(&name, old, previous, &mut plugins, &mut plugin_errors, report),
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
        Ok(Plugins {
            loaded: plugins,
            errors: plugin_errors,
        })
    }

    /// What to do with one plugin file: reuse, keep, refuse, or compile
    /// (asked for by [`PluginLoader::load`], collected by
    /// [`PluginLoader::finish`]).
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
        let (artifact, origin) = match compiled {
            Compiled::Ready(artifact, origin) => (artifact, origin),
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
        let plugin = Plugin::from_artifact(&self.rt, &c.name, facts, artifact, c.settings.clone())
            .map_err(|e| e.to_string())?;
        report.loaded.push(c.name.clone());
        Ok(Some(Arc::new(plugin)))
    }
}

/// What [`PluginLoader::prepare`] decided for one file.
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

/// Compiles `bytes` on a thread of its own, waiting at most `limit`: the
/// messages are those of a background compile's (`does not compile: …`),
/// and of [`crate::runtime::plugin::PluginError`] for the time limit.
fn compile_now(rt: &Runtime, bytes: Vec<u8>, limit: Duration) -> Compiled {
    let (tx, rx) = std::sync::mpsc::channel();
    let engine = rt.engine().clone();
    let spawned = std::thread::Builder::new().name("compile".into()).spawn(move || {
        let _ = tx.send(Artifact::compile(&engine, &bytes));
    });
    if let Err(e) = spawned {
        return Compiled::Failed(format!("cannot read: {e}"));
    }
    match rx.recv_timeout(limit) {
        Ok(Ok(artifact)) => Compiled::Ready(artifact, Origin::Compiled),
        Ok(Err(e)) => Compiled::Failed(format!("does not compile: {e:#}")),
        Err(_) => Compiled::Failed(format!(
            "did not compile within {limit:?} ([plugins] compile_timeout)"
        )),
    }
}

fn recently_modified(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < SETTLE)
}
