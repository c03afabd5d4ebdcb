import { describe, expect, it, vi } from "vitest";
import { TickBatcher } from "./tick-batcher.js";

describe("TickBatcher", () => {
  it("sends the calls of one tick as one batch and answers each in order", async () => {
    const batches: number[][] = [];
    const b = new TickBatcher(async (items: number[]) => { batches.push(items); return items.map((n) => n * 10); });
    const results = await Promise.all([b.call(1), b.call(2), b.call(3)]);
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
    expect(await b.call(4)).toBe(40);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it("cuts a large tick at maxBatch and fails only the calls of a batch that failed", async () => {
    const batches: number[][] = [];
    const b = new TickBatcher(async (items: number[]) => {
      batches.push(items);
      if (items.includes(3)) throw new Error("down");
      return items;
    }, 2);
    const settled = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => b.call(n)));
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "rejected", "fulfilled"]);
  });

  it("fails every call of a batch answered short, instead of leaving one waiting", async () => {
    const b = new TickBatcher(async (items: number[]) => items.slice(1));
    const settled = await Promise.allSettled([b.call(1), b.call(2)]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected"]);
  });

  it("with a window, gathers the calls of that many milliseconds, over several ticks, into one batch", async () => {
    vi.useFakeTimers();
    try {
      const batches: number[][] = [];
      const b = new TickBatcher(async (items: number[]) => { batches.push(items); return items; }, 1_000, 50);
      const first = b.call(1);
      await vi.advanceTimersByTimeAsync(20);
      const second = b.call(2);
      await vi.advanceTimersByTimeAsync(20);
      expect(batches).toEqual([]);
      await vi.advanceTimersByTimeAsync(10);
      expect(await Promise.all([first, second])).toEqual([1, 2]);
      expect(batches).toEqual([[1, 2]]);
    } finally {
      vi.useRealTimers();
    }
  });
});
