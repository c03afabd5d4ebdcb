/**
 * What changed in the directory, as far as chat's caches care:
 * - `conversation`: its members or settings (the conversation cache, directory.ts);
 * - `contacts`: these users' conversations (who they share one with: presence-access.ts);
 * - `privacy`: this user's privacy settings (every cached contact list that names them).
 */
export type DirectoryChange =
  | { kind: "conversation"; conversationId: string }
  | { kind: "contacts"; userIds: string[] }
  | { kind: "privacy"; userId: string };

/**
 * Tells every chat instance that the directory changed, so each drops its cached
 * copies at once instead of waiting out the caches' TTLs (an instance that owned
 * the conversation before a move may still hold it).
 * Embedded: one chat instance, nothing to tell (LocalSignals). Production:
 * Redis pub/sub (directory-signals-redis.ts).
 */
export interface DirectorySignals {
  changed(change: DirectoryChange): Promise<void>;
  onChanged(listener: (change: DirectoryChange) => void): void;
  close(): Promise<void>;
}

/** One chat instance: its own caches were already dropped by the caller. */
export class LocalSignals implements DirectorySignals {
  async changed(): Promise<void> {}
  onChanged(): void {}
  async close(): Promise<void> {}
}

/** The change a signal's text carries, or undefined for one this version does not know (a newer instance's): ignored. */
export function parseDirectoryChange(text: string): DirectoryChange | undefined {
  try {
    const c = JSON.parse(text) as Partial<Record<string, unknown>>;
    if (c.kind === "conversation" && typeof c.conversationId === "string") return { kind: "conversation", conversationId: c.conversationId };
    if (c.kind === "contacts" && Array.isArray(c.userIds) && c.userIds.every((u) => typeof u === "string")) return { kind: "contacts", userIds: c.userIds as string[] };
    if (c.kind === "privacy" && typeof c.userId === "string") return { kind: "privacy", userId: c.userId };
  } catch {
    // Not JSON: not ours.
  }
  return undefined;
}
