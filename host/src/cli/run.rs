//! `switchyard run`: the daemon, from config to graceful stop. The exit
//! status says whether everything accepted was written where it belonged
//! (issue 17).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::LogFormat;
use crate::app::{self, Daemon};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "router.toml")]
    pub config: PathBuf,
}

/// Runs until SIGTERM or SIGINT. Exit status: 0 when stopped cleanly (or
/// before anything was accepted), [`app::EXIT_UNWRITTEN`] when something
/// accepted could not be written. Errors: a config with problems (each
/// printed on stderr), or a daemon that could not start.
pub fn run(args: Args, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let config = args.config;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = rt.block_on(async {
        // First: from here on no signal ends the process by its
        // default action (issue 16).
        let mut signals = app::Signals::install()?;
        super::init_logging(log_format);
        let cfg = match Config::load(&config) {
            Ok(cfg) => cfg,
            Err(errors) => {
                eprintln!("{errors}");
                anyhow::bail!(
                    "{} has {} problem(s); nothing was started",
                    config.display(),
                    errors.errors.len()
                );
            }
        };
        let starting = Daemon::bind(cfg).await?;
        // SIGTERM while starting stops at once: it does not wait
        // for plugins to compile (issue 16).
        let daemon = tokio::select! {
            d = starting.load() => d?,
            _ = signals.stop() => {
                tracing::info!("stopped while starting; nothing was accepted yet");
                return Ok(None);
            }
        };
        signals.stop().await;
        daemon.shutdown().await.map(Some)
    });
    // A compile abandoned by a stop must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    // Something accepted could not be written where it belonged:
    // the exit code says so (issue 17).
    Ok(match outcome? {
        Some(stopped) if !stopped.clean() => ExitCode::from(app::EXIT_UNWRITTEN),
        _ => ExitCode::SUCCESS,
    })
}
