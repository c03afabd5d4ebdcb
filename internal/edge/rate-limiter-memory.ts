import type { BackoffRule, BucketRule, RateLimiter } from "./rate-limiter.js";

interface Bucket { kind: "bucket"; tokens: number; last: number; expiresAt: number }
interface Attempts { kind: "attempts"; count: number; until: number; expiresAt: number }

/** Keys kept at most: past it the least recently used go first (a forgotten key starts over). */
const MAX_KEYS = 100_000;
/** A full pass over the keys drops the ones that mean nothing any more, at most this often. */
const SWEEP_EVERY_MS = 60_000;

/**
 * Limits held in this process: for the embedded profile (one edge). With several
 * edges each would keep its own count, so production uses RedisRateLimiter.
 * Memory is bounded: a key is dropped once it is back to its starting state
 * (bucket full again, back-off window over), and at most MAX_KEYS are kept.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly keys = new Map<string, Bucket | Attempts>();
  private lastSweep: number;

  constructor(private readonly now: () => number = Date.now, private readonly maxKeys = MAX_KEYS) {
    this.lastSweep = now();
  }

  get size(): number {
    return this.keys.size;
  }

  async take(key: string, rule: BucketRule, cost = 1): Promise<number> {
    const now = this.now();
    const e = this.get(key, "bucket", now);
    const perMs = rule.perMinute / 60_000;
    const b: Bucket = e ?? { kind: "bucket", tokens: rule.burst, last: now, expiresAt: now };
    b.tokens = Math.min(rule.burst, b.tokens + Math.max(0, now - b.last) * perMs);
    b.last = now;
    let wait = 0;
    if (b.tokens >= cost) b.tokens -= cost;
    else wait = Math.ceil((cost - b.tokens) / perMs);
    b.expiresAt = now + Math.ceil((rule.burst - b.tokens) / perMs);
    this.put(key, b, now);
    return wait;
  }

  async attempt(key: string, rule: BackoffRule): Promise<number> {
    const now = this.now();
    const a: Attempts = this.get(key, "attempts", now) ?? { kind: "attempts", count: 0, until: 0, expiresAt: now };
    // A refused attempt is not counted: hammering a closed key does not lengthen the wait.
    if (now < a.until) return a.until - now;
    a.count += 1;
    if (a.count > rule.free) a.until = now + backoffMs(a.count - rule.free, rule);
    a.expiresAt = Math.max(a.until, now + rule.windowMs);
    this.put(key, a, now);
    return 0;
  }

  async clear(key: string): Promise<void> {
    this.keys.delete(key);
  }

  async close(): Promise<void> {
    this.keys.clear();
  }

  private get<K extends (Bucket | Attempts)["kind"]>(key: string, kind: K, now: number): Extract<Bucket | Attempts, { kind: K }> | undefined {
    const e = this.keys.get(key);
    if (!e || e.kind !== kind || e.expiresAt <= now) return undefined;
    return e as Extract<Bucket | Attempts, { kind: K }>;
  }

  private put(key: string, e: Bucket | Attempts, now: number): void {
    // Re-inserting keeps the Map in least-recently-used order for the cap below.
    this.keys.delete(key);
    this.keys.set(key, e);
    if (now - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = now;
      for (const [k, v] of this.keys) if (v.expiresAt <= now) this.keys.delete(k);
    }
    for (const k of this.keys.keys()) {
      if (this.keys.size <= this.maxKeys) break;
      this.keys.delete(k);
    }
  }
}

/** The wait after the k-th attempt past the free ones (k >= 1): baseMs, 2 x baseMs, ... up to maxMs. */
export function backoffMs(k: number, rule: BackoffRule): number {
  return Math.min(rule.maxMs, rule.baseMs * 2 ** Math.min(k - 1, 40));
}
