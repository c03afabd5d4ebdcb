import fs from "node:fs";
import { AuthSession } from "../client/auth.js";
import type { SessionTokens } from "../client/client.js";

/** A lock older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A CLI user's session tokens, in a file of their own (mode 0600) beside the profile.
 * Several chatctl processes of one user run at once (a `tail` and a `send`): a refresh
 * spends the refresh token, so refreshes take a lock (a directory made beside the
 * file) and read the file again inside it; a process that finds fresher tokens there
 * uses them instead of presenting a spent token, which would end the session. Nothing
 * else writes this file, so a profile save can never put back a spent token.
 */
export class SessionFile {
  constructor(readonly file: string) {}

  read(): SessionTokens | null {
    try {
      const t = JSON.parse(fs.readFileSync(this.file, "utf8")) as SessionTokens;
      return t.refreshToken && t.sessionId ? t : null;
    } catch {
      return null;
    }
  }

  write(tokens: SessionTokens): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(tokens, null, 2), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  remove(): void {
    fs.rmSync(this.file, { force: true });
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const lock = `${this.file}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        fs.mkdirSync(lock);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
        if (age > STALE_LOCK_MS) fs.rmSync(lock, { recursive: true, force: true });
        else if (Date.now() > deadline) throw new Error(`${lock} is held by another chatctl; remove it if none is running`);
        else await sleep(25);
      }
    }
    try {
      return await fn();
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }

  /** An AuthSession over these tokens, saving every new pair here; null when not logged in. */
  session(server: string): AuthSession | null {
    const tokens = this.read();
    if (!tokens) return null;
    return new AuthSession(server, tokens, { onTokens: (t) => this.write(t), exclusive: (fn) => this.exclusive(fn), reload: () => this.read() });
  }
}
