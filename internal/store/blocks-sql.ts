import { ChatError } from "../errors/chat-error.js";
import type { BlockedUser, BlockPair, BlockStore } from "./blocks.js";
import { num, type SqlClient } from "./sql.js";

/** Block lists and account deletion in the directory's SQL database (migration 7): PGlite, PostgreSQL, the Cassandra store's directory. */
export class SqlBlockStore implements BlockStore {
  constructor(private readonly db: SqlClient) {}

  async setBlocked(userId: string, blockedId: string, blocked: boolean, atMs: number): Promise<{ changed: boolean; sharedConversationIds: string[] }> {
    const r = blocked
      ? await this.db.query(`INSERT INTO blocks (user_id, blocked_id, blocked_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [userId, blockedId, atMs])
      : await this.db.query(`DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2`, [userId, blockedId]);
    const { rows } = await this.db.query<{ conversation_id: string }>(
      `SELECT a.conversation_id FROM members a JOIN members b ON b.conversation_id = a.conversation_id WHERE a.user_id = $1 AND b.user_id = $2`,
      [userId, blockedId],
    );
    return { changed: r.rowCount > 0, sharedConversationIds: rows.map((x) => x.conversation_id) };
  }

  async blocks(userId: string): Promise<{ blocked: BlockedUser[]; blockedBy: string[] }> {
    const mine = await this.db.query<{ blocked_id: string; username: string; blocked_at: unknown }>(
      `SELECT b.blocked_id, u.username, b.blocked_at FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.user_id = $1 ORDER BY b.blocked_at DESC, b.blocked_id`,
      [userId],
    );
    const theirs = await this.db.query<{ user_id: string }>(`SELECT user_id FROM blocks WHERE blocked_id = $1`, [userId]);
    return {
      blocked: mine.rows.map((r) => ({ userId: r.blocked_id, username: r.username, blockedAtMs: num(r.blocked_at) })),
      blockedBy: theirs.rows.map((r) => r.user_id),
    };
  }

  async blockPairs(userIds: string[]): Promise<BlockPair[]> {
    if (userIds.length < 2) return [];
    const { rows } = await this.db.query<{ user_id: string; blocked_id: string }>(
      `SELECT user_id, blocked_id FROM blocks WHERE user_id = ANY($1::text[]) AND blocked_id = ANY($1::text[])`,
      [userIds],
    );
    return rows.map((r) => ({ blockerId: r.user_id, blockedId: r.blocked_id }));
  }

  async deletedAmong(userIds: string[]): Promise<string[]> {
    if (userIds.length === 0) return [];
    const { rows } = await this.db.query<{ id: string }>(`SELECT id FROM users WHERE id = ANY($1::text[]) AND deleted_at > 0`, [userIds]);
    return rows.map((r) => r.id);
  }

  async deleteAccount(userId: string, nowMs: number): Promise<{ sessionIds: string[]; conversationIds: string[] }> {
    return this.db.transaction(async (tx) => {
      const user = await tx.query<{ deleted_at: unknown }>(`SELECT deleted_at FROM users WHERE id = $1 FOR UPDATE`, [userId]);
      if (!user.rows[0]) throw ChatError.notFound("no such user");
      if (num(user.rows[0].deleted_at) === 0) await tx.query(`UPDATE users SET deleted_at = $2, password_hash = '' WHERE id = $1`, [userId, nowMs]);
      await tx.query(`UPDATE sessions SET ended_at = $2, end_reason = 'account_deleted' WHERE user_id = $1 AND ended_at = 0`, [userId, nowMs]);
      await tx.query(`DELETE FROM blocks WHERE user_id = $1 OR blocked_id = $1`, [userId]);
      await tx.query(`DELETE FROM privacy_settings WHERE user_id = $1`, [userId]);
      const sessions = await tx.query<{ id: string }>(`SELECT id FROM sessions WHERE user_id = $1`, [userId]);
      const conversations = await tx.query<{ conversation_id: string }>(`SELECT conversation_id FROM members WHERE user_id = $1`, [userId]);
      return { sessionIds: sessions.rows.map((r) => r.id), conversationIds: conversations.rows.map((r) => r.conversation_id) };
    });
  }
}
