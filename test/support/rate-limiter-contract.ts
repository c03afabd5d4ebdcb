import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { BackoffRule, BucketRule, RateLimiter } from "../../internal/edge/rate-limiter.js";

/** A limiter under test and the way to move its clock forward. */
export interface LimiterUnderTest {
  limiter: RateLimiter;
  advance(ms: number): Promise<void> | void;
}

const BUCKET: BucketRule = { perMinute: 60, burst: 3 };
const BACKOFF: BackoffRule = { free: 2, baseMs: 1_000, maxMs: 4_000, windowMs: 60_000 };

/** The behaviour every RateLimiter has, run against memory (unit) and Redis (test/servers). */
export function rateLimiterContract(name: string, open: () => Promise<LimiterUnderTest> | LimiterUnderTest): void {
  describe(`${name} (RateLimiter contract)`, () => {
    const opened: RateLimiter[] = [];
    afterEach(async () => {
      for (const l of opened.splice(0)) await l.close();
    });
    async function make(): Promise<LimiterUnderTest & { key: string }> {
      const t = await open();
      opened.push(t.limiter);
      return { ...t, key: `k-${randomUUID()}` };
    }

    it("lets the burst through, then answers the wait until the next token", async () => {
      const { limiter, advance, key } = await make();
      for (let i = 0; i < 3; i++) expect(await limiter.take(key, BUCKET)).toBe(0);
      expect(await limiter.take(key, BUCKET)).toBe(1_000);
      await advance(400);
      expect(await limiter.take(key, BUCKET)).toBe(600);
      await advance(600);
      expect(await limiter.take(key, BUCKET)).toBe(0);
      expect(await limiter.take(key, BUCKET)).toBeGreaterThan(0);
    });

    it("takes a cost of several tokens at once, all or none, and answers the wait until the bucket holds it", async () => {
      const { limiter, advance, key } = await make();
      // Bytes: 60,000 a minute (1 a ms), at most 5,000 saved up.
      const bytes: BucketRule = { perMinute: 60_000, burst: 5_000 };
      expect(await limiter.take(key, bytes, 4_000)).toBe(0);
      // 1,000 left: a cost of 3,000 is refused whole (nothing taken) with the wait for the missing 2,000.
      expect(await limiter.take(key, bytes, 3_000)).toBe(2_000);
      expect(await limiter.take(key, bytes, 1_000)).toBe(0);
      await advance(3_000);
      expect(await limiter.take(key, bytes, 3_000)).toBe(0);
      expect(await limiter.take(key, bytes, 1)).toBe(1);
    });

    it("keeps keys apart and refills up to the burst only", async () => {
      const { limiter, advance, key } = await make();
      for (let i = 0; i < 3; i++) await limiter.take(key, BUCKET);
      expect(await limiter.take(`${key}-other`, BUCKET)).toBe(0);
      await advance(3_600_000);
      for (let i = 0; i < 3; i++) expect(await limiter.take(key, BUCKET)).toBe(0);
      expect(await limiter.take(key, BUCKET)).toBe(1_000);
    });

    it("backs off exponentially after the free attempts, capped, without counting refused ones", async () => {
      const { limiter, advance, key } = await make();
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      // The third attempt goes through and closes the key for baseMs.
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(1_000);
      await advance(999);
      expect(await limiter.attempt(key, BACKOFF)).toBe(1);
      await advance(1);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(2_000);
      await advance(2_000);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(4_000);
      await advance(4_000);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      // Capped at maxMs.
      expect(await limiter.attempt(key, BACKOFF)).toBe(4_000);
    });

    it("forgets attempts after a success or a quiet window", async () => {
      const { limiter, advance, key } = await make();
      for (let i = 0; i < 3; i++) await limiter.attempt(key, BACKOFF);
      expect(await limiter.attempt(key, BACKOFF)).toBeGreaterThan(0);
      await limiter.clear(key);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      expect(await limiter.attempt(key, BACKOFF)).toBe(0);
      await advance(BACKOFF.windowMs);
      for (let i = 0; i < 3; i++) expect(await limiter.attempt(key, BACKOFF)).toBe(0);
    });

    it("never lets more concurrent takes through than the burst", async () => {
      const { limiter, key } = await make();
      const waits = await Promise.all(Array.from({ length: 20 }, () => limiter.take(key, BUCKET)));
      expect(waits.filter((w) => w === 0)).toHaveLength(3);
      const attempts = await Promise.all(Array.from({ length: 20 }, () => limiter.attempt(`${key}-b`, BACKOFF)));
      expect(attempts.filter((w) => w === 0)).toHaveLength(3);
    });
  });
}
