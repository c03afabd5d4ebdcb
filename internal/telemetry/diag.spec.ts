import { diag } from "@opentelemetry/api";
import { afterEach, describe, expect, it } from "vitest";
import { Logger } from "../log/logger.js";
import { summarize, wireDiagLogger } from "./diag.js";

afterEach(() => diag.disable());

describe("wireDiagLogger", () => {
  it("reduces the SDK's JSON-encoded exceptions to name, message and code (stacks differ per call path)", () => {
    const a = JSON.stringify({ stack: "OTLPExporterError: Not Found\n    at x", message: "Not Found", code: "404", name: "OTLPExporterError" });
    const b = JSON.stringify({ stack: "OTLPExporterError: Not Found\n    at y", message: "Not Found", code: "404", name: "OTLPExporterError" });
    expect(summarize(a)).toBe("OTLPExporterError: Not Found (code 404)");
    expect(summarize(b)).toBe(summarize(a));
    expect(summarize("plain words\nmore")).toBe("plain words");
  });

  it("reports SDK failures (a collector answering 404) through the product's logger, throttled", () => {
    const lines: Array<{ level: string; msg: string; suppressed?: number }> = [];
    const log = new Logger("test");
    (log as unknown as { warn: Logger["warn"] }).warn = (msg, f) => lines.push({ level: "warn", msg, suppressed: f?.suppressed as number | undefined });
    (log as unknown as { error: Logger["error"] }).error = (msg, f) => lines.push({ level: "error", msg, suppressed: f?.suppressed as number | undefined });
    let now = 0;
    wireDiagLogger(log, () => now);
    const fail = () => diag.error("OTLPExporterError: Not Found");
    fail();
    fail();
    fail();
    diag.info("routine");
    expect(lines).toEqual([{ level: "error", msg: "telemetry: OTLPExporterError: Not Found", suppressed: undefined }]);
    now = 61_000;
    fail();
    expect(lines[1]).toEqual({ level: "error", msg: "telemetry: OTLPExporterError: Not Found", suppressed: 2 });
  });
});
