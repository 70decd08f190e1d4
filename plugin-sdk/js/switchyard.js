// switchyard's JavaScript SDK: what a handler author imports to write a
// component handler of the world `switchyard:handler/handler@1.0.0`
// (plugin-sdk/wit/switchyard.wit), built with jco's QuickJS backend
// (plugins/build.sh js). Types are in switchyard.d.ts, for TypeScript.
//
//   import { handler, log, emit } from "../../plugin-sdk/js/switchyard.js";
//   export const { configure, handle } = handler({
//     configure(config) { ... },          // optional: throw to refuse it
//     handle(event, config) { ... },      // throw to fail the event
//   });
//
// What happens when (the same as for every other kind of plugin, ABI.md):
// - `configure` runs once per instance with the plugin's config (the
//   `[plugin.NAME] config` table, an object); throwing fails the load.
// - `handle` runs once per event. Returning is success; throwing anything
//   is the failure kind `handler_error`, with the message of an `Error`, or
//   the text of any other value. `abort(why)` instead ends the instance
//   with a trap (failure kind `trap`), after logging `why` at error level.
// - Emitted events are routed only if the call that emitted them succeeds.
// - An instance may be kept for further events (`instance = "reuse"`), so
//   module-level state may persist between calls; after any failure the
//   next event gets a fresh instance.
import host from "switchyard:handler/host@1.0.0";

/** Log lines, kept with the call and forwarded to the daemon's log. */
export const log = {
  trace: (message) => host.log("trace", String(message)),
  debug: (message) => host.log("debug", String(message)),
  info: (message) => host.log("info", String(message)),
  warn: (message) => host.log("warn", String(message)),
  error: (message) => host.log("error", String(message)),
};

// QuickJS has no `console`: give it one that logs through the host (a
// plugin's stdout and stderr would become log lines anyway).
if (globalThis.console === undefined) {
  const line = (args) => args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ");
  globalThis.console = {
    log: (...args) => log.info(line(args)),
    info: (...args) => log.info(line(args)),
    debug: (...args) => log.debug(line(args)),
    warn: (...args) => log.warn(line(args)),
    error: (...args) => log.error(line(args)),
  };
}

/**
 * Why the host refused an emit: `kind` is "malformed" (then `reason` says
 * why), "too-many" (over `max_emits` per call, or the root event's cascade
 * budget) or "too-large" (over `max_emit_bytes` per call).
 */
export class EmitError extends Error {
  constructor(kind, reason) {
    super(reason ? `emit refused (${kind}): ${reason}` : `emit refused (${kind})`);
    this.name = "EmitError";
    this.kind = kind;
    this.reason = reason ?? null;
  }
}

/**
 * Emits an event named `name` (dotted, `app.EventName`) with `data` (any
 * JSON value); `options.meta` is an object, `options.version` a string.
 * Throws an `EmitError` if the host refuses it.
 */
export function emit(name, data = {}, options = {}) {
  const { meta, version } = options;
  try {
    host.emit({
      name,
      data: JSON.stringify(data === undefined ? null : data),
      meta: meta == null ? null : JSON.stringify(meta),
      version: version == null ? null : String(version),
    });
  } catch (e) {
    const refusal = e && e.payload;
    if (refusal && typeof refusal.tag === "string") {
      throw new EmitError(refusal.tag, refusal.val);
    }
    throw e;
  }
}

/** What `abort` throws; the binding turns it into a wasm trap. */
const ABORT = Symbol("switchyard.abort");

/** Ends the call and the instance with a trap, after logging `why`. */
export function abort(why) {
  if (why !== undefined) log.error(why);
  throw ABORT;
}

/** The text of a thrown value, as the `handler_error` message. */
function messageOf(thrown) {
  if (thrown instanceof Error) return thrown.message || thrown.name;
  if (typeof thrown === "string") return thrown;
  try {
    return JSON.stringify(thrown) ?? String(thrown);
  } catch {
    return String(thrown);
  }
}

/**
 * The world's exports from a handler's functions: spread the result into
 * `export const { configure, handle } = handler({...})`.
 * `handle(event, config)` gets the event with `meta` (an object) and `data`
 * (any JSON value) parsed, and the config `configure` was given.
 */
export function handler({ configure, handle }) {
  let config = {};
  return {
    configure(text) {
      config = JSON.parse(text);
      try {
        if (configure) configure(config);
      } catch (e) {
        throw messageOf(e);
      }
    },
    handle(record) {
      const event = {
        id: record.id,
        name: record.name,
        version: record.version,
        source: record.source,
        time: record.time,
        meta: JSON.parse(record.meta),
        data: JSON.parse(record.data),
      };
      try {
        handle(event, config);
      } catch (e) {
        if (e === ABORT) throw ABORT;
        throw messageOf(e);
      }
    },
  };
}
