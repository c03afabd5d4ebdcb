import { ChatError, ErrorCode } from "../errors/chat-error.js";

const DAY_MS = 24 * 3600 * 1000;

/**
 * Groups a user may create in a sliding day (MAX_GROUPS_PER_DAY), counted by the store from
 * the conversations the user created (so the count holds across chat instances and restarts).
 * The creations of one user run one at a time on this instance, so a burst of CreateGroup
 * frames cannot all pass the count before the first is written; concurrent creations on
 * different chat instances can each take the last place (at most one extra per instance).
 */
export class GroupQuota {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(
    /** 0 = no cap. */
    private readonly perDay: number,
    private readonly createdSince: (userId: string, sinceMs: number) => Promise<number>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs `create` unless the user created `perDay` groups in the last 24 h: then QUOTA_EXCEEDED, nothing created. */
  admit<T>(userId: string, create: () => Promise<T>): Promise<T> {
    if (this.perDay <= 0) return create();
    const prev = this.chains.get(userId) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(async () => {
      const made = await this.createdSince(userId, this.now() - DAY_MS);
      if (made >= this.perDay) {
        throw new ChatError(ErrorCode.ERROR_CODE_QUOTA_EXCEEDED, `at most ${this.perDay} new groups a day: try again tomorrow`);
      }
      return create();
    });
    this.chains.set(userId, next);
    void next.catch(() => {}).then(() => { if (this.chains.get(userId) === next) this.chains.delete(userId); });
    return next;
  }
}
