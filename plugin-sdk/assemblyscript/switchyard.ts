// switchyard plugin ABI v1 for AssemblyScript (see ../ABI.md), with a small
// JSON reader: values are handled as their raw JSON text.
//
// A plugin re-exports the allocator and init, and exports a handle that
// runs its handler:
//
//   import * as sy from "../../plugin-sdk/assemblyscript/switchyard";
//   export { switchyard_alloc, switchyard_init } from "../../plugin-sdk/assemblyscript/switchyard";
//
//   export function switchyard_handle(ptr: usize, len: usize): i32 {
//     return sy.run(ptr, len, onEvent);
//   }
//
//   function onEvent(ev: sy.Event): i32 {
//     sy.log(sy.INFO, "got " + ev.name);
//     return sy.emit(ev.name + ".Seen", "{}") == sy.EMIT_OK ? 0 : sy.fail("emit refused");
//   }
//
// Build (the abort hook turns AssemblyScript aborts into a failure message
// and a trap instead of an `env.abort` import, which the host refuses):
//
//   npx asc plugin.ts --runtime stub -O3 --noAssert \
//     --use abort=plugin-sdk/assemblyscript/switchyard/abort -o plugin.wasm
//
// The stub runtime never collects garbage; that is fine because every
// invocation runs in a fresh instance.

export const ABI_VERSION: i32 = 1;
export const TRACE: i32 = 0;
export const DEBUG: i32 = 1;
export const INFO: i32 = 2;
export const WARN: i32 = 3;
export const ERROR: i32 = 4;
export const EMIT_OK: i32 = 0;
export const EMIT_MALFORMED: i32 = -1;
export const EMIT_TOO_MANY: i32 = -2;
export const EMIT_TOO_LARGE: i32 = -3;
export const EMIT_CASCADE_LIMIT: i32 = -4; // over the root event's cascade budget (ABI 1.1)

// @ts-ignore: decorator
@external("switchyard", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("switchyard", "emit")
declare function host_emit(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("switchyard", "fail")
declare function host_fail(ptr: usize, len: usize): void;

/** Writes a log line at `level` (TRACE .. ERROR). */
export function log(level: i32, message: string): void {
  const bytes = String.UTF8.encode(message);
  host_log(level, changetype<usize>(bytes), bytes.byteLength);
}

/** Emits `{"name": name, "data": <dataJson>}`; returns an EMIT_ code. */
export function emit(name: string, dataJson: string): i32 {
  return emitJson('{"name":' + jsonQuote(name) + ',"data":' + dataJson + "}");
}

/** Emits a complete event object given as JSON text; returns an EMIT_ code. */
export function emitJson(eventJson: string): i32 {
  const bytes = String.UTF8.encode(eventJson);
  return host_emit(changetype<usize>(bytes), bytes.byteLength);
}

/** Sets the failure message and returns 1: `return sy.fail("...")`. */
export function fail(message: string): i32 {
  const bytes = String.UTF8.encode(message);
  host_fail(changetype<usize>(bytes), bytes.byteLength);
  return 1;
}

/** Turns AssemblyScript aborts into a failure message, then traps. */
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  const what = message !== null ? message : "abort";
  const where = file !== null ? file : "?";
  fail(what + " at " + where + ":" + line.toString() + ":" + column.toString());
  unreachable();
}

/** One event envelope; `meta` and `data` are raw JSON text. */
export class Event {
  id: string = "";
  name: string = "";
  version: string | null = null;
  source: string = "";
  time: string = "";
  meta: string = "{}";
  data: string = "{}";
}

let configJson: string = "{}";

/** The plugin's config, as JSON text ("{}" when there is none). */
export function config(): string {
  return configJson;
}

export function switchyard_alloc(len: usize): usize {
  return heap.alloc(len);
}

export function switchyard_init(ptr: usize, len: usize): i32 {
  const text = String.UTF8.decodeUnsafe(ptr, len);
  heap.free(ptr);
  if (!jsonValid(text)) return fail("malformed plugin config JSON");
  configJson = text.trim();
  return 0;
}

/** Parses the event at `[ptr, ptr+len)` and calls `handler` on it. */
export function run(ptr: usize, len: usize, handler: (ev: Event) => i32): i32 {
  const text = String.UTF8.decodeUnsafe(ptr, len).trim();
  heap.free(ptr);
  if (!jsonValid(text)) return fail("malformed event JSON (or nested deeper than 128)");
  if (jsonType(text) != JSON_OBJECT) return fail("malformed event: not a JSON object");
  const ev = new Event();
  const span = new Span();
  for (let p = skipWs(text, 1); (p = nextMember(text, p, span)) >= 0; ) {
    const key = jsonString(text.substring(span.key, span.keyEnd));
    const raw = text.substring(span.value, span.valueEnd);
    if (key == "meta") ev.meta = raw;
    else if (key == "data") ev.data = raw;
    else if (jsonType(raw) == JSON_STRING) {
      const value = jsonString(raw);
      if (value === null) continue;
      if (key == "name") ev.name = value;
      else if (key == "id") ev.id = value;
      else if (key == "version") ev.version = value;
      else if (key == "source") ev.source = value;
      else if (key == "time") ev.time = value;
    }
  }
  if (ev.name.length == 0) return fail('malformed event: no "name"');
  if (jsonType(ev.meta) != JSON_OBJECT) return fail('malformed event: "meta" is not an object');
  return handler(ev);
}

// ---- JSON ------------------------------------------------------------------
// Values are raw JSON text. jsonValid checks the whole grammar (depth <= 128);
// the other helpers expect valid input and never read out of bounds.

export const JSON_INVALID: i32 = 0;
export const JSON_NULL: i32 = 1;
export const JSON_BOOL: i32 = 2;
export const JSON_NUMBER: i32 = 3;
export const JSON_STRING: i32 = 4;
export const JSON_ARRAY: i32 = 5;
export const JSON_OBJECT: i32 = 6;

/** The type of a JSON value's text. */
export function jsonType(value: string): i32 {
  if (value.length == 0) return JSON_INVALID;
  const c = value.charCodeAt(0);
  if (c == 0x6e) return JSON_NULL; // n
  if (c == 0x74 || c == 0x66) return JSON_BOOL; // t f
  if (c == 0x22) return JSON_STRING; // "
  if (c == 0x5b) return JSON_ARRAY; // [
  if (c == 0x7b) return JSON_OBJECT; // {
  return JSON_NUMBER;
}

/** True if `text` is exactly one JSON value (whitespace around allowed). */
export function jsonValid(text: string): bool {
  const end = skipValue(text, skipWs(text, 0), 0);
  return end >= 0 && skipWs(text, end) == text.length;
}

/** One member of an object: the decoded key and the raw value. */
export class JsonMember {
  constructor(public key: string, public value: string) {}
}

// Positions of one object member in its text, filled by nextMember.
class Span {
  key: i32 = 0; // the key's opening quote
  keyEnd: i32 = 0; // past its closing quote
  value: i32 = 0;
  valueEnd: i32 = 0;
}

// Reads the member at `p` (the start of a key, or the closing brace) into
// `span`; returns the position of the next one, or -1 when there is none.
function nextMember(text: string, p: i32, span: Span): i32 {
  if (p >= text.length || text.charCodeAt(p) != 0x22) return -1;
  span.key = p;
  if ((span.keyEnd = skipString(text, p)) < 0) return -1;
  p = skipWs(text, span.keyEnd);
  if (p >= text.length || text.charCodeAt(p) != 0x3a) return -1;
  span.value = skipWs(text, p + 1);
  if ((span.valueEnd = skipValue(text, span.value, 1)) < 0) return -1;
  p = skipWs(text, span.valueEnd);
  return p < text.length && text.charCodeAt(p) == 0x2c ? skipWs(text, p + 1) : p;
}

/** The members of an object value, in order (empty if not an object). */
export function jsonMembers(object: string): JsonMember[] {
  const out = new Array<JsonMember>();
  const text = object.trim();
  if (jsonType(text) != JSON_OBJECT) return out;
  const span = new Span();
  for (let p = skipWs(text, 1); (p = nextMember(text, p, span)) >= 0; ) {
    const key = jsonString(text.substring(span.key, span.keyEnd));
    out.push(new JsonMember(key !== null ? key : "", text.substring(span.value, span.valueEnd)));
  }
  return out;
}

/** The elements of an array value, as raw JSON (empty if not an array). */
export function jsonItems(array: string): string[] {
  const out = new Array<string>();
  const text = array.trim();
  if (jsonType(text) != JSON_ARRAY) return out;
  let p = skipWs(text, 1);
  while (p < text.length && text.charCodeAt(p) != 0x5d) {
    const end = skipValue(text, p, 1);
    if (end < 0) break;
    out.push(text.substring(p, end));
    p = skipWs(text, end);
    if (p < text.length && text.charCodeAt(p) == 0x2c) p = skipWs(text, p + 1);
  }
  return out;
}

/** The raw value of `key` in an object value, or null. */
export function jsonGet(object: string, key: string): string | null {
  const text = object.trim();
  if (jsonType(text) != JSON_OBJECT) return null;
  const quoted = jsonQuote(key);
  const span = new Span();
  for (let p = skipWs(text, 1); (p = nextMember(text, p, span)) >= 0; ) {
    const rawKey = text.substring(span.key, span.keyEnd);
    const same = rawKey.indexOf("\\") < 0 ? rawKey == quoted : jsonString(rawKey) == key;
    if (same) return text.substring(span.value, span.valueEnd);
  }
  return null;
}

/** The decoded string value of `key` in an object value, or null. */
export function jsonGetString(object: string, key: string): string | null {
  const value = jsonGet(object, key);
  return value !== null ? jsonString(value) : null;
}

/** Decodes a string value, or null if `value` is not a valid string. */
export function jsonString(value: string): string | null {
  if (jsonType(value) != JSON_STRING || skipString(value, 0) != value.length) return null;
  const end = value.length - 1;
  let out = "";
  let run = 1; // start of the current run of unescaped characters
  let p = 1;
  while (p < end) {
    if (value.charCodeAt(p) != 0x5c) {
      p++;
      continue;
    }
    out += value.substring(run, p);
    const e = value.charCodeAt(p + 1);
    p += 2;
    if (e == 0x75) {
      // \uXXXX: one UTF-16 unit, as AssemblyScript strings are.
      out += String.fromCharCode(<i32>parseInt(value.substring(p, p + 4), 16));
      p += 4;
    } else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x6e) out += "\n";
    else if (e == 0x72) out += "\r";
    else if (e == 0x74) out += "\t";
    else out += String.fromCharCode(e);
    run = p;
  }
  return out + value.substring(run, end);
}

/** `s` as a quoted JSON string. */
export function jsonQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

function skipWs(s: string, p: i32): i32 {
  while (p < s.length) {
    const c = s.charCodeAt(p);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
    p++;
  }
  return p;
}

function isHex(c: i32): bool {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

// Each skip function returns the index past the value starting at `p`, or -1.
function skipString(s: string, p: i32): i32 {
  if (p >= s.length || s.charCodeAt(p) != 0x22) return -1;
  for (p++; p < s.length; p++) {
    const c = s.charCodeAt(p);
    if (c == 0x22) return p + 1;
    if (c < 0x20) return -1;
    if (c != 0x5c) continue;
    if (++p >= s.length) return -1;
    const e = s.charCodeAt(p);
    if (e == 0x75) {
      if (p + 4 >= s.length) return -1;
      for (let i = 1; i <= 4; i++) if (!isHex(s.charCodeAt(p + i))) return -1;
      p += 4;
    } else if (e != 0x22 && e != 0x5c && e != 0x2f && e != 0x62 && e != 0x66 &&
               e != 0x6e && e != 0x72 && e != 0x74) {
      return -1;
    }
  }
  return -1;
}

function skipDigits(s: string, p: i32): i32 {
  const start = p;
  while (p < s.length && s.charCodeAt(p) >= 0x30 && s.charCodeAt(p) <= 0x39) p++;
  return p > start ? p : -1;
}

function skipNumber(s: string, p: i32): i32 {
  if (p < s.length && s.charCodeAt(p) == 0x2d) p++;
  if (p < s.length && s.charCodeAt(p) == 0x30) p++;
  else if ((p = skipDigits(s, p)) < 0) return -1;
  if (p < s.length && s.charCodeAt(p) == 0x2e && (p = skipDigits(s, p + 1)) < 0) return -1;
  if (p < s.length && (s.charCodeAt(p) | 0x20) == 0x65) {
    p++;
    if (p < s.length && (s.charCodeAt(p) == 0x2b || s.charCodeAt(p) == 0x2d)) p++;
    if ((p = skipDigits(s, p)) < 0) return -1;
  }
  return p;
}

function skipLiteral(s: string, p: i32, word: string): i32 {
  return s.substring(p, p + word.length) == word ? p + word.length : -1;
}

function skipContainer(s: string, p: i32, depth: i32): i32 {
  const object = s.charCodeAt(p) == 0x7b;
  const close = object ? 0x7d : 0x5d;
  if (depth >= 128) return -1;
  p = skipWs(s, p + 1);
  if (p < s.length && s.charCodeAt(p) == close) return p + 1;
  while (true) {
    if (object) {
      if ((p = skipString(s, p)) < 0) return -1;
      p = skipWs(s, p);
      if (p >= s.length || s.charCodeAt(p) != 0x3a) return -1;
      p = skipWs(s, p + 1);
    }
    if ((p = skipValue(s, p, depth + 1)) < 0) return -1;
    p = skipWs(s, p);
    if (p < s.length && s.charCodeAt(p) == close) return p + 1;
    if (p >= s.length || s.charCodeAt(p) != 0x2c) return -1;
    p = skipWs(s, p + 1);
  }
  return -1;
}

function skipValue(s: string, p: i32, depth: i32): i32 {
  if (p >= s.length) return -1;
  const c = s.charCodeAt(p);
  if (c == 0x22) return skipString(s, p);
  if (c == 0x7b || c == 0x5b) return skipContainer(s, p, depth);
  if (c == 0x74) return skipLiteral(s, p, "true");
  if (c == 0x66) return skipLiteral(s, p, "false");
  if (c == 0x6e) return skipLiteral(s, p, "null");
  return skipNumber(s, p);
}
