import type { BlockPair } from "../../gen/chat/internal/v1/store.js";
import type { BlockedUser } from "../../gen/chat/v1/client.js";

export type { BlockedUser, BlockPair };

/**
 * Block lists and account deletion, in the directory beside the users (the `blocks` table and
 * `users.deleted_at`, migration 7; docs/features.md, "Blocking a user" and "Deleting an account").
 * One file per directory: blocks-sql.ts (PGlite, PostgreSQL, and the Cassandra store's directory)
 * and blocks-sqlite.ts (the embedded default).
 */
export interface BlockStore {
  /** Blocks or unblocks; `changed` is false when it already was so. Also answers the conversations both are in. */
  setBlocked(userId: string, blockedId: string, blocked: boolean, atMs: number): Promise<{ changed: boolean; sharedConversationIds: string[] }>;
  /** Whom the user blocked (most recent first, with usernames) and the ids of those who blocked the user. */
  blocks(userId: string): Promise<{ blocked: BlockedUser[]; blockedBy: string[] }>;
  /** Every block between two of `userIds` (a conversation's members). */
  blockPairs(userIds: string[]): Promise<BlockPair[]>;
  /** Those of `userIds` whose account was deleted. */
  deletedAmong(userIds: string[]): Promise<string[]>;
  /**
   * Marks the account deleted (its username stays taken, its password hash is emptied), ends every
   * session of it and drops its block lists and privacy settings, in one transaction. Repeatable:
   * a retry answers the same. NOT_FOUND for an unknown user.
   */
  deleteAccount(userId: string, nowMs: number): Promise<{ sessionIds: string[]; conversationIds: string[] }>;
}
