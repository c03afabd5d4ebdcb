import type { Redis } from "ioredis";
import { redisClient, throttledReporter } from "../redis/client.js";
import type { BackoffRule, BucketRule, RateLimiter } from "./rate-limiter.js";

export interface RedisRateLimiterOptions {
  /** REDIS_URL. */
  url: string;
  /** Every key starts with it (REDIS_PREFIX + "rl:"), so installations and tests can share a Redis. */
  prefix: string;
  /** Redis errors (throttled); the limiter lets requests through meanwhile. */
  onError: (err: unknown) => void;
  /** Time source in ms; the edges' clocks (NTP) are close enough for limits counted in seconds. */
  now?: () => number;
}

/*
 * Keys (under the prefix):
 *   <key>  hash t (tokens, float), l (last refill, ms): a token bucket. PEXPIRE = time until
 *          it is full again, when it means the same as no key at all.
 *   <key>  hash n (attempts in the window), u (closed until, ms), e (when the count is
 *          forgotten: the later of u and the last attempt + window): back-off. PEXPIRE = e - now.
 * Each operation is one script, so concurrent edges never both spend the last token or both
 * slip past a back-off. Time comes from the caller (ARGV[1]) and a clock behind the stored
 * one counts as no time passed, so edges' clock skew shortens nothing.
 */
const TAKE = `
local now = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2]) / 60000
local burst = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 't', 'l')
local tokens = tonumber(s[1])
local last = tonumber(s[2])
if tokens == nil or last == nil then tokens = burst; last = now end
tokens = math.min(burst, tokens + math.max(0, now - last) * perMs)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) / perMs) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', string.format('%d', math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / perMs) + 1000)
return wait
`;

const ATTEMPT = `
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'n', 'u', 'e')
local n = tonumber(s[1]) or 0
local closed = tonumber(s[2]) or 0
-- The key's meaning ends at e even if Redis has not expired it yet (the caller's clock leads).
if now >= (tonumber(s[3]) or 0) then n = 0; closed = 0 end
if now < closed then return closed - now end
n = n + 1
if n > free then closed = now + math.min(max, base * 2 ^ math.min(n - free - 1, 40)) end
local ends = math.max(closed, now + window)
redis.call('HSET', KEYS[1], 'n', tostring(n), 'u', string.format('%d', closed), 'e', string.format('%d', ends))
redis.call('PEXPIRE', KEYS[1], ends - now)
return 0
`;

type Script = (key: string, ...args: (string | number)[]) => Promise<number>;

/**
 * Limits shared by every edge through one Redis (production profile): an attacker
 * spreading attempts over edges meets the same buckets. While Redis is unreachable
 * requests go through (logged, throttled): an outage of the limiter must not stop
 * every login; the per-connection caps of each edge still hold.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: Redis;
  private readonly report: ReturnType<typeof throttledReporter>;
  private readonly now: () => number;

  constructor(private readonly options: RedisRateLimiterOptions) {
    this.now = options.now ?? Date.now;
    this.report = throttledReporter(options.onError);
    // Queued while (re)connecting, but for half a second at most: a login waits that long for
    // the limiter before going through unlimited.
    this.redis = redisClient(options.url, { report: this.report, commandTimeoutMs: 500, offlineQueue: true });
    this.redis.defineCommand("rlTake", { numberOfKeys: 1, lua: TAKE });
    this.redis.defineCommand("rlAttempt", { numberOfKeys: 1, lua: ATTEMPT });
  }

  take(key: string, rule: BucketRule, cost = 1): Promise<number> {
    return this.run("rlTake", key, this.now(), rule.perMinute, rule.burst, cost);
  }

  attempt(key: string, rule: BackoffRule): Promise<number> {
    return this.run("rlAttempt", key, this.now(), rule.free, rule.baseMs, rule.maxMs, rule.windowMs);
  }

  async clear(key: string): Promise<void> {
    await this.redis.del(this.options.prefix + key).catch(this.report);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private async run(name: "rlTake" | "rlAttempt", key: string, ...args: number[]): Promise<number> {
    try {
      return Number(await (this.redis as unknown as Record<string, Script>)[name]!(this.options.prefix + key, ...args));
    } catch (err) {
      this.report(err);
      return 0;
    }
  }
}
