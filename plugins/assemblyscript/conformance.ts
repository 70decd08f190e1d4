// Conformance plugin of the AssemblyScript binding, for the host's test
// suite: it does what the event's name asks (see plugins/README.md).

import * as sy from "../../plugin-sdk/assemblyscript/switchyard";
export { switchyard_alloc, switchyard_init } from "../../plugin-sdk/assemblyscript/switchyard";

export function switchyard_handle(ptr: usize, len: usize): i32 {
  return sy.run(ptr, len, onEvent);
}

function onEvent(ev: sy.Event): i32 {
  if (ev.name == "conf.Emit") {
    const data = '{"lang":"assemblyscript","from":' + sy.jsonQuote(ev.id) + "}";
    const code = sy.emit("conf.Emitted", data);
    if (code != sy.EMIT_OK) return sy.fail("emit refused with code " + code.toString());
  } else if (ev.name == "conf.Log") {
    sy.log(sy.INFO, "conformance assemblyscript");
  } else if (ev.name == "conf.Fail") {
    return sy.fail("conformance assemblyscript failed on purpose");
  } else if (ev.name == "conf.Config") {
    const code = sy.emit("conf.ConfigSeen", sy.config());
    if (code != sy.EMIT_OK) return sy.fail("emit refused with code " + code.toString());
  } else if (ev.name == "conf.Trap") {
    unreachable();
  }
  return 0;
}
