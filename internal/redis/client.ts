import { Redis } from "ioredis";

/** Reports the first error of a streak, then at most one every `everyMs`; `reset` starts a new streak. */
export type Reporter = ((err: unknown) => void) & { reset(): void };

export function throttledReporter(onError: (err: unknown) => void, everyMs = 10_000): Reporter {
  let last = 0;
  const report = ((err: unknown) => {
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    onError(err);
  }) as Reporter;
  report.reset = () => { last = 0; };
  return report;
}

export interface RedisClientOptions {
  /** Connection errors (ioredis emits one per failed reconnect attempt) go here; it starts over once connected. */
  report: Reporter;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  lazyConnect?: boolean;
  /** Queue commands while disconnected (a subscriber wants its SUBSCRIBE replayed); off by default. */
  offlineQueue?: boolean;
}

/**
 * The one way this project connects to Redis: fail fast while Redis is down
 * (no offline queue, one retry) so callers get a typed UNAVAILABLE or skip a
 * cache, and reconnect in the background with a backoff capped at 2 s.
 */
export function redisClient(url: string, opts: RedisClientOptions): Redis {
  const redis = new Redis(url, {
    lazyConnect: opts.lazyConnect ?? false,
    enableOfflineQueue: opts.offlineQueue ?? false,
    maxRetriesPerRequest: 1,
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
    ...(opts.connectTimeoutMs ? { connectTimeout: opts.connectTimeoutMs } : {}),
    retryStrategy: (times) => Math.min(100 * times, 2_000),
  });
  redis.on("error", opts.report);
  redis.on("ready", () => opts.report.reset());
  return redis;
}
