/**
 * Tells every chat instance that a conversation's members or settings changed,
 * so each drops its cached copy at once instead of waiting out the cache TTL
 * (an instance that owned the conversation before a move may still hold it).
 * Embedded: one chat instance, nothing to tell (LocalSignals). Production:
 * Redis pub/sub (directory-signals-redis.ts).
 */
export interface DirectorySignals {
  changed(conversationId: string): Promise<void>;
  onChanged(listener: (conversationId: string) => void): void;
  close(): Promise<void>;
}

/** One chat instance: its own cache was already dropped by the caller. */
export class LocalSignals implements DirectorySignals {
  async changed(): Promise<void> {}
  onChanged(): void {}
  async close(): Promise<void> {}
}
