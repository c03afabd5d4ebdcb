import type { Route } from "../../gen/chat/internal/v1/presence.js";
import type { PresenceUpdate } from "../../gen/chat/v1/client.js";

/** Sends one edge the presence changes for the users it holds (one Deliver call). */
export type EdgeSink = (edgeAddress: string, deliveries: Array<{ userIds: string[]; update: PresenceUpdate }>) => Promise<void>;

/**
 * Batches and debounces presence changes on their way to the subscribers'
 * edges: changes gather for PRESENCE_PUBLISH_BATCH_MS and each edge then gets
 * one call with all of them; if a user changed twice inside the window only the
 * latest status goes out (subscribers want the state, not every flicker).
 */
export class PresencePublisher {
  /** edge address -> watched user -> (latest update, subscriber user ids on that edge) */
  private readonly pending = new Map<string, Map<string, { update: PresenceUpdate; subscribers: Set<string> }>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: EdgeSink,
    private readonly windowMs: number,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  publish(update: PresenceUpdate, subscribers: Route[]): void {
    for (const s of subscribers) {
      let byUser = this.pending.get(s.edgeAddress);
      if (!byUser) this.pending.set(s.edgeAddress, (byUser = new Map()));
      const entry = byUser.get(update.userId);
      if (entry) {
        entry.update = update;
        entry.subscribers.add(s.userId);
      } else {
        byUser.set(update.userId, { update, subscribers: new Set([s.userId]) });
      }
    }
    if (this.windowMs === 0) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.windowMs);
  }

  /** Sends everything gathered (also on shutdown). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batches = [...this.pending];
    this.pending.clear();
    await Promise.all(batches.map(([edge, byUser]) =>
      this.sink(edge, [...byUser.values()].map((e) => ({ userIds: [...e.subscribers], update: e.update }))).catch(this.onError),
    ));
  }
}
