use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::app::{self, Daemon};
use switchyard::cli::{self, LogFormat};
use switchyard::config::{units, Config, Limits};
use switchyard::plugin_run;

// Events are built on one thread and freed on another (sources, workers,
// sinks); glibc's malloc serialises that on arena locks and was the largest
// cost in the tail benchmark. mimalloc frees across threads without them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Routes events to sandboxed WebAssembly handlers"
)]
struct Cli {
    /// Log format on stderr: human (default) or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        #[arg(long, default_value = "router.toml")]
        config: PathBuf,
    },
    /// Validate the config and every plugin; print every problem; exit 1 if any.
    Check {
        #[arg(long, default_value = "router.toml")]
        config: PathBuf,
    },
    /// Work with plugin files.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Post one event to a running daemon.
    Send(cli::send::Args),
    /// Print routed events as they arrive (the live stream), one JSON line each.
    Tail(cli::tail::Args),
    /// List or replay the dead-letter log named in the config.
    DeadLetter {
        #[command(subcommand)]
        command: cli::dead_letter::Command,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Invoke a plugin once on one event, offline; exit 0 only if it succeeds.
    Run {
        /// The plugin file (.wasm or .wat).
        plugin: PathBuf,
        /// A file holding the event as JSON, or - for stdin.
        #[arg(long)]
        event: String,
        /// The plugin's config, as a JSON object.
        #[arg(long, default_value = "{}")]
        config: String,
        #[arg(long)]
        fuel: Option<u64>,
        /// Linear memory cap, e.g. 32MiB.
        #[arg(long)]
        memory: Option<String>,
        /// Wall-clock deadline, e.g. 250ms.
        #[arg(long)]
        timeout: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let log_format = cli.log_format;
    match cli.command {
        Command::Send(args) => cli::send::run(args),
        Command::Tail(args) => cli::tail::run(args),
        Command::DeadLetter { command } => cli::dead_letter::run(command),
        Command::Run { config } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let outcome = rt.block_on(async {
                // First: from here on no signal ends the process by its
                // default action (issue 16).
                let mut signals = app::Signals::install()?;
                cli::init_logging(log_format);
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
        Command::Check { config } => match switchyard::check::check(&config) {
            Ok(summary) => {
                println!("{summary}");
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("{} problem(s) found", problems.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Plugin {
            command:
                PluginCommand::Run {
                    plugin,
                    event,
                    config,
                    fuel,
                    memory,
                    timeout,
                    json,
                },
        } => {
            let event_json = if event == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read the event from stdin")?;
                s
            } else {
                std::fs::read_to_string(&event)
                    .with_context(|| format!("cannot read the event file {event}"))?
            };
            let config: serde_json::Value =
                serde_json::from_str(&config).context("--config is not valid JSON")?;
            anyhow::ensure!(config.is_object(), "--config must be a JSON object");
            let mut limits = Limits::default();
            if let Some(f) = fuel {
                limits.fuel = f;
            }
            if let Some(m) = memory {
                limits.memory = units::parse_size(&units::RawSize::Text(m))
                    .map_err(anyhow::Error::msg)
                    .context("--memory")?;
            }
            if let Some(t) = timeout {
                limits.timeout = units::parse_duration(&t)
                    .map_err(anyhow::Error::msg)
                    .context("--timeout")?;
            }
            let (plugin, event, inv) =
                plugin_run::run(&plugin, &event_json, plugin_run::Options { limits, config })?;
            if json {
                println!("{}", plugin_run::render_json(&plugin, &event, &inv));
            } else {
                print!("{}", plugin_run::render(&plugin, &event, &inv));
            }
            Ok(if inv.outcome.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
