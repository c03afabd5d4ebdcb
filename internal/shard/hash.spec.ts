import { describe, expect, it } from "vitest";
import { fmix32, fnv1a32, groupByShard } from "./hash.js";

describe("shard hashes", () => {
  it("are the published FNV-1a and MurmurHash3 finaliser: stable across processes and releases", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
  });

  it("groups items by shard, each group in the items' order", () => {
    const groups = groupByShard([5, 2, 7, 4, 9], (n) => n % 2);
    expect([...groups]).toEqual([[1, [5, 7, 9]], [0, [2, 4]]]);
  });
});
