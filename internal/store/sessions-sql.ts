import { RotateOutcome, type Session } from "../../gen/chat/internal/v1/store.js";
import { ChatError } from "../errors/chat-error.js";
import { num, type SqlClient } from "./sql.js";
import type { RotateRequest, SessionStore } from "./sessions.js";

interface SessionRow {
  id: string;
  user_id: string;
  username: string;
  device_id: string;
  created_at: unknown;
  last_used_at: unknown;
  expires_at: unknown;
  ended_at: unknown;
}

const COLUMNS = "id, user_id, username, device_id, created_at, last_used_at, expires_at, ended_at";

function toSession(r: SessionRow): Session {
  return {
    id: r.id,
    userId: r.user_id,
    username: r.username,
    deviceId: r.device_id,
    createdAtMs: num(r.created_at),
    lastUsedAtMs: num(r.last_used_at),
    expiresAtMs: num(r.expires_at),
    endedAtMs: num(r.ended_at),
  };
}

/**
 * Sessions in the directory's SQL database (the `sessions` table of migration 2):
 * PGlite on the embedded profile, PostgreSQL on the production one (the Cassandra
 * store keeps its directory there too). Row locks serialise rotations of one session.
 */
export class SqlSessionStore implements SessionStore {
  constructor(private readonly db: SqlClient) {}

  createSession(s: Session, refreshHash: Uint8Array, maxLive = 0): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      // Log-ins of one user one at a time, so two at once cannot both keep the cap's last place.
      if (maxLive > 0) await tx.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [s.userId]);
      await tx.query(
        `INSERT INTO sessions (${COLUMNS}, refresh_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)`,
        [s.id, s.userId, s.username, s.deviceId, s.createdAtMs, s.lastUsedAtMs, s.expiresAtMs, Buffer.from(refreshHash)],
      );
      if (maxLive <= 0) return [];
      const { rows } = await tx.query<{ id: string }>(
        `UPDATE sessions SET ended_at = $3, end_reason = 'evicted' WHERE id IN (
           SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 AND ended_at = 0 AND expires_at > $3
            ORDER BY last_used_at DESC, created_at DESC, id OFFSET $4) RETURNING id`,
        [s.userId, s.id, s.createdAtMs, maxLive - 1],
      );
      return rows.map((r) => r.id);
    });
  }

  rotateSession(req: RotateRequest): Promise<{ outcome: RotateOutcome; session?: Session }> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<SessionRow & { current: boolean }>(
        `SELECT ${COLUMNS}, refresh_hash = $2 AS current FROM sessions WHERE id = $1 FOR UPDATE`,
        [req.sessionId, Buffer.from(req.presentedHash)],
      );
      const row = rows[0];
      if (!row) return { outcome: RotateOutcome.ROTATE_OUTCOME_UNKNOWN };
      const session = toSession(row);
      if (session.endedAtMs > 0) return { outcome: RotateOutcome.ROTATE_OUTCOME_ENDED, session };
      if (!row.current) {
        // Not the current token: an old one, presented by whoever did not rotate it (the thief or the owner).
        await tx.query(`UPDATE sessions SET ended_at = $2, end_reason = 'reused' WHERE id = $1`, [req.sessionId, req.nowMs]);
        return { outcome: RotateOutcome.ROTATE_OUTCOME_REUSED, session: { ...session, endedAtMs: req.nowMs } };
      }
      if (session.expiresAtMs <= req.nowMs) return { outcome: RotateOutcome.ROTATE_OUTCOME_EXPIRED, session };
      await tx.query(
        `UPDATE sessions SET refresh_hash = $2, last_used_at = $3, expires_at = $4 WHERE id = $1`,
        [req.sessionId, Buffer.from(req.nextHash), req.nowMs, req.nextExpiresAtMs],
      );
      return { outcome: RotateOutcome.ROTATE_OUTCOME_ROTATED, session: { ...session, lastUsedAtMs: req.nowMs, expiresAtMs: req.nextExpiresAtMs } };
    });
  }

  async endSession(userId: string, sessionId: string, nowMs: number): Promise<boolean> {
    const r = await this.db.query(
      `UPDATE sessions SET ended_at = $3, end_reason = 'logout' WHERE id = $1 AND user_id = $2 AND ended_at = 0`,
      [sessionId, userId, nowMs],
    );
    return r.rowCount > 0;
  }

  setPassword(userId: string, passwordHash: string, keepSessionId: string, nowMs: number): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const u = await tx.query(`UPDATE users SET password_hash = $2 WHERE id = $1`, [userId, passwordHash]);
      if (u.rowCount === 0) throw ChatError.notFound("no such user");
      const { rows } = await tx.query<{ id: string }>(
        `UPDATE sessions SET ended_at = $3, end_reason = 'password' WHERE user_id = $1 AND id <> $2 AND ended_at = 0 RETURNING id`,
        [userId, keepSessionId, nowMs],
      );
      return rows.map((r) => r.id);
    });
  }

  async checkSessions(sessionIds: string[], nowMs: number): Promise<boolean[]> {
    if (sessionIds.length === 0) return [];
    const { rows } = await this.db.query<{ id: string }>(
      `SELECT id FROM sessions WHERE id = ANY($1::text[]) AND ended_at = 0 AND expires_at > $2`,
      [sessionIds, nowMs],
    );
    const live = new Set(rows.map((r) => r.id));
    return sessionIds.map((id) => live.has(id));
  }
}
