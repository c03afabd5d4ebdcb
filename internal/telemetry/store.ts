import { ChatMetrics, secondsSince } from "./telemetry.js";

/** Methods that are plumbing, not store operations worth a latency series. */
const UNTIMED = new Set(["close", "constructor"]);

/**
 * Wraps a store so every operation records meshchat.store.duration by operation
 * (db.operation.name: the method) and backend (the configured one), failed or not
 * (error.type is set on failures). A Proxy keeps the wrapper free of the Store
 * interface, which grows with every feature.
 */
export function instrumentStore<T extends object>(store: T, backend: string): T {
  const histogram = ChatMetrics.get().storeLatency;
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || typeof prop !== "string" || UNTIMED.has(prop)) return value;
      return function (this: unknown, ...args: unknown[]) {
        const started = performance.now();
        const attrs = { "db.operation.name": prop, "meshchat.store.backend": backend };
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (!(out instanceof Promise)) return out;
        return out.then(
          (v) => { histogram.record(secondsSince(started), attrs); return v; },
          (err: unknown) => { histogram.record(secondsSince(started), { ...attrs, "error.type": (err as { name?: string })?.name ?? "Error" }); throw err; },
        );
      };
    },
  });
}
