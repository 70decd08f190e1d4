// The world's `host` interface as an ES module, for TypeScript sources
// that import it directly (switchyard.js wraps it).
declare module "switchyard:handler/host@1.0.0" {
  import type { Level, WorldNewEvent } from "./switchyard";
  const host: {
    log(level: Level, message: string): void;
    /** Throws an Error whose `payload` is the `emit-error` variant. */
    emit(event: WorldNewEvent): void;
  };
  export default host;
}
