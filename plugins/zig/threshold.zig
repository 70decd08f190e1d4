//! `threshold`: an alert. When a numeric field of the event's data exceeds
//! the configured threshold, it emits an alert event; otherwise it does
//! nothing. A field that is present but not a number fails the invocation.
//!
//! Config (router.toml):
//!
//!     [plugin.threshold]
//!     config = { field = "latency_ms", threshold = 250, emit = "alerts.LatencyHigh" }
//!
//! `emit` defaults to "alerts.ThresholdExceeded".

const std = @import("std");
const sy = @import("switchyard");

comptime {
    sy.exportHandler(handle);
}

fn handle(ev: *const sy.Event) !void {
    const config = sy.config();
    const field = sy.getString(config, "field") orelse
        return sy.fail("bad plugin config: \"field\" must be a string", .{});
    const threshold = sy.getNumber(config, "threshold") orelse
        return sy.fail("bad plugin config: \"threshold\" must be a number", .{});
    const alert = sy.getString(config, "emit") orelse "alerts.ThresholdExceeded";

    const raw = if (ev.data == .object) ev.data.object.get(field) else null;
    if (raw == null or raw.? == .null) {
        sy.log(.debug, "{s} {s}: no data.{s}", .{ ev.name, ev.id, field });
        return;
    }
    const value = sy.getNumber(ev.data, field) orelse
        return sy.fail("{s} {s}: data.{s} is not a number", .{ ev.name, ev.id, field });
    if (value <= threshold) {
        sy.log(.trace, "{s} {s}: {s} = {d}, within {d}", .{ ev.name, ev.id, field, value, threshold });
        return;
    }

    sy.log(.warn, "{s} {s}: {s} = {d} exceeds {d}", .{ ev.name, ev.id, field, value, threshold });
    sy.emit(alert, .{
        .field = field,
        .value = value,
        .threshold = threshold,
        .event = ev.name,
        .event_id = ev.id,
    }) catch |e| return sy.fail("emit {s}: {s}", .{ alert, @errorName(e) });
}
