import { randomUUID } from "node:crypto";
import type { SessionTokens } from "../../gen/chat/internal/v1/chat.js";
import { RotateOutcome, type MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { newRefreshToken, parseRefreshToken } from "../auth/refresh-tokens.js";
import type { TokenIssuer } from "../auth/tokens.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";

export interface SessionLifetimes {
  /** REFRESH_TOKEN_TTL_S: a refresh token's life; each refresh starts a new one. Default 30 days. */
  refreshTtlSeconds: number;
  /**
   * MAX_SESSIONS_PER_USER: live sessions (logged-in devices) per account. A log-in past it
   * ends the least recently used other session rather than being refused, so whoever knows
   * the password can always log in (docs/security.md, "Quotas"). Default 20; 0 = no cap.
   */
  maxSessionsPerUser?: number;
}

const ended = (message: string) => new ChatError(ErrorCode.ERROR_CODE_SESSION_ENDED, message);

/**
 * Sessions as the accounts service sees them: a log-in starts one (an access token
 * naming it, and its refresh token), a refresh rotates its refresh token, and a
 * refresh token presented after it was rotated ends it (reuse detection: either the
 * owner or a thief holds a copy, and the store cannot tell which). Kept apart from
 * passwords (accounts.ts) so the token rules read in one place.
 */
export class Sessions {
  constructor(private readonly store: MessageStoreServiceClient, private readonly issuer: TokenIssuer, private readonly lifetimes: SessionLifetimes) {}

  /** A new session; `evictedSessionIds` are the user's sessions it ended to stay within MAX_SESSIONS_PER_USER. */
  async start(user: { id: string; username: string }, deviceId: string): Promise<{ tokens: SessionTokens; evictedSessionIds: string[] }> {
    const id = randomUUID();
    const now = Date.now();
    const refresh = newRefreshToken(id);
    const expiresAtMs = now + this.lifetimes.refreshTtlSeconds * 1000;
    const session = { id, userId: user.id, username: user.username, deviceId, createdAtMs: now, lastUsedAtMs: now, expiresAtMs, endedAtMs: 0 };
    const { evictedSessionIds } = await call(this.store, this.store.createSession, { session, refreshHash: refresh.hash, maxLive: this.lifetimes.maxSessionsPerUser ?? 0 });
    return { tokens: await this.tokens(user, id, refresh.token, expiresAtMs), evictedSessionIds };
  }

  async refresh(presented: string): Promise<SessionTokens> {
    const parsed = parseRefreshToken(presented);
    if (!parsed) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "invalid refresh token");
    const next = newRefreshToken(parsed.sessionId);
    const now = Date.now();
    const nextExpiresAtMs = now + this.lifetimes.refreshTtlSeconds * 1000;
    const { outcome, session } = await call(this.store, this.store.rotateSession, { sessionId: parsed.sessionId, presentedHash: parsed.hash, nextHash: next.hash, nowMs: now, nextExpiresAtMs });
    switch (outcome) {
      case RotateOutcome.ROTATE_OUTCOME_ROTATED:
        return this.tokens({ id: session!.userId, username: session!.username }, parsed.sessionId, next.token, nextExpiresAtMs);
      case RotateOutcome.ROTATE_OUTCOME_REUSED:
        throw ended("refresh token already used: the session is ended; log in again");
      case RotateOutcome.ROTATE_OUTCOME_EXPIRED:
        throw ended("refresh token expired; log in again");
      case RotateOutcome.ROTATE_OUTCOME_ENDED:
        throw ended("the session has ended; log in again");
      case RotateOutcome.ROTATE_OUTCOME_UNKNOWN:
      case RotateOutcome.ROTATE_OUTCOME_UNSPECIFIED:
      case RotateOutcome.UNRECOGNIZED:
        throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "invalid refresh token");
    }
  }

  async end(userId: string, sessionId: string): Promise<void> {
    // Idempotent: a logout resent after a lost reply, or of an ended session, succeeds.
    await call(this.store, this.store.endSession, { userId, sessionId, nowMs: Date.now() });
  }

  /** Refuses a session that has ended: its access token may still be within its lifetime. */
  async requireLive(sessionId: string): Promise<void> {
    const { live } = await call(this.store, this.store.checkSessions, { sessionIds: [sessionId] });
    if (!live[0]) throw ended("the session has ended; log in again");
  }

  private async tokens(user: { id: string; username: string }, sessionId: string, refreshToken: string, refreshExpiresAtMs: number): Promise<SessionTokens> {
    const access = await this.issuer.issue(user.id, user.username, sessionId);
    return { userId: user.id, username: user.username, accessToken: access.token, accessExpiresAtMs: access.expiresAtMs, refreshToken, refreshExpiresAtMs, sessionId };
  }
}
