import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { mergeMeasured, plan, type Model } from "./capacity.js";

const model = YAML.parse(fs.readFileSync(path.join(import.meta.dirname, "capacity-model.yaml"), "utf8")) as Model;

describe("the capacity model", () => {
  it("derives the design's top line from its assumptions", () => {
    const { peak } = plan(model, {});
    expect(peak.messagesPerS).toBeCloseTo(23_148, -1); // 2B a day
    expect(peak.peakMessagesPerS).toBeGreaterThan(95_000);
    expect(peak.connections).toBe(12_000_000);
  });

  it("uses what the bench measured over an assumption, and says so", () => {
    const assumed = plan(model, {}).rows.find((r) => r.component === "chat")!;
    const measured = plan(model, { throughput: { cpuPerMessageUs: { chat: 50 } } }).rows.find((r) => r.component === "chat")!;
    expect(assumed.source).toBe("assumed");
    expect(measured.source).toBe("measured");
    // 50 us a message is 20k msg/s per core: a quarter of the chat instances of 5k/core.
    expect(measured.instances).toBeLessThan(assumed.instances / 3);
  });

  it("reads the CPU figures as the bench writes them (per process), and the production bench's over the embedded one's", () => {
    const fromBench = plan(model, { cpu: { microsPerMessage: { chat: 50, "message-store": 200, edge: 100 } } }).rows;
    expect(fromBench.find((r) => r.component === "chat")!.source).toBe("measured");
    expect(fromBench.find((r) => r.component.startsWith("message-store"))!).toMatchObject({ source: "measured", binds: "CPU: 5.0k msg/s per core" });
    const merged = mergeMeasured({ cpu: { microsPerMessage: { chat: 50, "message-store": 200 } } }, { cpu: { microsPerMessage: { "message-store": 3_000 }, cassandra: { requests: 9 } } });
    const rows = plan(model, merged).rows;
    expect(rows.find((r) => r.component.startsWith("message-store"))!.binds).toBe("CPU: 333 msg/s per core");
    expect(rows.find((r) => r.component === "chat")!.binds).toBe("CPU: 20k msg/s per core");
    expect(rows.find((r) => r.component === "cassandra")!.binds).toMatch(/^writes: 9 statements per message \(measured\)/);
    // Batches: fewer requests than statements; the nodes write every statement.
    const batched = plan(model, mergeMeasured({}, { cpu: { cassandra: { requests: 5.3, statements: 8.7 } } })).rows;
    expect(batched.find((r) => r.component === "cassandra")!.binds).toMatch(/^writes: 8.7 statements per message \(measured\)/);
  });

  it("sizes PostgreSQL by the conversation lists of connects, from the directory bench's CPU per list", () => {
    const row = (m: Parameters<typeof plan>[1]) => plan(model, m).rows.find((r) => r.component.startsWith("postgresql"))!;
    // 50M users x 1.6 devices x 12 connects a day, at 4.3x the average: ~48k lists a second.
    expect(row({}).load).toBe("48k conversation lists/s");
    expect(row({}).source).toBe("assumed");
    const measured = row(mergeMeasured({}, {}, { directory: { postgresMicrosPerList: 1_000 } }));
    expect(measured.source).toBe("measured");
    // 1,000 lists a second per core at 60%: ~80 cores, ten 8-core replicas and the primary.
    expect(measured.instances).toBe(11);
    expect(measured.binds).toMatch(/a primary and 10 read replicas/);
    expect(row({ directory: { postgresMicrosPerList: 10 } }).instances).toBe(1);
    // Routed to replicas: their CPU per list sizes them, the primary's is reported.
    const routed = row({ directory: { postgresMicrosPerList: 1_000, replicaRouting: { primaryMicrosPerList: 40, replicaMicrosPerList: 500 } } });
    expect(routed.instances).toBe(6);
    expect(routed.binds).toMatch(/a primary and 5 read replicas .*the primary: 3\.2 cores/);
  });

  it("reads the edge's CPU per message as CPU per frame over the frames the bench counted per message", () => {
    const edge = (framesPerMessage?: number) => plan(model, { cpu: { microsPerMessage: { edge: 1_000 }, framesPerMessage } }).rows.find((r) => r.component === "edge")!;
    // 1,000 µs a message of 5 frames is 200 µs a frame: 5,000 frames a second per core, a fifth of the CPU.
    expect(edge(5)).toMatchObject({ source: "measured", binds: "CPU: 5.0k frames/s per core" });
    expect(edge(undefined).binds).toBe("CPU: 1.0k frames/s per core");
    expect(edge(5).instances).toBeLessThan(edge(undefined).instances / 4);
  });

  it("sizes edges by memory per session when that binds first", () => {
    const fat = plan(model, { capacity: [{ sessions: 19_000, rssPerSessionKB: 200, idleCpuPercent: 10 }] }).rows.find((r) => r.component === "edge")!;
    expect(fat.binds).toMatch(/^memory/);
    expect(fat.source).toBe("measured");
    expect(fat.instances).toBe(Math.ceil(12_000_000 / ((8 * 1024 * 1024) / 200)));
  });
});
