//! Client commands that talk to a running daemon over HTTP: `send`, `tail`
//! and `dead-letter list|replay`; and logging set-up for every command.

pub mod client;
pub mod dead_letter;
pub mod marks;
pub mod send;
pub mod tail;

use std::io::IsTerminal;

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
