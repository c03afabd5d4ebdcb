/** What the notifier heard of one user within the window. */
interface UserActivity {
  lastAt: number;
  /** conversation id -> the highest read seq heard. */
  reads: Map<string, number>;
}

/**
 * Which users used a device in the last `windowMs` (sent, marked read, typed), and
 * how far they read, as chat reports it once per tick. A user is forgotten once the
 * window has passed since their last use, so the memory held is the users active in
 * one window, not every user ever seen.
 */
export class RecentActivity {
  private readonly users = new Map<string, UserActivity>();

  constructor(private readonly windowMs: number) {}

  /** A device of the user was used at `now`. */
  used(userId: string, now: number): void {
    const u = this.users.get(userId);
    if (u) u.lastAt = Math.max(u.lastAt, now);
    else this.users.set(userId, { lastAt: now, reads: new Map() });
  }

  /** The user read up to `readSeq` in the conversation (which is a use too). */
  read(userId: string, conversationId: string, readSeq: number, now: number): void {
    this.used(userId, now);
    const reads = this.users.get(userId)!.reads;
    reads.set(conversationId, Math.max(reads.get(conversationId) ?? 0, readSeq));
  }

  /** Whether a device of the user was used within the window before `now`. */
  activeAt(userId: string, now: number): boolean {
    const u = this.users.get(userId);
    return u !== undefined && now - u.lastAt <= this.windowMs;
  }

  /** The highest read seq heard within the window (0: none). */
  readSeq(userId: string, conversationId: string): number {
    return this.users.get(userId)?.reads.get(conversationId) ?? 0;
  }

  /** Forgets users not heard of within the window. */
  sweep(now: number): void {
    for (const [userId, u] of this.users) if (now - u.lastAt > this.windowMs) this.users.delete(userId);
  }
}
