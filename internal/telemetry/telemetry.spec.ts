import { trace } from "@opentelemetry/api";
import { afterAll, describe, expect, it } from "vitest";
import { startTelemetry, type TelemetryHandle } from "./telemetry.js";

let handle: TelemetryHandle | undefined;
afterAll(async () => {
  await handle?.shutdown();
  for (const k of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"]) delete process.env[k];
});

describe("startTelemetry", () => {
  it("builds the sampler from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG", () => {
    // A collector nobody listens on: nothing is sampled, so nothing is sent to it.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:9";
    process.env.OTEL_TRACES_SAMPLER = "parentbased_traceidratio";
    process.env.OTEL_TRACES_SAMPLER_ARG = "0";
    handle = startTelemetry("test", "test-1", 0);
    const root = trace.getTracer("meshchat").startSpan("root");
    expect(root.isRecording()).toBe(false);
    root.end();
  });
});
