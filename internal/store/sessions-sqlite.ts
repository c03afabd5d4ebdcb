import { RotateOutcome, type Session } from "../../gen/chat/internal/v1/store.js";
import { ChatError } from "../errors/chat-error.js";
import type { RotateRequest, SessionStore } from "./sessions.js";
import type { SqliteDb } from "./sqlite-db.js";

interface SessionRow {
  id: string;
  user_id: string;
  username: string;
  device_id: string;
  created_at: number;
  last_used_at: number;
  expires_at: number;
  ended_at: number;
  refresh_hash: Uint8Array;
}

function toSession(r: SessionRow): Session {
  return { id: r.id, userId: r.user_id, username: r.username, deviceId: r.device_id, createdAtMs: r.created_at, lastUsedAtMs: r.last_used_at, expiresAtMs: r.expires_at, endedAtMs: r.ended_at };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/**
 * Sessions in the embedded SQLite store (the `sessions` table of schema-sqlite.ts
 * migration 2): the same rules as sessions-sql.ts, each change one synchronous
 * transaction, so two rotations of one token cannot interleave.
 */
export class SqliteSessionStore implements SessionStore {
  constructor(private readonly sql: SqliteDb) {}

  async createSession(s: Session, refreshHash: Uint8Array, maxLive = 0): Promise<string[]> {
    return this.sql.tx(() => {
      this.sql.q(
        `INSERT INTO sessions (id, user_id, username, device_id, created_at, last_used_at, expires_at, ended_at, refresh_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)`,
      ).run(s.id, s.userId, s.username, s.deviceId, s.createdAtMs, s.lastUsedAtMs, s.expiresAtMs, refreshHash);
      if (maxLive <= 0) return [];
      const rows = this.sql.q(
        `UPDATE sessions SET ended_at = ?3, end_reason = 'evicted' WHERE id IN (
           SELECT id FROM sessions WHERE user_id = ?1 AND id <> ?2 AND ended_at = 0 AND expires_at > ?3
            ORDER BY last_used_at DESC, created_at DESC, id LIMIT -1 OFFSET ?4) RETURNING id`,
      ).all(s.userId, s.id, s.createdAtMs, maxLive - 1) as Array<{ id: string }>;
      return rows.map((r) => r.id);
    });
  }

  async rotateSession(req: RotateRequest): Promise<{ outcome: RotateOutcome; session?: Session }> {
    return this.sql.tx(() => {
      const row = this.sql.q(`SELECT * FROM sessions WHERE id = ?1`).get(req.sessionId) as SessionRow | undefined;
      if (!row) return { outcome: RotateOutcome.ROTATE_OUTCOME_UNKNOWN };
      const session = toSession(row);
      if (session.endedAtMs > 0) return { outcome: RotateOutcome.ROTATE_OUTCOME_ENDED, session };
      if (!sameBytes(row.refresh_hash, req.presentedHash)) {
        // Not the current token: an old one, presented by whoever did not rotate it (the thief or the owner).
        this.sql.q(`UPDATE sessions SET ended_at = ?2, end_reason = 'reused' WHERE id = ?1`).run(req.sessionId, req.nowMs);
        return { outcome: RotateOutcome.ROTATE_OUTCOME_REUSED, session: { ...session, endedAtMs: req.nowMs } };
      }
      if (session.expiresAtMs <= req.nowMs) return { outcome: RotateOutcome.ROTATE_OUTCOME_EXPIRED, session };
      this.sql.q(`UPDATE sessions SET refresh_hash = ?2, last_used_at = ?3, expires_at = ?4 WHERE id = ?1`).run(req.sessionId, req.nextHash, req.nowMs, req.nextExpiresAtMs);
      return { outcome: RotateOutcome.ROTATE_OUTCOME_ROTATED, session: { ...session, lastUsedAtMs: req.nowMs, expiresAtMs: req.nextExpiresAtMs } };
    });
  }

  async endSession(userId: string, sessionId: string, nowMs: number): Promise<boolean> {
    const r = this.sql.q(`UPDATE sessions SET ended_at = ?3, end_reason = 'logout' WHERE id = ?1 AND user_id = ?2 AND ended_at = 0`).run(sessionId, userId, nowMs);
    return Number(r.changes) > 0;
  }

  async setPassword(userId: string, passwordHash: string, keepSessionId: string, nowMs: number): Promise<string[]> {
    return this.sql.tx(() => {
      const u = this.sql.q(`UPDATE users SET password_hash = ?2 WHERE id = ?1`).run(userId, passwordHash);
      if (Number(u.changes) === 0) throw ChatError.notFound("no such user");
      const rows = this.sql.q(`UPDATE sessions SET ended_at = ?3, end_reason = 'password' WHERE user_id = ?1 AND id <> ?2 AND ended_at = 0 RETURNING id`).all(userId, keepSessionId, nowMs) as Array<{ id: string }>;
      return rows.map((r) => r.id);
    });
  }

  async checkSessions(sessionIds: string[], nowMs: number): Promise<boolean[]> {
    if (sessionIds.length === 0) return [];
    const rows = this.sql.q(`SELECT id FROM sessions WHERE id IN (SELECT value FROM json_each(?1)) AND ended_at = 0 AND expires_at > ?2`).all(JSON.stringify(sessionIds), nowMs) as Array<{ id: string }>;
    const live = new Set(rows.map((r) => r.id));
    return sessionIds.map((id) => live.has(id));
  }
}
