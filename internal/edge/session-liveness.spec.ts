import { describe, expect, it } from "vitest";
import { SessionLiveness } from "./session-liveness.js";

/** A store that answers from `live` and records each call. */
function fakeStore(live: Set<string>) {
  const calls: string[][] = [];
  return { calls, check: async (ids: string[]) => { calls.push(ids); return ids.map((id) => live.has(id)); } };
}

describe("SessionLiveness", () => {
  it("asks the store once for lookups in the same tick, and remembers answers for cacheMs", async () => {
    const live = new Set(["a", "b"]);
    const store = fakeStore(live);
    let now = 0;
    const l = new SessionLiveness(store.check, 5_000, () => now);
    expect(await Promise.all([l.isLive("a"), l.isLive("b"), l.isLive("a"), l.isLive("c")])).toEqual([true, true, true, false]);
    expect(store.calls).toEqual([["a", "b", "c"]]);
    live.delete("a");
    now = 4_999;
    expect(await l.isLive("a")).toBe(true); // within the cache bound
    now = 5_000;
    expect(await l.isLive("a")).toBe(false);
    expect(store.calls.length).toBe(2);
    // An ended session stays ended without asking again.
    now = 60_000;
    expect(await l.isLive("a")).toBe(false);
    expect(store.calls.length).toBe(2);
  });

  it("a session this edge ended is refused at once, cache or not", async () => {
    const store = fakeStore(new Set(["a"]));
    const l = new SessionLiveness(store.check, 60_000);
    expect(await l.isLive("a")).toBe(true);
    l.ended(["a"]);
    expect(await l.isLive("a")).toBe(false);
    expect(store.calls.length).toBe(1);
  });

  it("sweep asks about every id in batches of 1,000 and returns the ended ones", async () => {
    const ids = Array.from({ length: 2_500 }, (_, i) => `s${i}`);
    const store = fakeStore(new Set(ids.filter((_, i) => i % 1_000 !== 7)));
    const l = new SessionLiveness(store.check, 60_000);
    expect(await l.sweep(ids)).toEqual(["s7", "s1007", "s2007"]);
    expect(store.calls.map((c) => c.length)).toEqual([1_000, 1_000, 500]);
    expect(await l.isLive("s1007")).toBe(false);
  });

  it("a store failure fails the waiting lookups and is not remembered", async () => {
    let fail = true;
    const l = new SessionLiveness(async (ids) => { if (fail) throw new Error("down"); return ids.map(() => true); }, 60_000);
    await expect(l.isLive("a")).rejects.toThrow("down");
    fail = false;
    expect(await l.isLive("a")).toBe(true);
  });
});
