//! Plugin log lines, and handler failures (whose messages carry guest
//! text), forwarded to the daemon's log within each plugin's line and byte
//! limits (issue 16: `[plugins] log_rate`, `log_bytes`).

use crate::config::LogLimit;
use crate::event::Event;
use crate::runtime::{self, Invocation, Level, Plugin};
use crate::telemetry::PluginMetrics;

/// Forwards a plugin's log lines, and its failure (whose message carries
/// guest text), to the daemon's log, with plugin and event, within the
/// plugin's line and byte limits (issue 16): lines over them are counted
/// and summarised; a failure over them is still counted in metrics and
/// dead-lettered, just not logged. A failure message is logged cut to
/// [`runtime::failure::MAX_LOGGED_FAILURE`] bytes.
pub fn log_invocation(
    event: &Event,
    route: &str,
    plugin: &Plugin,
    inv: &Invocation,
    pm: &PluginMetrics,
    limit: LogLimit,
) {
    let (p, e) = (plugin.name.as_str(), event.id.as_str());
    if inv.dropped_logs > 0 {
        pm.logs_over_cap.inc_by(inv.dropped_logs);
    }
    let failure = inv
        .outcome
        .as_ref()
        .err()
        .filter(|_| tracing::enabled!(tracing::Level::WARN));
    let failure_msg =
        failure.map(|f| runtime::failure::truncate(&f.message, runtime::failure::MAX_LOGGED_FAILURE));
    // Lines the log filter would discard cost nothing and use no tokens.
    let enabled = || inv.logs.iter().filter(|l| level_enabled(l.level));
    let wanted = enabled().count() as u64 + u64::from(failure.is_some());
    if wanted == 0 && inv.dropped_logs == 0 {
        return;
    }
    let now = std::time::Instant::now();
    let (granted, report) = {
        let mut bucket = plugin.log_budget.lock().unwrap_or_else(|p| p.into_inner());
        // The failure line first: it is the one an operator needs.
        let lengths = failure_msg
            .iter()
            .map(|m| m.len())
            .chain(enabled().map(|l| l.message.len()));
        let granted = bucket.take(lengths, limit, now);
        // Lines over the per-invocation cap are summarised with these, so
        // a plugin looping on `log` yields one warning a second, not one
        // per invocation.
        (
            granted,
            bucket.suppressed(wanted - granted + inv.dropped_logs, now),
        )
    };
    if granted < wanted {
        pm.logs_rate_limited.inc_by(wanted - granted);
    }
    if let Some(n) = report {
        tracing::warn!(
            plugin = p,
            event = e,
            suppressed = n,
            rate = limit.rate,
            bytes_per_second = limit.bytes,
            "plugin log lines dropped: over the rate limit ([plugins] log_rate, log_bytes) or the per-invocation cap"
        );
    }
    let mut left = granted;
    if let (Some(f), Some(msg)) = (failure, &failure_msg) {
        if left == 0 {
            return;
        }
        left -= 1;
        tracing::warn!(plugin = p, event = e, route, kind = %f.kind, error = %msg, "handler failed");
    }
    for line in inv.logs.iter().filter(|l| level_enabled(l.level)) {
        if left == 0 {
            break;
        }
        left -= 1;
        let m = line.message.as_str();
        match line.level {
            Level::Trace => tracing::trace!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Info => tracing::info!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin = p, event = e, "{m}"),
            Level::Error => tracing::error!(target: "plugin", plugin = p, event = e, "{m}"),
        }
    }
}

/// Whether the log filter lets a plugin line of this level through.
fn level_enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
        Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
    }
}
