//! The plugins folder: loading all of its plugins (which files are
//! plugins is the config's rule, [`plugin_files`]).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

pub use crate::config::plugin_files;
use crate::config::Config;
use crate::runtime::{Plugin, PluginError, Runtime};

/// The plugins that loaded, and why the others did not.
pub struct Plugins {
    pub loaded: BTreeMap<String, Arc<Plugin>>,
    pub errors: Vec<PluginError>,
}

/// Loads every plugin in the config's plugins folder with its settings.
pub fn load_all(rt: &Runtime, config: &Config) -> io::Result<Plugins> {
    let mut plugins = Plugins {
        loaded: BTreeMap::new(),
        errors: Vec::new(),
    };
    for (name, path) in plugin_files(&config.plugins_dir)? {
        match Plugin::load(rt, &name, &path, config.settings_for(&name), config.loading) {
            Ok(p) => {
                plugins.loaded.insert(name, Arc::new(p));
            }
            Err(e) => plugins.errors.push(e),
        }
    }
    Ok(plugins)
}
