//! `switchyard plugin run`: one invocation offline, the handler author's
//! inner loop.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use super::output;
use crate::config::{units, Limits, LoadLimits, PluginSettings};
use crate::event::Event;
use crate::runtime::{Invocation, Plugin, Runtime};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
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

/// Runs the plugin once and prints the result on stdout. Exit status: 0
/// when the invocation succeeded, 1 when it failed (also when the reader
/// of stdout went away first). Errors: a bad argument, an unreadable event,
/// a plugin that does not load.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Run {
        plugin,
        event,
        config,
        fuel,
        memory,
        timeout,
        json,
    } = command;
    let event_json = if event == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the event from stdin")?;
        s
    } else {
        std::fs::read_to_string(&event).with_context(|| format!("cannot read the event file {event}"))?
    };
    let config: Value = serde_json::from_str(&config).context("--config is not valid JSON")?;
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
    let (plugin, event, inv) = invoke(&plugin, &event_json, Options { limits, config })?;
    let text = if json {
        format!("{}\n", render_json(&plugin, &event, &inv))
    } else {
        render(&plugin, &event, &inv)
    };
    match output::stdout().text(&text) {
        // The outcome, not the reader, decides the exit status.
        Err(e) if !output::is_closed(&e) => return Err(e),
        _ => {}
    }
    Ok(if inv.outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How to run the plugin: what the daemon would take from `[plugins]` and
/// `[plugin.NAME]`.
pub struct Options {
    /// Fuel, memory cap and deadline (the defaults, or the flags).
    pub limits: Limits,
    /// The plugin's config object (`--config`).
    pub config: Value,
}

/// Loads the plugin and runs it once on the event JSON. Errors: the event
/// is not a valid event, or the plugin does not load.
pub fn invoke(
    plugin_path: &Path,
    event_json: &str,
    opts: Options,
) -> anyhow::Result<(Plugin, Event, Invocation)> {
    let value: Value = serde_json::from_str(event_json).context("the event is not valid JSON")?;
    let event = Event::from_input(value, "cli").context("the event is not a valid event")?;
    let rt = Runtime::new(1)?;
    let name = plugin_path
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the plugin file has no name")?;
    let settings = PluginSettings {
        limits: opts.limits,
        config: opts.config,
    };
    // Offline the file is the one the author names, so no size limit, and
    // its compile may take its time: an 18 MB Python component takes
    // 10-25 s, over the daemon's default `compile_timeout`.
    let load = LoadLimits {
        max_file_size: u64::MAX,
        compile_timeout: std::time::Duration::from_secs(600),
    };
    let plugin = Plugin::load(&rt, name, plugin_path, settings, load)?;
    let inv = plugin.invoke(&event.to_json());
    Ok((plugin, event, inv))
}

/// The result for a person: outcome first, then emits and logs.
pub fn render(plugin: &Plugin, event: &Event, inv: &Invocation) -> String {
    let mut s = String::new();
    let l = plugin.limits();
    let _ = writeln!(
        s,
        "plugin   {} ({:?}, {} bytes, {})",
        plugin.name,
        plugin.kind,
        plugin.size,
        plugin.path.display()
    );
    let _ = writeln!(s, "event    {} {}", event.name, event.id);
    match &inv.outcome {
        Ok(()) => {
            let _ = writeln!(s, "outcome  ok");
        }
        Err(f) => {
            let _ = writeln!(s, "outcome  FAILED {}: {}", f.kind, f.message);
        }
    }
    let pct = inv.fuel_used as f64 * 100.0 / l.fuel as f64;
    let _ = writeln!(s, "fuel     {} of {} ({pct:.2}%)", inv.fuel_used, l.fuel);
    let _ = writeln!(
        s,
        "time     {:.3} ms (limit {:?})",
        inv.elapsed.as_secs_f64() * 1e3,
        l.timeout
    );
    let _ = writeln!(s, "logs     {}", inv.logs.len());
    for line in &inv.logs {
        let _ = writeln!(s, "  [{:5}] {}", line.level.as_str(), line.message);
    }
    if inv.dropped_logs > 0 {
        let _ = writeln!(s, "  ({} more lines dropped)", inv.dropped_logs);
    }
    let _ = writeln!(s, "emitted  {}", inv.emitted.len());
    for e in &inv.emitted {
        let _ = writeln!(s, "  {}", serde_json::to_string(e).unwrap_or_default());
    }
    s
}

/// The result for a program.
pub fn render_json(plugin: &Plugin, event: &Event, inv: &Invocation) -> Value {
    json!({
        "plugin": plugin.name,
        "kind": plugin.kind,
        "event": event.id,
        "outcome": match &inv.outcome { Ok(()) => "ok", Err(f) => f.kind.as_str() },
        "message": inv.outcome.as_ref().err().map(|f| f.message.clone()),
        "fuel_used": inv.fuel_used,
        "micros": inv.elapsed.as_micros() as u64,
        "logs": inv.logs,
        "emitted": inv.emitted,
    })
}
