// Conformance plugin of the JavaScript SDK, for the host's test suite: it
// does what the event's name asks (see plugins/README.md).

import { abort, emit, handler, log } from "../../plugin-sdk/js/switchyard.js";

export const { configure, handle } = handler({
  handle(event, config) {
    switch (event.name) {
      case "conf.Emit":
        emit("conf.Emitted", { lang: "js", from: event.id });
        break;
      case "conf.Log":
        log.info("conformance js");
        break;
      case "conf.Fail":
        throw new Error("conformance js failed on purpose");
      case "conf.Config":
        emit("conf.ConfigSeen", config);
        break;
      case "conf.Trap":
        abort("conformance js traps on purpose");
      case "conf.Timeout":
        for (;;) {}
    }
  },
});
