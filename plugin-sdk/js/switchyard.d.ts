// Types of switchyard's JavaScript SDK (switchyard.js) and of the world
// `switchyard:handler/handler@1.0.0` (plugin-sdk/wit/switchyard.wit) as
// jco's QuickJS backend presents it to JavaScript: records are objects with
// camelCase keys, `option<T>` is `T | null`, enums are their case names, a
// `result<_, E>` export returns or throws `E`, an import that fails throws
// an Error whose `payload` is `E`.

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The event envelope (README, "The event envelope"), `meta` and `data` parsed. */
export interface Event {
  /** A ULID, assigned on ingest if the producer gave none. */
  id: string;
  /** Dotted, `app.EventName`. */
  name: string;
  version: string | null;
  /** How it entered the router: `http`, `tail:<path>`, `plugin:<name>`. */
  source: string;
  /** RFC 3339, UTC. */
  time: string;
  meta: { [key: string]: Json };
  data: Json;
}

/** The plugin's `[plugin.NAME] config` table. */
export type Config = { [key: string]: Json };

export type Level = "trace" | "debug" | "info" | "warn" | "error";

export declare const log: { [L in Level]: (message: unknown) => void };

export declare class EmitError extends Error {
  readonly kind: "malformed" | "too-many" | "too-large";
  /** Why, for "malformed". */
  readonly reason: string | null;
}

export interface EmitOptions {
  meta?: { [key: string]: Json } | null;
  version?: string | null;
}

/** Emits an event; throws `EmitError` if the host refuses it. */
export declare function emit(name: string, data?: Json, options?: EmitOptions): void;

/** Ends the call and the instance with a trap (failure kind `trap`). */
export declare function abort(why?: string): never;

export interface Handler<C extends Config = Config> {
  /** Once per instance; throw to refuse the config (the load fails). */
  configure?(config: C): void;
  /** Once per event; throw to fail it (`handler_error` with the message). */
  handle(event: Event, config: C): void;
}

/** The world's exports: `export const { configure, handle } = handler({...})`. */
export declare function handler<C extends Config = Config>(
  h: Handler<C>,
): {
  configure(config: string): void;
  handle(event: WorldEvent): void;
};

/** The world's `event` record: `meta` and `data` as JSON text. */
export interface WorldEvent {
  id: string;
  name: string;
  version: string | null;
  source: string;
  time: string;
  meta: string;
  data: string;
}

/** The world's `new-event` record. */
export interface WorldNewEvent {
  name: string;
  data: string;
  meta: string | null;
  version: string | null;
}
