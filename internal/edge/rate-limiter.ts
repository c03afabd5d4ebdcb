import type { CommonConfig } from "../config/config.js";
import { oneOf, unknownChoice } from "../config/env.js";
import { MemoryRateLimiter } from "./rate-limiter-memory.js";
import { RedisRateLimiter } from "./rate-limiter-redis.js";

/** A token bucket: `perMinute` tokens a minute, at most `burst` saved up (a new key starts full). */
export interface BucketRule {
  perMinute: number;
  burst: number;
}

/**
 * Exponential back-off after failed attempts on one key (an account): the first
 * `free` attempts of a window go through at once; attempt `free + k` (k >= 1) then
 * closes the key for `min(maxMs, baseMs * 2^(k-1))`. The count is forgotten
 * `windowMs` after the last attempt, or at once by `clear` (a successful login).
 */
export interface BackoffRule {
  free: number;
  baseMs: number;
  maxMs: number;
  windowMs: number;
}

/**
 * Abuse limits keyed by a string (a source address, an account). Every method
 * answers how long the caller must wait: 0 means go ahead (and the token or
 * attempt was counted), anything else is the retry_after_ms to send back.
 * Keys are opaque to the limiter; callers namespace them ("login:addr:..."),
 */
export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1: one request; a send's bytes for byte limits) from
   * the bucket `key` under `rule`, or none if it holds fewer: the answer is then the
   * wait until it holds `cost`. A cost above the burst could never pass: callers keep
   * it at most `rule.burst` (byte limits check their burst against the largest legal
   * message at start-up).
   */
  take(key: string, rule: BucketRule, cost?: number): Promise<number>;
  /**
   * Counts an attempt on `key` before it is made, unless the key is backed off.
   * Counting first means concurrent attempts cannot all slip through the check
   * while the first ones are still being verified.
   */
  attempt(key: string, rule: BackoffRule): Promise<number>;
  /** Forgets the attempts on `key` (the attempt succeeded). */
  clear(key: string): Promise<void>;
  close(): Promise<void>;
}

export const RATE_LIMIT_BACKENDS = ["memory", "redis"] as const;
export type RateLimitBackend = (typeof RATE_LIMIT_BACKENDS)[number];

/**
 * RATE_LIMIT_BACKEND: memory (embedded default: one edge, limits die with it) or
 * redis (production default: every edge shares the same buckets through REDIS_URL,
 * so an attacker gains nothing by spreading attempts over edges).
 */
export function rateLimitBackend(config: CommonConfig): RateLimitBackend {
  return oneOf("RATE_LIMIT_BACKEND", config.profile === "embedded" ? "memory" : "redis", RATE_LIMIT_BACKENDS);
}

export function openRateLimiter(config: CommonConfig, onError: (err: unknown) => void): RateLimiter {
  const backend = rateLimitBackend(config);
  switch (backend) {
    case "memory":
      return new MemoryRateLimiter();
    case "redis":
      return new RedisRateLimiter({ url: config.redisUrl, prefix: `${config.redisPrefix}rl:`, onError });
    default:
      return unknownChoice("rate limit backend", backend);
  }
}
