import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rateLimiterContract } from "../support/rate-limiter-contract.js";
import { RedisRateLimiter } from "../../internal/edge/rate-limiter-redis.js";

/** RedisRateLimiter on the real Redis of scripts/servers, under a random prefix (other work shares this Redis). */
const url = process.env.REDIS_URL;
if (!url) throw new Error("REDIS_URL is not set: source scripts/servers/env.sh");
const prefix = `meshchat-test-${randomUUID().slice(0, 8)}:rl:`;

let admin: Redis;
beforeAll(() => {
  admin = new Redis(url);
});
afterAll(async () => {
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== "0");
  admin.disconnect();
});

/** The scripts take time from the caller, so the contract runs on a clock the test moves. */
function open() {
  let now = 1_700_000_000_000;
  const limiter = new RedisRateLimiter({ url: url!, prefix, onError: (err) => { throw err; }, now: () => now });
  return { limiter, advance: (ms: number) => { now += ms; } };
}

rateLimiterContract("RedisRateLimiter", open);

describe("RedisRateLimiter on a shared Redis", () => {
  it("two edges share one bucket", async () => {
    const a = open();
    const b = open();
    try {
      const key = `shared-${randomUUID()}`;
      const rule = { perMinute: 1, burst: 4 };
      const waits = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => (i % 2 ? a : b).limiter.take(key, rule)));
      expect(waits.filter((w) => w === 0)).toHaveLength(4);
    } finally {
      await a.limiter.close();
      await b.limiter.close();
    }
  });

  it("sets an expiry on every key it writes (nothing outlives its meaning)", async () => {
    const { limiter } = open();
    try {
      const key = `ttl-${randomUUID()}`;
      await limiter.take(`${key}-bucket`, { perMinute: 60, burst: 3 });
      await limiter.attempt(`${key}-attempts`, { free: 1, baseMs: 1_000, maxMs: 10_000, windowMs: 30_000 });
      const bucketTtl = await admin.pttl(`${prefix}${key}-bucket`);
      const attemptsTtl = await admin.pttl(`${prefix}${key}-attempts`);
      expect(bucketTtl).toBeGreaterThan(0);
      expect(bucketTtl).toBeLessThanOrEqual(2_000);
      expect(attemptsTtl).toBeGreaterThan(20_000);
      expect(attemptsTtl).toBeLessThanOrEqual(30_000);
    } finally {
      await limiter.close();
    }
  });

  it("lets requests through while Redis is unreachable, and reports it", async () => {
    const errors: unknown[] = [];
    const limiter = new RedisRateLimiter({ url: "redis://127.0.0.1:1", prefix, onError: (err) => errors.push(err) });
    try {
      expect(await limiter.take("k", { perMinute: 1, burst: 1 })).toBe(0);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      await limiter.close();
    }
  });
});
