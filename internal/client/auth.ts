import { ClientError, ErrorCode, postJson, sessionTokensOf, type SessionTokens, type TokenSource } from "./client.js";

/** POST /v1/refresh: new tokens for the current refresh token (which is then spent). */
export async function refreshTokens(baseUrl: string, refreshToken: string): Promise<SessionTokens> {
  return sessionTokensOf(await postJson(baseUrl, "/v1/refresh", { refresh_token: refreshToken }));
}

export interface AuthSessionOptions {
  /** Called with every new pair of tokens: keep them (the refresh token is spent at each refresh). */
  onTokens?: (tokens: SessionTokens) => void;
  /**
   * Runs a refresh alone among everyone sharing the stored tokens (browser tabs:
   * navigator.locks). Inside it, `reload` reads the stored tokens again: if another
   * holder refreshed meanwhile, its tokens are used instead of spending ours a second
   * time, which the server would take for a stolen copy and end the session.
   */
  exclusive?: <T>(fn: () => Promise<T>) => Promise<T>;
  reload?: () => SessionTokens | null;
}

/**
 * One device's session: hands out access tokens that are fresh (refreshed when a
 * fifth of their life is left, or when the server says expired), one refresh at a time
 * however many callers ask, and logs out or changes the password with a fresh token.
 * A refresh the server refuses (SESSION_ENDED, UNAUTHENTICATED) means: log in again.
 */
export class AuthSession implements TokenSource {
  private refreshing: Promise<SessionTokens> | undefined;
  /** Local time at which the access token is due for a refresh (computed on receipt: no clock sync needed). */
  private refreshAt = 0;

  constructor(readonly baseUrl: string, private current: SessionTokens, private readonly opts: AuthSessionOptions = {}) {
    this.schedule(current);
  }

  get tokens(): SessionTokens {
    return this.current;
  }

  async accessToken(force = false): Promise<string> {
    if (!force && Date.now() < this.refreshAt) return this.current.token;
    return (await this.refresh()).token;
  }

  /** New tokens now (one request for concurrent callers). */
  refresh(): Promise<SessionTokens> {
    this.refreshing ??= this.exchange().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  /** Ends this session on the server (its WebSockets close with SESSION_ENDED). */
  async logout(): Promise<void> {
    await this.withFreshToken((token) => postJson(this.baseUrl, "/v1/logout", {}, token));
  }

  /** Changes the password; every other session of the account ends, this one stays. Returns how many ended. */
  async changePassword(oldPassword: string, newPassword: string): Promise<number> {
    const r = await this.withFreshToken((token) => postJson(this.baseUrl, "/v1/password", { old_password: oldPassword, new_password: newPassword }, token));
    return Number(r.ended_sessions ?? 0);
  }

  private async withFreshToken<T>(fn: (token: string) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.accessToken());
    } catch (err) {
      if (!(err instanceof ClientError) || err.code !== ErrorCode.ERROR_CODE_TOKEN_EXPIRED) throw err;
      return fn(await this.accessToken(true));
    }
  }

  private async exchange(): Promise<SessionTokens> {
    const run = async () => {
      const stored = this.opts.reload?.();
      if (stored && stored.sessionId === this.current.sessionId && stored.refreshToken !== this.current.refreshToken) {
        // Someone sharing these tokens refreshed already: theirs are the current ones.
        this.set(stored, false);
        if (Date.now() < this.refreshAt) return stored;
      }
      const next = await refreshTokens(this.baseUrl, this.current.refreshToken);
      this.set(next, true);
      return next;
    };
    return this.opts.exclusive ? this.opts.exclusive(run) : run();
  }

  private set(tokens: SessionTokens, announce: boolean): void {
    this.current = tokens;
    this.schedule(tokens);
    if (announce) this.opts.onTokens?.(tokens);
  }

  private schedule(tokens: SessionTokens): void {
    const now = Date.now();
    this.refreshAt = now + Math.max(0, tokens.expiresAtMs - now) * 0.8;
  }
}
