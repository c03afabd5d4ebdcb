import { trimOldest } from "../run/trim-oldest.js";

/** How the store is asked: for each id, in order, is the session live? */
export type CheckSessions = (sessionIds: string[]) => Promise<boolean[]>;

/** Ids per store call (the store refuses more than 1,000). */
const BATCH = 1_000;
/** Answers kept; the oldest go first. */
const MAX_ENTRIES = 100_000;

/**
 * Whether a session (the `sid` of an access token) is still live, as the edge sees
 * it: asked of the store at Hello, remembered for `cacheMs` so a device that reconnects
 * in a loop does not cost a store read each time, and asked again in batches for every
 * connected session by `sweep`. Lookups that miss in the same tick share one store
 * call (an edge restart reconnects thousands of devices at once). A session this edge
 * ended itself (logout, password change, reused refresh token) is known ended at once.
 */
export class SessionLiveness {
  private readonly known = new Map<string, { live: boolean; at: number }>();
  private waiting = new Map<string, Array<{ resolve: (live: boolean) => void; reject: (err: unknown) => void }>>();
  private scheduled = false;

  constructor(private readonly check: CheckSessions, private readonly cacheMs: number, private readonly now: () => number = Date.now) {}

  isLive(sessionId: string): Promise<boolean> {
    const k = this.known.get(sessionId);
    if (k && (!k.live || this.now() - k.at < this.cacheMs)) return Promise.resolve(k.live);
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(sessionId);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(sessionId, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Asks the store about every id (no cache) and returns those that are no longer live. */
  async sweep(sessionIds: string[]): Promise<string[]> {
    const ended: string[] = [];
    for (let i = 0; i < sessionIds.length; i += BATCH) {
      const chunk = sessionIds.slice(i, i + BATCH);
      const live = await this.check(chunk);
      chunk.forEach((id, k) => { this.remember(id, live[k] ?? false); if (!live[k]) ended.push(id); });
    }
    return ended;
  }

  /** This edge ended the sessions itself: refuse them from now on without asking. */
  ended(sessionIds: Iterable<string>): void {
    for (const id of sessionIds) this.remember(id, false);
  }

  private remember(sessionId: string, live: boolean): void {
    this.known.delete(sessionId);
    this.known.set(sessionId, { live, at: this.now() });
    trimOldest(this.known, MAX_ENTRIES);
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.waiting;
    this.waiting = new Map();
    const ids = [...batch.keys()];
    for (let i = 0; i < ids.length; i += BATCH) {
      const chunk = ids.slice(i, i + BATCH);
      try {
        const live = await this.check(chunk);
        chunk.forEach((id, k) => {
          this.remember(id, live[k] ?? false);
          for (const w of batch.get(id)!) w.resolve(live[k] ?? false);
        });
      } catch (err) {
        // The store is unreachable: these Hellos fail (retryable), nothing is remembered.
        for (const id of chunk) for (const w of batch.get(id)!) w.reject(err);
      }
    }
  }
}
