import { describe, expect, it } from "vitest";
import { TokenBucket } from "./rate-limit.js";

describe("TokenBucket", () => {
  it("allows the burst, then refills at the rate", () => {
    let now = 0;
    const b = new TokenBucket(10, 3, () => now);
    expect([b.take(), b.take(), b.take()]).toEqual([0, 0, 0]);
    expect(b.take()).toBe(100);
    now += 100;
    expect(b.take()).toBe(0);
  });

  it("spend takes what was already used, into debt, and says how long until the debt is paid", () => {
    let now = 0;
    const b = new TokenBucket(1_000, 2_000, () => now);
    expect(b.spend(1_500)).toBe(0);
    // 500 left; 1,500 more puts it 1,000 in debt: one second at 1,000 a second.
    expect(b.spend(1_500)).toBe(1_000);
    now = 500;
    expect(b.spend(0)).toBe(500);
    now = 1_000;
    expect(b.spend(0)).toBe(0);
    expect(b.take()).toBe(1);
  });
});

