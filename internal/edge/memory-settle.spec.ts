import { describe, expect, it } from "vitest";
import { compactingCollection, MemorySettle } from "./memory-settle.js";

const MB = 1024 * 1024;

function setUp(opts: { sessions?: number; heap?: { used: number; total: number } } = {}) {
  let t = 0;
  let collected = 0;
  let heap = opts.heap ?? { used: 100 * MB, total: 200 * MB };
  const settle = new MemorySettle(
    { afterConnects: 1_000, checkMs: 10_000, minIntervalMs: 60_000 },
    () => opts.sessions ?? 19_000,
    undefined,
    { collect: () => { collected++; heap = { used: heap.used, total: heap.used + MB }; }, heap: () => heap, now: () => t },
  );
  const connect = (n: number) => { for (let i = 0; i < n; i++) settle.connected(); };
  return { settle, connect, advance: (ms: number) => { t += ms; }, collected: () => collected, setHeap: (h: { used: number; total: number }) => { heap = h; } };
}

describe("MemorySettle", () => {
  it("settles once a burst of connects is over and left the heap twice its live size", () => {
    const { settle, connect, collected, advance } = setUp();
    connect(19_000);
    // Still arriving at the last check: not yet.
    expect(settle.check()).toBe(false);
    advance(10_000);
    connect(20);
    expect(settle.check()).toBe(true);
    expect(collected()).toBe(1);
    expect(settle.settles).toBe(1);
  });

  it("leaves alone a heap with little slack", () => {
    const { settle, connect, collected, setHeap } = setUp({ heap: { used: 100 * MB, total: 110 * MB } });
    connect(5_000);
    settle.check();
    expect(settle.check()).toBe(false);
    setHeap({ used: 100 * MB, total: 200 * MB });
    expect(settle.check()).toBe(true);
    expect(collected()).toBe(1);
  });

  it("waits while connects keep arriving at more than 5% of the sessions a check", () => {
    const { settle, connect, collected } = setUp({ sessions: 10_000 });
    for (let i = 0; i < 5; i++) {
      connect(600);
      expect(settle.check()).toBe(false);
    }
    connect(400);
    expect(settle.check()).toBe(true);
    expect(collected()).toBe(1);
  });

  /** An edge that has just settled one burst, its heap grown back to twice the live size. */
  function settledOnce() {
    const edge = setUp();
    edge.connect(2_000);
    edge.settle.check();
    expect(edge.settle.check()).toBe(true);
    edge.setHeap({ used: 100 * MB, total: 200 * MB });
    return edge;
  }

  it("settles again only after afterConnects more connects", () => {
    const { settle, connect, collected, advance } = settledOnce();
    connect(999);
    advance(120_000);
    settle.check();
    expect(settle.check()).toBe(false);
    expect(collected()).toBe(1);
  });

  it("settles at most once a minIntervalMs", () => {
    const { settle, connect, collected, advance } = settledOnce();
    connect(2_000);
    advance(30_000);
    settle.check();
    expect(settle.check()).toBe(false);
    advance(30_000);
    expect(settle.check()).toBe(true);
    expect(collected()).toBe(2);
  });

  it("does nothing with afterConnects 0", () => {
    const settle = new MemorySettle({ afterConnects: 0, checkMs: 10, minIntervalMs: 0 }, () => 0, undefined, { collect: () => { throw new Error("collected"); } });
    settle.start();
    settle.stop();
    expect(settle.settles).toBe(0);
  });

  it("reaches V8's compacting collection without --expose-gc on the command line", () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    const collect = compactingCollection();
    collect();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });
});
