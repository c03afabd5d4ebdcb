import { describe, expect, it } from "vitest";
import { trimOldest } from "./trim-oldest.js";

describe("trimOldest", () => {
  it("leaves a map at or under its bound alone", () => {
    const m = new Map([["a", 1], ["b", 2]]);
    trimOldest(m, 2);
    expect([...m.keys()]).toEqual(["a", "b"]);
  });

  it("past the bound drops the oldest down to three quarters of it, keeping the most recently used", () => {
    const m = new Map<string, number>();
    for (let i = 0; i < 8; i++) m.set(`k${i}`, i);
    // k0 used again: now the most recent.
    m.delete("k0");
    m.set("k0", 0);
    m.set("k8", 8);
    trimOldest(m, 8);
    expect([...m.keys()]).toEqual(["k4", "k5", "k6", "k7", "k0", "k8"]);
  });

  it("keeps a bound of one working: one entry stays, the newest", () => {
    const m = new Map([["a", 1], ["b", 2]]);
    trimOldest(m, 1);
    expect([...m.keys()]).toEqual(["b"]);
  });
});
