// Example TypeScript plugin: classifies web requests by their HTTP status,
// keeps a running count per class while its instance is reused, and emits
// `emit` (from its config) for every request at or above `error_from`.
//
//   [plugin.status_class]
//   config = { error_from = 500, emit = "web.ServerError" }

import { emit, handler, log } from "../../plugin-sdk/js/switchyard.js";
import type { Config, Event } from "../../plugin-sdk/js/switchyard";

interface Settings extends Config {
  error_from: number;
  emit: string;
}

/** Requests seen per status class ("2xx", "5xx"), by this instance. */
const seen = new Map<string, number>();

export const { configure, handle } = handler<Settings>({
  configure(config) {
    if (typeof config.error_from !== "number" || typeof config.emit !== "string") {
      throw new Error('config needs error_from (a number) and emit (an event name)');
    }
  },
  handle(event: Event, config) {
    const data = event.data as { status?: unknown; path?: unknown };
    if (typeof data?.status !== "number") {
      throw new Error(`${event.name} has no numeric data.status`);
    }
    const status = data.status;
    const klass = `${Math.floor(status / 100)}xx`;
    seen.set(klass, (seen.get(klass) ?? 0) + 1);
    log.debug(`${klass} requests seen by this instance: ${seen.get(klass)}`);
    if (status >= config.error_from) {
      emit(config.emit, { status, path: data.path ?? null, request: event.id }, { version: "1.0" });
    }
  },
});
