//! Conformance plugin of the Zig binding, for the host's test suite: it does
//! what the event's name asks (see plugins/README.md, "Conformance").

const std = @import("std");
const sy = @import("switchyard");

comptime {
    sy.exportHandler(handle);
}

fn handle(ev: *const sy.Event) !void {
    const name = ev.name;
    if (std.mem.eql(u8, name, "conf.Emit")) {
        try sy.emit("conf.Emitted", .{ .lang = "zig", .from = ev.id });
    } else if (std.mem.eql(u8, name, "conf.Log")) {
        sy.log(.info, "conformance zig", .{});
    } else if (std.mem.eql(u8, name, "conf.Fail")) {
        return sy.fail("conformance zig failed on purpose", .{});
    } else if (std.mem.eql(u8, name, "conf.Config")) {
        try sy.emit("conf.ConfigSeen", sy.config());
    } else if (std.mem.eql(u8, name, "conf.Trap")) {
        @trap();
    }
}
