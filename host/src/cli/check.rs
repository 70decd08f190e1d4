//! `switchyard check`: the config and every plugin, every problem at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::output;
use crate::app::{LoadReport, PluginLoader};
use crate::config::Config;
use crate::runtime::Runtime;

/// Validates; returns a summary on success, or every problem, one per line.
pub fn check(config_path: &Path) -> Result<String, Vec<String>> {
    let config = Config::load(config_path)
        .map_err(|e| e.to_string().lines().map(str::to_string).collect::<Vec<_>>())?;
    let rt = Runtime::new(1).map_err(|e| vec![format!("{e:#}")])?;
    // The same loading as the daemon's, compiling now and caching nothing.
    let plugins = PluginLoader::now(rt)
        .load(&config, None, None, &mut LoadReport::default())
        .map_err(|e| vec![format!("{e:#}")])?;
    let mut problems: Vec<String> = config.warnings.to_string().lines().map(str::to_string).collect();
    for (plugin, e) in &plugins.errors {
        problems.push(e.clone());
        let routes: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| r.handlers.iter().any(|h| h == plugin))
            .map(|r| r.name.as_str())
            .collect();
        if !routes.is_empty() {
            problems.push(format!(
                "plugin {plugin:?} is a handler of route(s) {}: its events would go to dead letters as `unavailable`",
                routes.join(", ")
            ));
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

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "router.toml")]
    pub config: PathBuf,
}

/// Prints the summary on stdout and exits 0, or every problem and their
/// count on stderr and exits 1.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match check(&args.config) {
        Ok(summary) => {
            output::stdout().line(summary)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}
