import { randomUUID } from "node:crypto";
import { AccountServiceService } from "../../gen/chat/internal/v1/chat.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { HashQueue } from "../auth/hash-queue.js";
import { hashPassword, verifyPassword } from "../auth/passwords.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import { validateDeviceId, validatePassword, validateUsername } from "../validation/validate.js";
import type { AccountDeletion } from "./account-deletion.js";
import type { Sessions } from "./sessions.js";

// Verifying against this when the user does not exist keeps login time the same
// for unknown users and wrong passwords (no username probing by timing).
let dummyHash: Promise<string> | undefined;

/** A log-in may name its device (kept with the session); none is recorded as "". */
function deviceOf(deviceId: string): string {
  if (deviceId) validateDeviceId(deviceId);
  return deviceId;
}

/**
 * Accounts: sign-up, log-in, password changes and deletion over the store's users table. Every
 * success starts a session (sessions.ts), whose tokens are signed here only; password
 * hashes never leave this service and the store. Every password hash waits its turn in
 * `hashes`, so a burst of one kind cannot starve the other.
 */
export function accountService(store: MessageStoreServiceClient, sessions: Sessions, deletion: AccountDeletion, hashes = new HashQueue()): AsyncService<typeof AccountServiceService> {
  const start = (id: string, username: string, deviceId: string) => sessions.start({ id, username }, deviceId);
  /**
   * The account exists: a resend of this very signup (its reply was lost, or said "retry" after
   * a deadline while the account was being committed) carries the same password and gets the
   * same account with a fresh session; anyone else gets ALREADY_EXISTS. One hash either way.
   */
  const existing = async (username: string, password: string, passwordHash: string, id: string, deviceId: string) => {
    if (!(await hashes.run("signup", () => verifyPassword(password, passwordHash)))) {
      throw new ChatError(ErrorCode.ERROR_CODE_ALREADY_EXISTS, `username ${username} is taken`);
    }
    return start(id, username, deviceId);
  };
  /** The password's owner, or UNAUTHENTICATED; the same time whether the user exists or not. */
  const verified = async (username: string, password: string, knownDevice = false) => {
    const { user } = await call(store, store.getUserByName, { username });
    dummyHash ??= hashPassword("not-a-real-password");
    // A deleted account has no password: verified against the dummy, it takes as long as a wrong one.
    const stored = user && !user.deletedAtMs ? user.passwordHash : await dummyHash;
    const ok = await hashes.run(knownDevice ? "known" : "login", () => verifyPassword(password, stored));
    return user && ok ? user : null;
  };
  return {
    signup: async (req) => {
      const deviceId = deviceOf(req.deviceId);
      validateUsername(req.username);
      validatePassword(req.password);
      const { user } = await call(store, store.getUserByName, { username: req.username });
      if (user) return existing(user.username, req.password, user.passwordHash, user.id, deviceId);
      const id = randomUUID();
      const passwordHash = await hashes.run("signup", () => hashPassword(req.password));
      try {
        await call(store, store.createUser, { user: { id, username: req.username, passwordHash, createdAtMs: Date.now() } });
      } catch (err) {
        // Two copies of one signup raced (a resend while the first was still hashing): the winner's account.
        if (!(err instanceof ChatError) || err.code !== ErrorCode.ERROR_CODE_ALREADY_EXISTS) throw err;
        const { user: winner } = await call(store, store.getUserByName, { username: req.username });
        if (!winner) throw err;
        return existing(winner.username, req.password, winner.passwordHash, winner.id, deviceId);
      }
      return start(id, req.username, deviceId);
    },
    login: async (req) => {
      const deviceId = deviceOf(req.deviceId);
      const user = await verified(req.username, req.password, req.knownDevice);
      if (!user) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "wrong username or password");
      return start(user.id, user.username, deviceId);
    },
    refresh: async (req) => ({ tokens: await sessions.refresh(req.refreshToken) }),
    logout: async (req) => {
      await sessions.end(req.userId, req.sessionId);
      return {};
    },
    changePassword: async (req) => {
      validatePassword(req.newPassword);
      // The access token may outlive its session by up to its lifetime: the session must be live now.
      await sessions.requireLive(req.sessionId);
      const user = await verified(req.username, req.oldPassword);
      // Not UNAUTHENTICATED: the caller's session is fine, only the old password is wrong.
      if (!user || user.id !== req.userId) throw ChatError.denied("the current password is wrong");
      const passwordHash = await hashes.run("signup", () => hashPassword(req.newPassword));
      const { endedSessionIds } = await call(store, store.setPassword, { userId: req.userId, passwordHash, keepSessionId: req.sessionId, nowMs: Date.now() });
      return { endedSessionIds };
    },
    deleteAccount: async (req) => {
      // As for a password change: a live session, and the password (a wrong one changes nothing).
      await sessions.requireLive(req.sessionId);
      const user = await verified(req.username, req.password);
      if (!user || user.id !== req.userId) throw ChatError.denied("the password is wrong");
      return deletion.delete(req.userId, req.erase);
    },
  };
}
