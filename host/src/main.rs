//! The `switchyard` binary: parses the command line and hands it to
//! [`switchyard::cli`]; prints the error chain and exits non-zero when a
//! command fails.

use std::process::ExitCode;

use clap::Parser;
use switchyard::cli::{self, output, Cli};

// Events are built on one thread and freed on another (sources, workers,
// sinks); glibc's malloc serialises that on arena locks and was the largest
// cost in the tail benchmark. mimalloc frees across threads without them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(code) => code,
        // `| head -1`: the reader had what it wanted.
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
