//! `switchyard check`: the config and every plugin, every error at once.

use std::path::Path;

use crate::config::Config;
use crate::registry;
use crate::runtime::Runtime;

/// Validates; returns a summary on success, or every problem, one per line.
pub fn check(config_path: &Path) -> Result<String, Vec<String>> {
    let config = Config::load(config_path)
        .map_err(|e| e.to_string().lines().map(str::to_string).collect::<Vec<_>>())?;
    let rt = Runtime::new(1).map_err(|e| vec![format!("{e:#}")])?;
    let plugins = registry::load_all(&rt, &config).map_err(|e| {
        vec![format!(
            "cannot list plugins in {}: {e}",
            config.plugins_dir.display()
        )]
    })?;
    let mut problems: Vec<String> = plugins.errors.iter().map(|e| e.to_string()).collect();
    for route in &config.routes {
        for h in &route.handlers {
            if !plugins.loaded.contains_key(h) {
                problems.push(format!("route {:?}: handler {h:?} did not load (see above); its events would go to dead letters as `unavailable`", route.name));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(format!(
        "{}: ok: {} routes, {} plugins ({}), {} sinks",
        config_path.display(),
        config.routes.len(),
        plugins.loaded.len(),
        plugins.loaded.keys().cloned().collect::<Vec<_>>().join(", "),
        config.sinks.len()
    ))
}
