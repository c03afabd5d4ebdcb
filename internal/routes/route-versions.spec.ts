import { describe, expect, it } from "vitest";
import { RouteVersions } from "./route-versions.js";

describe("RouteVersions", () => {
  it("moves a user's version on every raise, and only that user's", () => {
    const v = new RouteVersions(100);
    const [a0, b0] = v.of(["a", "b"]);
    v.raise(["a"]);
    const [a1, b1] = v.of(["a", "b"]);
    expect(a1).not.toBe(a0);
    expect(b1).toBe(b0);
    v.raise(["a"]);
    expect(v.of(["a"])[0]).not.toBe(a1);
    expect(v.of(["a", "a"])).toEqual([v.of(["a"])[0], v.of(["a"])[0]]);
  });

  it("past its bound, drops the oldest users and moves every user it no longer keeps", () => {
    const v = new RouteVersions(4);
    v.raise(["a", "b", "c", "d"]);
    const before = v.of(["a", "b", "c", "d", "never"]);
    v.raise(["e"]);
    const after = v.of(["a", "b", "c", "d", "e", "never"]);
    // a and b were dropped (the oldest quarter and the one past the bound): their versions moved,
    // as did the version of a user never raised (they share the floor).
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[5]).not.toBe(before[4]);
    // Those kept did not move.
    expect(after[2]).toBe(before[2]);
    expect(after[3]).toBe(before[3]);
  });

  it("gives each keeper its own epoch", () => {
    expect(new RouteVersions().epoch).not.toBe(new RouteVersions().epoch);
    expect(Number.isSafeInteger(new RouteVersions().epoch)).toBe(true);
  });
});
