import type { Logger } from "../log/logger.js";
import type { Store } from "./store.js";

/** The longest wait between two trims: entries outlive their retention by at most this. */
const MAX_INTERVAL_MS = 3_600_000;

/**
 * Deletes the sync-log entries older than `retentionSeconds`, now and then on a timer
 * (docs/sync-log-trim.md), for a store whose entries do not expire by themselves (the SQL
 * stores; Cassandra's carry a TTL and have no trimLog). Every tenth of the retention, at
 * most hourly, so an entry outlives it by a tenth at most. Several message-store
 * instances on one database may all trim: the deletes are idempotent. A failed trim is
 * logged and tried again at the next turn; it never stops the store.
 */
export function startLogTrimmer(store: Pick<Store, "trimLog">, retentionSeconds: number, log: Logger, now: () => number = Date.now): { stop(): Promise<void> } {
  const trim = store.trimLog;
  if (!trim || retentionSeconds === 0) return { stop: async () => {} };
  const retentionMs = retentionSeconds * 1_000;
  const intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(100, retentionMs / 10));
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The next turn is timed from the end of this one, so a slow trim never overlaps the next.
  const turn = async (): Promise<void> => {
    try {
      const n = await trim.call(store, now() - retentionMs);
      if (n > 0) log.info("sync log trimmed", { entries: n, retentionSeconds });
    } catch (err) {
      log.warn("sync log trim failed; trying again later", { err });
    }
    if (stopped) return;
    timer = setTimeout(() => { running = turn(); }, intervalMs);
    timer.unref();
  };
  let running = turn();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
