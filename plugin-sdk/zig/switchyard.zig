//! switchyard plugin ABI v1 for Zig (see ../ABI.md). Written for Zig 0.17.
//!
//! A plugin defines one handler and exports the ABI around it:
//!
//!     const std = @import("std");
//!     const sy = @import("switchyard");
//!
//!     comptime {
//!         sy.exportHandler(handle);
//!     }
//!
//!     fn handle(ev: *const sy.Event) !void {
//!         sy.log(.info, "got {s}", .{ev.name});
//!         if (ev.data.object.count() == 0) return sy.fail("{s}: no data", .{ev.name});
//!         try sy.emit("app.Seen", .{ .from = ev.id });
//!     }
//!
//! Build:
//!
//!     python3 -m ziglang build-exe -target wasm32-wasi -fno-entry -rdynamic \
//!         -O ReleaseSmall --stack 1048576 --dep switchyard -Mroot=plugin.zig \
//!         -Mswitchyard=plugin-sdk/zig/switchyard.zig -femit-bin=plugin.wasm
//!
//! (`--stack`: Zig's default 16 MiB stack is half the default memory cap.)
//!
//! The handler fails the invocation by returning an error: `sy.fail` sets
//! the failure message first; any other error is reported by its name.
//! Every invocation runs in a fresh instance, so nothing is kept between
//! events. In ReleaseSmall `unreachable` is not a trap: use `@trap()`.

const std = @import("std");
const json = std.json;

pub const abi_version = 1;

/// Log levels of the host's `log` import.
pub const Level = enum(i32) { trace = 0, debug = 1, info = 2, warn = 3, err = 4 };

/// Why the host refused an emitted event (the `emit` return codes), or why
/// it could not be encoded.
pub const EmitError = error{ Malformed, TooMany, TooLarge, CascadeLimit, Refused, OutOfMemory };

/// Returned by `fail`; the handler passes it on to fail the invocation.
pub const HandlerError = error{HandlerFailed};

const host = struct {
    extern "switchyard" fn log(level: i32, ptr: [*]const u8, len: usize) void;
    extern "switchyard" fn emit(ptr: [*]const u8, len: usize) i32;
    extern "switchyard" fn fail(ptr: [*]const u8, len: usize) void;
};

/// The allocator behind the ABI buffers; handlers may use it too.
pub const allocator = std.heap.wasm_allocator;

/// One event envelope. `meta` is always an object; `data` is any value.
pub const Event = struct {
    id: []const u8,
    name: []const u8,
    version: ?[]const u8,
    source: []const u8,
    time: []const u8,
    meta: json.Value,
    data: json.Value,
    /// An arena freed when the handler returns.
    arena: std.mem.Allocator,
};

/// Writes a log line, formatted like `std.fmt` (cut at 4 KiB).
pub fn log(level: Level, comptime fmt: []const u8, args: anytype) void {
    var buf: [4096]u8 = undefined;
    var w: std.Io.Writer = .fixed(&buf);
    w.print(fmt, args) catch {};
    const line = w.buffered();
    host.log(@backingInt(level), line.ptr, line.len);
}

var failed = false;

/// Sets the failure message (formatted like `std.fmt`) and returns the error
/// to return from the handler: `return sy.fail("...", .{...});`.
pub fn fail(comptime fmt: []const u8, args: anytype) HandlerError {
    setFailure(fmt, args);
    return error.HandlerFailed;
}

fn setFailure(comptime fmt: []const u8, args: anytype) void {
    var buf: [4096]u8 = undefined;
    var w: std.Io.Writer = .fixed(&buf);
    w.print(fmt, args) catch {};
    const message = w.buffered();
    host.fail(message.ptr, message.len);
    failed = true;
}

/// Emits an event `name` whose `data` is `data` serialized to JSON (a
/// struct, a `std.json.Value`, ...).
pub fn emit(name: []const u8, data: anytype) EmitError!void {
    const text = try json.Stringify.valueAlloc(allocator, .{ .name = name, .data = data }, .{});
    defer allocator.free(text);
    return emitJson(text);
}

/// Emits an event given as JSON text: `{"name": ..., "data": ..., "meta"?: ...}`.
pub fn emitJson(text: []const u8) EmitError!void {
    return switch (host.emit(text.ptr, text.len)) {
        0 => {},
        -1 => error.Malformed,
        -2 => error.TooMany,
        -3 => error.TooLarge,
        -4 => error.CascadeLimit,
        else => error.Refused,
    };
}

var config_value: ?json.Value = null;

/// The plugin's config (a JSON object, empty when there is none).
pub fn config() json.Value {
    return config_value orelse .{ .object = .empty };
}

/// A string member of an object value, or null.
pub fn getString(value: json.Value, key: []const u8) ?[]const u8 {
    if (value != .object) return null;
    const v = value.object.get(key) orelse return null;
    return if (v == .string) v.string else null;
}

/// A number member of an object value as f64, or null.
pub fn getNumber(value: json.Value, key: []const u8) ?f64 {
    if (value != .object) return null;
    return switch (value.object.get(key) orelse return null) {
        .integer => |i| @floatFromInt(i),
        .float => |f| f,
        .number_string => |s| std.fmt.parseFloat(f64, s) catch null,
        else => null,
    };
}

// A real address for zero-length buffers.
var empty_buffer: [1]u8 = .{0};

fn take(ptr: [*]u8, len: usize) []u8 {
    return if (len == 0) empty_buffer[0..0] else ptr[0..len];
}

/// Every error sets the failure message first (it comes from `fail`).
fn parseEvent(arena: std.mem.Allocator, text: []const u8) HandlerError!Event {
    const root = json.parseFromSliceLeaky(json.Value, arena, text, .{}) catch |e| return switch (e) {
        error.OutOfMemory => fail("out of memory reading the event", .{}),
        else => fail("malformed event JSON: {s}", .{@errorName(e)}),
    };
    if (root != .object) return fail("malformed event: not a JSON object", .{});
    const name = getString(root, "name") orelse return fail("malformed event: no \"name\"", .{});
    const meta = root.object.get("meta") orelse json.Value{ .object = .empty };
    if (meta != .object) return fail("malformed event: \"meta\" is not an object", .{});
    return .{
        .id = getString(root, "id") orelse "",
        .name = name,
        .version = getString(root, "version"),
        .source = getString(root, "source") orelse "",
        .time = getString(root, "time") orelse "",
        .meta = meta,
        .data = root.object.get("data") orelse .{ .object = .empty },
        .arena = arena,
    };
}

/// Exports `switchyard_alloc`, `switchyard_init` and `switchyard_handle`
/// around `handler`. Call it in a `comptime` block of the root file.
pub fn exportHandler(comptime handler: fn (*const Event) anyerror!void) void {
    const Exports = struct {
        fn alloc(len: usize) callconv(.c) ?[*]u8 {
            // Zig gives zero-length allocations an address past the memory.
            if (len == 0) return &empty_buffer;
            const buf = allocator.alloc(u8, len) catch return null;
            return buf.ptr;
        }

        fn init(ptr: [*]u8, len: usize) callconv(.c) i32 {
            // The config text is kept: parsed strings point into it.
            const text = take(ptr, len);
            config_value = json.parseFromSliceLeaky(json.Value, allocator, text, .{}) catch |e| {
                setFailure("malformed plugin config JSON: {s}", .{@errorName(e)});
                return 1;
            };
            return 0;
        }

        fn handle(ptr: [*]u8, len: usize) callconv(.c) i32 {
            const text = take(ptr, len);
            defer allocator.free(text);
            var arena_state = std.heap.ArenaAllocator.init(allocator);
            defer arena_state.deinit();
            failed = false;
            const event = parseEvent(arena_state.allocator(), text) catch return 1;
            handler(&event) catch |e| {
                if (!failed) setFailure("{s}", .{@errorName(e)});
                return 1;
            };
            return 0;
        }
    };
    @export(&Exports.alloc, .{ .name = "switchyard_alloc" });
    @export(&Exports.init, .{ .name = "switchyard_init" });
    @export(&Exports.handle, .{ .name = "switchyard_handle" });
}
