import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { rateLimiterContract } from "../../test/support/rate-limiter-contract.js";
import { MemoryRateLimiter } from "./rate-limiter-memory.js";

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

rateLimiterContract("MemoryRateLimiter", () => ({ limiter: new MemoryRateLimiter(), advance: (ms) => void vi.advanceTimersByTime(ms) }));

describe("MemoryRateLimiter memory bound", () => {
  it("drops keys back at their starting state and keeps at most maxKeys", async () => {
    const l = new MemoryRateLimiter(Date.now, 100);
    for (let i = 0; i < 250; i++) await l.take(`k${i}`, { perMinute: 60, burst: 5 });
    expect(l.size).toBe(100);
    // Buckets refill in 1 s; the next sweep (after a minute) drops them all but the one just touched.
    vi.advanceTimersByTime(61_000);
    await l.take("fresh", { perMinute: 60, burst: 5 });
    expect(l.size).toBe(1);
  });
});
