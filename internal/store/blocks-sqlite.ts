import { ChatError } from "../errors/chat-error.js";
import type { BlockedUser, BlockPair, BlockStore } from "./blocks.js";
import type { SqliteDb } from "./sqlite-db.js";

/** Block lists and account deletion in the embedded SQLite store (schema-sqlite.ts migration 7): the same rules as blocks-sql.ts. */
export class SqliteBlockStore implements BlockStore {
  constructor(private readonly sql: SqliteDb) {}

  async setBlocked(userId: string, blockedId: string, blocked: boolean, atMs: number): Promise<{ changed: boolean; sharedConversationIds: string[] }> {
    const r = blocked
      ? this.sql.q(`INSERT INTO blocks (user_id, blocked_id, blocked_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING`).run(userId, blockedId, atMs)
      : this.sql.q(`DELETE FROM blocks WHERE user_id = ?1 AND blocked_id = ?2`).run(userId, blockedId);
    const rows = this.sql.q(
      `SELECT a.conversation_id FROM members a JOIN members b ON b.conversation_id = a.conversation_id WHERE a.user_id = ?1 AND b.user_id = ?2`,
    ).all(userId, blockedId) as Array<{ conversation_id: string }>;
    return { changed: Number(r.changes) > 0, sharedConversationIds: rows.map((x) => x.conversation_id) };
  }

  async blocks(userId: string): Promise<{ blocked: BlockedUser[]; blockedBy: string[] }> {
    const mine = this.sql.q(
      `SELECT b.blocked_id, u.username, b.blocked_at FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.user_id = ?1 ORDER BY b.blocked_at DESC, b.blocked_id`,
    ).all(userId) as Array<{ blocked_id: string; username: string; blocked_at: number }>;
    const theirs = this.sql.q(`SELECT user_id FROM blocks WHERE blocked_id = ?1`).all(userId) as Array<{ user_id: string }>;
    return {
      blocked: mine.map((r) => ({ userId: r.blocked_id, username: r.username, blockedAtMs: r.blocked_at })),
      blockedBy: theirs.map((r) => r.user_id),
    };
  }

  async blockPairs(userIds: string[]): Promise<BlockPair[]> {
    if (userIds.length < 2) return [];
    const rows = this.sql.q(
      `SELECT user_id, blocked_id FROM blocks WHERE user_id IN (SELECT value FROM json_each(?1)) AND blocked_id IN (SELECT value FROM json_each(?1))`,
    ).all(JSON.stringify(userIds)) as Array<{ user_id: string; blocked_id: string }>;
    return rows.map((r) => ({ blockerId: r.user_id, blockedId: r.blocked_id }));
  }

  async deletedAmong(userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const rows = this.sql.q(`SELECT id FROM users WHERE id IN (SELECT value FROM json_each(?1)) AND deleted_at > 0`).all(JSON.stringify(userIds)) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  async deleteAccount(userId: string, nowMs: number): Promise<{ sessionIds: string[]; conversationIds: string[] }> {
    return this.sql.tx(() => {
      const user = this.sql.q(`SELECT deleted_at FROM users WHERE id = ?1`).get(userId) as { deleted_at: number } | undefined;
      if (!user) throw ChatError.notFound("no such user");
      if (user.deleted_at === 0) this.sql.q(`UPDATE users SET deleted_at = ?2, password_hash = '' WHERE id = ?1`).run(userId, nowMs);
      this.sql.q(`UPDATE sessions SET ended_at = ?2, end_reason = 'account_deleted' WHERE user_id = ?1 AND ended_at = 0`).run(userId, nowMs);
      this.sql.q(`DELETE FROM blocks WHERE user_id = ?1 OR blocked_id = ?1`).run(userId);
      this.sql.q(`DELETE FROM privacy_settings WHERE user_id = ?1`).run(userId);
      const sessions = this.sql.q(`SELECT id FROM sessions WHERE user_id = ?1`).all(userId) as Array<{ id: string }>;
      const conversations = this.sql.q(`SELECT conversation_id FROM members WHERE user_id = ?1`).all(userId) as Array<{ conversation_id: string }>;
      return { sessionIds: sessions.map((r) => r.id), conversationIds: conversations.map((r) => r.conversation_id) };
    });
  }
}
