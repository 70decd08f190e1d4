//! The `switchyard` command line: one module per command, the top layer of
//! the crate (it may use any module; none uses it). `main.rs` parses [`Cli`]
//! and calls [`run()`].
//!
//! - [`run`](mod@run): `switchyard run`, the daemon;
//! - [`check`]: `switchyard check`, the config and every plugin;
//! - [`plugin`]: `switchyard plugin run`, one invocation offline;
//! - [`send`], [`tail`] and [`dead_letter`]: client commands that talk to a
//!   running daemon over HTTP ([`client`]); `dead-letter replay` marks what
//!   it replayed ([`marks`]).
//!
//! What a command prints for programs goes to standard output through
//! [`output`], where a reader that goes away is not an error; everything
//! else (problems, summaries, logs) goes to standard error.

pub mod check;
pub mod client;
pub mod dead_letter;
pub mod marks;
pub mod output;
pub mod plugin;
pub mod run;
pub mod send;
pub mod tail;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The whole command line: global options and one command. (A plain comment:
// a doc comment here would become the `--help` text.)
#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Routes events to sandboxed WebAssembly handlers"
)]
pub struct Cli {
    /// Log format on stderr: human (default) or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// The commands; the doc comment of each is its `--help` line.
#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run(run::Args),
    /// Validate the config and every plugin; print every problem; exit 1 if any.
    Check(check::Args),
    /// Work with plugin files.
    Plugin {
        #[command(subcommand)]
        command: plugin::Command,
    },
    /// Post one event to a running daemon.
    Send(send::Args),
    /// Print routed events as they arrive (the live stream), one JSON line each.
    Tail(tail::Args),
    /// List or replay the dead-letter log named in the config.
    DeadLetter {
        #[command(subcommand)]
        command: dead_letter::Command,
    },
}

/// Runs the command. Errors: whatever stopped it, with its causes; an
/// [`output::Closed`] error is not a failure (see [`output`]).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.log_format),
        Command::Check(args) => check::run(args),
        Command::Plugin { command } => plugin::run(command),
        Command::Send(args) => send::run(args),
        Command::Tail(args) => tail::run(args),
        Command::DeadLetter { command } => dead_letter::run(command),
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per record, for people.
    Human,
    /// One JSON object per record (fields at the top level), for collectors.
    Json,
}

/// Installs the global subscriber: stderr, filter from `SWITCHYARD_LOG`
/// (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .init(),
    }
}
