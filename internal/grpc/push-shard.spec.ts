import { describe, expect, it } from "vitest";
import { byPushShard, PUSH_SHARD_HEADER, PUSH_SHARDS, pushShard, pushShardHeader } from "./push-shard.js";

describe("push shards", () => {
  it("puts a user in the same shard every time, and spreads users over all of them", () => {
    const users = Array.from({ length: 2_000 }, (_, i) => `u-${i}`);
    const shards = users.map(pushShard);
    expect(users.map(pushShard)).toEqual(shards);
    for (const s of shards) expect(Number.isInteger(s) && s >= 0 && s < PUSH_SHARDS).toBe(true);
    const counts = Array.from({ length: PUSH_SHARDS }, (_, s) => shards.filter((x) => x === s).length);
    // 125 per shard on average: none empty, none with twice its share.
    expect(Math.min(...counts)).toBeGreaterThan(60);
    expect(Math.max(...counts)).toBeLessThan(250);
  });

  it("groups items by their user's shard, in order, and names the shard in the header", () => {
    const items = ["a", "b", "c", "a2", "b2"].map((userId, i) => ({ userId, i }));
    const groups = byPushShard(items, (x) => x.userId);
    expect([...groups.values()].flat().sort((x, y) => x.i - y.i)).toEqual(items);
    for (const [shard, list] of groups) {
      for (const x of list) expect(pushShard(x.userId)).toBe(shard);
      expect(list.map((x) => x.i)).toEqual([...list.map((x) => x.i)].sort((p, q) => p - q));
    }
    expect(pushShardHeader(3)).toEqual({ [PUSH_SHARD_HEADER]: "3" });
  });
});
