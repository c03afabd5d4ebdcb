import type { RotateOutcome, Session } from "../../gen/chat/internal/v1/store.js";

export type { Session };

/** What RotateSession is asked: swap the refresh token of `sessionId` if `presentedHash` is its current one. */
export interface RotateRequest {
  sessionId: string;
  presentedHash: Uint8Array;
  nextHash: Uint8Array;
  nowMs: number;
  nextExpiresAtMs: number;
}

/**
 * The sessions of logged-in devices (the directory part of the store). A session
 * keeps the SHA-256 of its current refresh token only: the token itself is never
 * stored, so a copy of the database cannot be used to log in. Policy (token
 * formats, lifetimes, what a reuse means for the caller) is the accounts
 * service's; this interface only keeps and compares.
 */
export interface SessionStore {
  /**
   * Starts a session. With `maxLive` > 0 the user keeps at most that many live sessions: in the
   * same transaction, the least recently used others (by last refresh, then creation) are ended
   * (end_reason 'evicted'). Returns their ids.
   */
  createSession(session: Session, refreshHash: Uint8Array, maxLive?: number): Promise<string[]>;
  /**
   * In one transaction: ROTATED (hash swapped, expiry moved, last use set) when the
   * presented hash is the current one of a live, unexpired session; REUSED when it is
   * not (the session is ended on the spot: someone holds an old refresh token);
   * ENDED, EXPIRED or UNKNOWN otherwise. Two concurrent rotations of one token: one
   * wins, the other sees REUSED.
   */
  rotateSession(req: RotateRequest): Promise<{ outcome: RotateOutcome; session?: Session }>;
  /** Ends the user's session; false if it is not the user's, unknown or already ended. */
  endSession(userId: string, sessionId: string, nowMs: number): Promise<boolean>;
  /** Sets the password hash and ends every other live session of the user, atomically; returns the ended ids. */
  setPassword(userId: string, passwordHash: string, keepSessionId: string, nowMs: number): Promise<string[]>;
  /** For each id, in order: is the session live (not ended, refresh token not expired) at `nowMs`? */
  checkSessions(sessionIds: string[], nowMs: number): Promise<boolean[]>;
}
