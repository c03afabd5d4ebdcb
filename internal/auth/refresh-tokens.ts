import { createHash, randomBytes } from "node:crypto";

/**
 * Refresh tokens are opaque to clients: `<session id>.<32 random bytes, base64url>`.
 * The session id lets the store find the session in one lookup, and so tell an old
 * token of a live session (a reuse, which ends the session) from a token it never
 * issued. The store keeps only the SHA-256 of the whole token: 256 random bits need no
 * slow hash, and a copy of the database holds nothing that logs in.
 */
export interface RefreshToken {
  token: string;
  sessionId: string;
  hash: Buffer;
}

const SESSION_ID = /^[0-9a-f-]{36}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

export function hashRefreshToken(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

export function newRefreshToken(sessionId: string): RefreshToken {
  const token = `${sessionId}.${randomBytes(32).toString("base64url")}`;
  return { token, sessionId, hash: hashRefreshToken(token) };
}

/** The session and hash of a presented token; null when it cannot be one of ours. */
export function parseRefreshToken(token: string): RefreshToken | null {
  const [sessionId = "", secret = "", ...rest] = token.split(".");
  if (rest.length > 0 || !SESSION_ID.test(sessionId) || !SECRET.test(secret)) return null;
  return { token, sessionId, hash: hashRefreshToken(token) };
}
