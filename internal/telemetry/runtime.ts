import { metrics } from "@opentelemetry/api";
import { monitorEventLoopDelay, PerformanceObserver, constants } from "node:perf_hooks";

const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

/**
 * Node runtime metrics (heap, event-loop delay, GC pauses) and a build-info gauge.
 * @opentelemetry/instrumentation-runtime-node is not a dependency, so this reads
 * perf_hooks directly; the names follow the OpenTelemetry Node.js runtime conventions.
 * Returns a stop function (the event-loop monitor and GC observer hold resources).
 */
export function startRuntimeMetrics(service: string, version: string): () => void {
  const m = metrics.getMeter("meshchat.runtime");
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  m.createObservableGauge("nodejs.eventloop.delay.p99", { unit: "s", description: "Event-loop delay, 99th percentile since the last collection" }).addCallback((r) => {
    r.observe(loop.percentile(99) / 1e9);
    loop.reset();
  });
  m.createObservableGauge("v8js.memory.heap.used", { unit: "By", description: "V8 heap in use" }).addCallback((r) => r.observe(process.memoryUsage().heapUsed));
  m.createObservableGauge("process.memory.usage", { unit: "By", description: "Resident set size" }).addCallback((r) => r.observe(process.memoryUsage().rss));
  const gc = m.createHistogram("v8js.gc.duration", { unit: "s", description: "Garbage-collection pauses", advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1] } });
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gc.record(e.duration / 1000, { "v8js.gc.type": GC_KINDS[((e as unknown as { detail?: { kind?: number } }).detail)?.kind ?? -1] ?? "other" });
  });
  obs.observe({ entryTypes: ["gc"] });
  // Build info: constant 1, the version and runtime as labels (the Prometheus idiom).
  m.createObservableGauge("meshchat.build.info", { description: "Build information (always 1)" }).addCallback((r) =>
    r.observe(1, { "service.name": service, "service.version": version, "process.runtime.version": process.version }),
  );
  return () => {
    loop.disable();
    obs.disconnect();
  };
}
