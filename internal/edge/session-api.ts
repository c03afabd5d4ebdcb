import type http from "node:http";
import type { AccountServiceClient, SessionTokens } from "../../gen/chat/internal/v1/chat.js";
import { parseRefreshToken } from "../auth/refresh-tokens.js";
import type { TokenClaims, TokenVerifier } from "../auth/tokens.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import type { DeviceCookies } from "./device-cookie.js";
import { sourceAddress } from "./http-guard.js";
import { field, readJson } from "./http-body.js";
import type { LoginGuard } from "./login-guard.js";

/** What the API answers with for a new session or a refresh (snake_case like the rest of the HTTP API). */
export function tokensBody(t: SessionTokens): Record<string, unknown> {
  return {
    user_id: t.userId,
    username: t.username,
    // The access token keeps the name and place of the single token of before.
    token: t.accessToken,
    expires_at_ms: t.accessExpiresAtMs,
    refresh_token: t.refreshToken,
    refresh_expires_at_ms: t.refreshExpiresAtMs,
    session_id: t.sessionId,
  };
}

/**
 * The session endpoints of the edge's HTTP API (docs/security.md, "Sessions"):
 *   POST /v1/refresh   {refresh_token}                  -> new tokens
 *   POST /v1/logout    Authorization: Bearer <access>    -> ends that session
 *   POST /v1/password  Authorization: Bearer <access>, {old_password, new_password}
 *                                                        -> ends every other session
 * Each session that ends is passed to `ended`, which closes its WebSockets on this
 * edge at once (other edges find out at their next sweep).
 */
export class SessionApi {
  constructor(
    private readonly accounts: AccountServiceClient,
    private readonly tokens: TokenVerifier,
    private readonly guard: LoginGuard,
    private readonly cookies: DeviceCookies,
    private readonly ended: (sessionIds: string[]) => void,
  ) {}

  async refresh(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const refreshToken = field(await readJson(req), "refresh_token");
    // What cannot be a refresh token costs no call to chat and no store transaction.
    if (!parseRefreshToken(refreshToken)) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "invalid refresh token");
    try {
      return tokensBody((await call(this.accounts, this.accounts.refresh, { refreshToken })).tokens!);
    } catch (err) {
      // Reused, expired or ended: whatever of the session is still connected here goes now.
      const sid = parseRefreshToken(refreshToken)?.sessionId;
      if (sid && err instanceof ChatError && err.code === ErrorCode.ERROR_CODE_SESSION_ENDED) this.ended([sid]);
      throw err;
    }
  }

  async logout(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const claims = await this.bearer(req);
    req.resume();
    await call(this.accounts, this.accounts.logout, { userId: claims.userId, sessionId: claims.sessionId });
    this.ended([claims.sessionId]);
    return {};
  }

  async changePassword(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    const claims = await this.bearer(req);
    const body = await readJson(req);
    // Guessing the current password with a stolen access token is held to the log-in limits.
    const knownDevice = this.cookies.knows(req.headers.cookie, claims.username);
    await this.guard.beforeLogin(sourceAddress(req.socket.remoteAddress), claims.username, knownDevice);
    const { endedSessionIds } = await call(this.accounts, this.accounts.changePassword, {
      userId: claims.userId,
      username: claims.username,
      sessionId: claims.sessionId,
      oldPassword: field(body, "old_password"),
      newPassword: field(body, "new_password"),
    }, 10_000);
    await this.guard.loggedIn(claims.username, knownDevice);
    this.ended(endedSessionIds);
    return { ended_sessions: endedSessionIds.length };
  }

  /** The caller's verified access token (`Authorization: Bearer ...`). */
  private async bearer(req: http.IncomingMessage): Promise<TokenClaims> {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    if (!m) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "an access token is required (Authorization: Bearer ...)");
    return this.tokens.verify(m[1]!);
  }
}
