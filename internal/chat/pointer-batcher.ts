import { ErrorCode } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import type { PointerMoveResult, PointerResult, PointerUpdate } from "../store/store.js";

interface Waiter {
  resolve(r: PointerResult): void;
  reject(err: unknown): void;
}

interface Pending {
  update: PointerUpdate;
  waiters: Waiter[];
}

/**
 * Group commit for delivery and read acks: every ack of a tick, and every ack
 * that arrives while a write is in flight, goes to the store in one call (one
 * transaction on SQLite). Acks of one user in one conversation are merged
 * (pointers only move forward, so the highest wins) and each moved pointer is
 * reported once to `onMoved` (receipts, read markers), however many acks asked
 * for it. An ack resolves only once its move is durable.
 */
export class PointerBatcher {
  private pending = new Map<string, Pending>();
  private inFlight = false;
  private scheduled = false;

  constructor(
    private readonly write: (updates: PointerUpdate[]) => Promise<PointerMoveResult[]>,
    private readonly onMoved: (update: PointerUpdate, result: PointerResult) => void,
    private readonly maxBatch = 5_000,
  ) {}

  update(u: PointerUpdate): Promise<PointerResult> {
    return new Promise((resolve, reject) => {
      const key = `${u.conversationId}\u0000${u.userId}`;
      const p = this.pending.get(key);
      if (p) {
        p.update.deliveredSeq = Math.max(p.update.deliveredSeq, u.deliveredSeq);
        p.update.readSeq = Math.max(p.update.readSeq, u.readSeq);
        p.waiters.push({ resolve, reject });
      } else {
        this.pending.set(key, { update: { ...u }, waiters: [{ resolve, reject }] });
      }
      this.schedule();
    });
  }

  /** Resolves when nothing is pending or in flight. */
  async drain(): Promise<void> {
    while (this.pending.size > 0 || this.inFlight) await new Promise((r) => setImmediate(r));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight || this.pending.size === 0) return;
    this.inFlight = true;
    const batch: Pending[] = [];
    for (const [key, p] of this.pending) {
      if (batch.length >= this.maxBatch) break;
      batch.push(p);
      this.pending.delete(key);
    }
    try {
      const results = await this.write(batch.map((p) => p.update));
      batch.forEach((p, i) => {
        const r = results[i];
        if (!r || r.error !== undefined) {
          const err = !r
            ? new ChatError(ErrorCode.ERROR_CODE_INTERNAL, "the store answered fewer pointer moves than asked")
            : r.error === ErrorCode.ERROR_CODE_PERMISSION_DENIED ? ChatError.denied() : new ChatError(r.error, "pointer update refused");
          for (const w of p.waiters) w.reject(err);
          return;
        }
        if (r.pointers.changed) this.onMoved(p.update, r.pointers);
        for (const w of p.waiters) w.resolve(r.pointers);
      });
    } catch (err) {
      for (const p of batch) for (const w of p.waiters) w.reject(err);
    } finally {
      this.inFlight = false;
      this.schedule();
    }
  }
}
