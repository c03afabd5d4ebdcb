import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { describe, expect, it } from "vitest";
import { TalliedCounter } from "./tallied-counter.js";

async function pointsOf(build: (c: TalliedCounter) => void): Promise<Array<{ attributes: Record<string, unknown>; value: number }>> {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  build(TalliedCounter.of(provider.getMeter("test"), "test.frames", { description: "frames" }));
  await reader.forceFlush();
  const metric = exporter.getMetrics().at(-1)!.scopeMetrics[0]!.metrics[0]!;
  await provider.shutdown();
  expect(metric.descriptor.name).toBe("test.frames");
  return metric.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value as number })).sort((a, b) => (JSON.stringify(a.attributes) < JSON.stringify(b.attributes) ? -1 : 1));
}

describe("TalliedCounter", () => {
  it("reports the sum of the adds of each attribute set as a monotonic counter", async () => {
    const points = await pointsOf((c) => {
      c.add(1, { kind: "send" });
      c.add(2, { kind: "send" });
      c.add(1, { kind: "ack" });
      c.add(5);
    });
    expect(points).toEqual([
      { attributes: { kind: "ack" }, value: 1 },
      { attributes: { kind: "send" }, value: 3 },
      { attributes: {}, value: 5 },
    ]);
  });

  it("is one counter per name and meter: two users of the name add to the same sums", async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter("test");
    TalliedCounter.of(meter, "test.requests").add(1, { kind: "read" });
    TalliedCounter.of(meter, "test.requests").add(2, { kind: "read" });
    await reader.forceFlush();
    const points = exporter.getMetrics().at(-1)!.scopeMetrics[0]!.metrics[0]!.dataPoints;
    await provider.shutdown();
    expect(points.map((p) => p.value)).toEqual([3]);
  });

  it("counts one set once whatever the order its keys are given in", async () => {
    const points = await pointsOf((c) => {
      c.add(1, { kind: "read", outcome: "ok" });
      c.add(1, { outcome: "ok", kind: "read" });
      c.add(1, { kind: "read", outcome: "error" });
    });
    expect(points).toEqual([
      { attributes: { kind: "read", outcome: "error" }, value: 1 },
      { attributes: { kind: "read", outcome: "ok" }, value: 2 },
    ]);
  });
});
