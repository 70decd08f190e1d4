//! `switchyard plugin run`: one invocation offline, the handler author's
//! inner loop.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::{Limits, LoadLimits, PluginSettings};
use crate::envelope::Event;
use crate::runtime::{Invocation, Plugin, Runtime};

pub struct Options {
    pub limits: Limits,
    pub config: Value,
}

/// Loads the plugin and runs it once on the event JSON.
pub fn run(
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
    let plugin = Plugin::load(&rt, name, plugin_path, settings, LoadLimits::default())?;
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
