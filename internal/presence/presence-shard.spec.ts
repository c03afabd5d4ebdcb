import { describe, expect, it } from "vitest";
import { byPresenceShard, PRESENCE_SHARDS, presenceShard, shardKeyBase } from "./presence-shard.js";

describe("presence shards", () => {
  it("put a user in the same shard every time, and spread user ids over all of them", () => {
    // UUID-shaped ids that differ in their last hex digits only: fixed, so the bounds below never flake.
    const users = Array.from({ length: 100 * PRESENCE_SHARDS }, (_, i) => `6f1c2a9e-0000-4000-8000-${i.toString(16).padStart(12, "0")}`);
    const shards = users.map(presenceShard);
    expect(users.map(presenceShard)).toEqual(shards);
    const counts = new Array<number>(PRESENCE_SHARDS).fill(0);
    for (const s of shards) counts[s]! += 1;
    // 100 a shard on average: none empty, none far past its share (a hot node in a cluster).
    expect(Math.min(...counts)).toBeGreaterThan(50);
    expect(Math.max(...counts)).toBeLessThan(160);
    // Ids that differ only in their last character still spread (plain FNV-1a would leave them close).
    expect(new Set(Array.from({ length: 64 }, (_, i) => presenceShard(`user-${String.fromCharCode(48 + i)}`))).size).toBeGreaterThan(50);
  });

  it("keys of a shard carry its hash tag after the prefix, and items group by their user's shard", () => {
    expect(shardKeyBase("meshchat:", 17)).toBe("meshchat:{17}");
    const items = ["a", "b", "c", "a", "d"].map((userId, i) => ({ userId, i }));
    for (const [shard, list] of byPresenceShard(items, (x) => x.userId)) for (const x of list) expect(presenceShard(x.userId)).toBe(shard);
  });
});
