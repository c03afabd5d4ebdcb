import { describe, expect, it } from "vitest";
import { RouteCache, seenVersions } from "./route-cache.js";
import type { Route, RouteIndex, RouteSeen } from "./route-index.js";

const route = (userId: string, edgeId = "edge-1", deviceId = "d"): Route => ({ userId, deviceId, sessionId: `s-${userId}-${deviceId}`, edgeId, edgeAddress: `${edgeId}:1` });

/** What presence holds, and every lookup asked of it. */
function presence(held: Route[]): RouteIndex & { asked: string[][]; held: Route[] } {
  const p = {
    held,
    asked: [] as string[][],
    lookup: async (userIds: string[]) => {
      p.asked.push(userIds);
      return p.held.filter((r) => userIds.includes(r.userId));
    },
    close: async () => {},
  };
  return p;
}

const seen = (entries: Record<string, number>, epoch = 7): Map<string, RouteSeen> => new Map(Object.entries(entries).map(([u, version]) => [u, { epoch, version }]));

describe("RouteCache", () => {
  it("answers from what it fetched while the store answers the same versions, and asks presence once they move", async () => {
    const p = presence([route("a"), route("b", "edge-2")]);
    const cache = new RouteCache(p, { ttlMs: 10_000, maxUsers: 100 });
    expect(await cache.lookup(["a", "b"], seen({ a: 1, b: 1 }))).toEqual([route("a"), route("b", "edge-2")]);
    expect(await cache.lookup(["a", "b"], seen({ a: 1, b: 1 }))).toEqual([route("a"), route("b", "edge-2")]);
    expect(p.asked).toEqual([["a", "b"]]);
    // b connected a second device: its version moved, so b alone is asked for.
    p.held.push(route("b", "edge-3", "d2"));
    expect(await cache.lookup(["a", "b"], seen({ a: 1, b: 2 }))).toEqual([route("a"), route("b", "edge-2"), route("b", "edge-3", "d2")]);
    expect(p.asked).toEqual([["a", "b"], ["b"]]);
  });

  it("keeps a user with no device online, so a message to them asks nothing until they connect", async () => {
    const p = presence([route("a")]);
    const cache = new RouteCache(p, { ttlMs: 10_000, maxUsers: 100 });
    expect(await cache.lookup(["a", "off"], seen({ a: 1, off: 1 }))).toEqual([route("a")]);
    expect(await cache.lookup(["a", "off"], seen({ a: 1, off: 1 }))).toEqual([route("a")]);
    expect(p.asked.length).toBe(1);
    p.held.push(route("off"));
    expect(await cache.lookup(["off"], seen({ off: 2 }))).toEqual([route("off")]);
  });

  it("asks again under another epoch (another keeper of the versions), once an entry is older than its age, and always without versions", async () => {
    let now = 0;
    const p = presence([route("a")]);
    const cache = new RouteCache(p, { ttlMs: 1_000, maxUsers: 100, now: () => now });
    await cache.lookup(["a"], seen({ a: 1 }));
    await cache.lookup(["a"], seen({ a: 1 }, 8));
    expect(p.asked.length).toBe(2);
    await cache.lookup(["a"], seen({ a: 1 }, 8));
    expect(p.asked.length).toBe(2);
    now = 1_000;
    await cache.lookup(["a"], seen({ a: 1 }, 8));
    expect(p.asked.length).toBe(3);
    await cache.lookup(["a"]);
    await cache.lookup(["a"], new Map());
    expect(p.asked.length).toBe(5);
  });

  it("drops routes to an edge that left the live set, and caches nothing with a zero age", async () => {
    const live = new Set(["edge-1", "edge-2"]);
    const p = presence([route("a", "edge-1"), route("a", "edge-2", "d2")]);
    const cache = new RouteCache(p, { ttlMs: 10_000, maxUsers: 100, edgeIsLive: (id) => live.has(id) });
    await cache.lookup(["a"], seen({ a: 1 }));
    live.delete("edge-2");
    expect(await cache.lookup(["a"], seen({ a: 1 }))).toEqual([route("a", "edge-1")]);
    const none = new RouteCache(p, { ttlMs: 0, maxUsers: 100 });
    await none.lookup(["a"], seen({ a: 1 }));
    await none.lookup(["a"], seen({ a: 1 }));
    expect(p.asked.length).toBe(3);
  });
});

describe("seenVersions", () => {
  it("takes each member's version from the answers, the later of one keeper's, and leaves out a member seen under two epochs", () => {
    const s = seenVersions([
      { memberIds: ["a", "b", "c"], routes: { epoch: 7, versions: [1, 5, 3] } },
      { memberIds: ["a", "b"], routes: { epoch: 7, versions: [4, 2] } },
      { memberIds: ["c"], routes: { epoch: 8, versions: [3] } },
      { memberIds: ["d"], routes: { epoch: 0, versions: [] } },
      { memberIds: ["e"] },
    ]);
    expect([...s]).toEqual([["a", { epoch: 7, version: 4 }], ["b", { epoch: 7, version: 5 }]]);
  });
});
