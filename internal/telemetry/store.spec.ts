import { describe, expect, it } from "vitest";
import { MessageTraces } from "./message-traces.js";
import { instrumentStore } from "./store.js";

describe("instrumentStore", () => {
  it("passes calls, results and failures through unchanged", async () => {
    const store = {
      n: 2,
      async twice(x: number) { return x * this.n; },
      async broken(): Promise<number> { throw new Error("down"); },
    };
    const s = instrumentStore(store, "memory");
    expect(await s.twice(3)).toBe(6);
    await expect(s.broken()).rejects.toThrow("down");
    expect(s.n).toBe(2);
  });
});

describe("MessageTraces", () => {
  it("remembers the newest messages and forgets the oldest past capacity", () => {
    const t = new MessageTraces(2);
    const ctx = (id: string) => ({ traceId: id.padStart(32, "0"), spanId: id.padStart(16, "0"), traceFlags: 1 });
    t.remember("c", 1, ctx("1"));
    t.remember("c", 2, ctx("2"));
    t.remember("c", 3, ctx("3"));
    expect(t.lookup("c", 1)).toBeUndefined();
    expect(t.lookup("c", 3)?.spanId).toBe(ctx("3").spanId);
    expect(t.lookup("d", 3)).toBeUndefined();
  });
});
