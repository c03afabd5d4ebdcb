import { randomUUID } from "node:crypto";
import { AccountServiceService } from "../../gen/chat/internal/v1/chat.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { HashQueue } from "../auth/hash-queue.js";
import { hashPassword, verifyPassword } from "../auth/passwords.js";
import type { TokenIssuer } from "../auth/tokens.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import { validatePassword, validateUsername } from "../validation/validate.js";

// Verifying against this when the user does not exist keeps login time the same
// for unknown users and wrong passwords (no username probing by timing).
let dummyHash: Promise<string> | undefined;

/**
 * Accounts: sign-up and log-in over the store's users table; tokens signed here only.
 * Every password hash waits its turn in `hashes`, so a burst of either cannot starve the other.
 */
export function accountService(store: MessageStoreServiceClient, issuer: TokenIssuer, hashes = new HashQueue()): AsyncService<typeof AccountServiceService> {
  const issue = async (id: string, username: string) => {
    const { token, expiresAtMs } = await issuer.issue(id, username);
    return { userId: id, username, token, expiresAtMs };
  };
  /**
   * The account exists: a resend of this very signup (its reply was lost, or said "retry" after
   * a deadline while the account was being committed) carries the same password and gets the
   * same account with a fresh token; anyone else gets ALREADY_EXISTS. One hash either way.
   */
  const existing = async (username: string, password: string, passwordHash: string, id: string) => {
    if (!(await hashes.run("signup", () => verifyPassword(password, passwordHash)))) {
      throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_EXISTS, `username ${username} is taken`);
    }
    return issue(id, username);
  };
  return {
    signup: async (req) => {
      validateUsername(req.username);
      validatePassword(req.password);
      const { user } = await call(store, store.getUserByName, { username: req.username });
      if (user) return existing(user.username, req.password, user.passwordHash, user.id);
      const id = randomUUID();
      const passwordHash = await hashes.run("signup", () => hashPassword(req.password));
      try {
        await call(store, store.createUser, { user: { id, username: req.username, passwordHash, createdAtMs: Date.now() } });
      } catch (err) {
        // Two copies of one signup raced (a resend while the first was still hashing): the winner's account.
        if (!(err instanceof ChatError) || err.code !== ErrorCode.ERROR_CODE_ALREADY_EXISTS) throw err;
        const { user: winner } = await call(store, store.getUserByName, { username: req.username });
        if (!winner) throw err;
        return existing(winner.username, req.password, winner.passwordHash, winner.id);
      }
      return issue(id, req.username);
    },
    login: async (req) => {
      const { user } = await call(store, store.getUserByName, { username: req.username });
      dummyHash ??= hashPassword("not-a-real-password");
      const stored = user?.passwordHash ?? (await dummyHash);
      const ok = await hashes.run("login", () => verifyPassword(req.password, stored));
      if (!user || !ok) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "wrong username or password");
      return issue(user.id, user.username);
    },
  };
}
