// redact: re-emits each event with the configured data fields masked,
// wherever they appear in `data` (nested objects and arrays included), so
// that sinks and later handlers never see them.
//
// Config (router.toml):
//
//   [plugin.redact]
//   config = { fields = ["email", "phone"], mask = "***", emit = "users.SignedUp.Redacted" }
//
// `mask` defaults to "***"; `emit` to "<event name>.Redacted". The emitted
// event keeps the incoming meta and version.

import * as sy from "../../plugin-sdk/assemblyscript/switchyard";
export { switchyard_alloc, switchyard_init } from "../../plugin-sdk/assemblyscript/switchyard";

export function switchyard_handle(ptr: usize, len: usize): i32 {
  return sy.run(ptr, len, onEvent);
}

let fields: string[] = [];
let maskJson = '"***"';
let masked = 0;

function onEvent(ev: sy.Event): i32 {
  const config = sy.config();
  const list = sy.jsonGet(config, "fields");
  if (list === null || sy.jsonType(list) != sy.JSON_ARRAY) {
    return sy.fail('bad plugin config: "fields" must be an array of strings');
  }
  const items = sy.jsonItems(list);
  for (let i = 0; i < items.length; i++) {
    const field = sy.jsonString(items[i]);
    if (field === null) return sy.fail('bad plugin config: "fields" must be an array of strings');
    fields.push(field);
  }
  const mask = sy.jsonGet(config, "mask");
  if (mask !== null) maskJson = mask;
  const emitName = sy.jsonGetString(config, "emit");
  const name = emitName !== null ? emitName : ev.name + ".Redacted";

  const data = redact(ev.data);
  let out = '{"name":' + sy.jsonQuote(name) + ',"data":' + data + ',"meta":' + ev.meta;
  const version = ev.version;
  if (version !== null) out += ',"version":' + sy.jsonQuote(version);
  const code = sy.emitJson(out + "}");
  if (code != sy.EMIT_OK) return sy.fail("emit " + name + " refused with code " + code.toString());
  sy.log(sy.DEBUG, "redacted " + masked.toString() + " value(s) of " + ev.name + " " + ev.id);
  return 0;
}

// `value` (raw JSON) with the configured fields masked.
function redact(value: string): string {
  const type = sy.jsonType(value);
  if (type == sy.JSON_OBJECT) {
    const members = sy.jsonMembers(value);
    const parts = new Array<string>();
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      const hide = fields.includes(m.key);
      if (hide) masked++;
      parts.push(sy.jsonQuote(m.key) + ":" + (hide ? maskJson : redact(m.value)));
    }
    return "{" + parts.join(",") + "}";
  }
  if (type == sy.JSON_ARRAY) {
    const items = sy.jsonItems(value);
    for (let i = 0; i < items.length; i++) items[i] = redact(items[i]);
    return "[" + items.join(",") + "]";
  }
  return value;
}
