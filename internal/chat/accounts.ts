import { randomUUID } from "node:crypto";
import { AccountServiceService } from "../../gen/chat/internal/v1/chat.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { hashPassword, verifyPassword } from "../auth/passwords.js";
import type { TokenIssuer } from "../auth/tokens.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import { validatePassword, validateUsername } from "../validation/validate.js";

// Verifying against this when the user does not exist keeps login time the same
// for unknown users and wrong passwords (no username probing by timing).
let dummyHash: Promise<string> | undefined;

/** Accounts: sign-up and log-in over the store's users table; tokens signed here only. */
export function accountService(store: MessageStoreServiceClient, issuer: TokenIssuer): AsyncService<typeof AccountServiceService> {
  return {
    signup: async (req) => {
      validateUsername(req.username);
      validatePassword(req.password);
      const id = randomUUID();
      await call(store, store.createUser, { user: { id, username: req.username, passwordHash: await hashPassword(req.password), createdAtMs: Date.now() } });
      const { token, expiresAtMs } = await issuer.issue(id, req.username);
      return { userId: id, username: req.username, token, expiresAtMs };
    },
    login: async (req) => {
      const { user } = await call(store, store.getUserByName, { username: req.username });
      dummyHash ??= hashPassword("not-a-real-password");
      const ok = await verifyPassword(req.password, user?.passwordHash ?? (await dummyHash));
      if (!user || !ok) throw new ChatError(ErrorCode.ERROR_CODE_UNAUTHENTICATED, "wrong username or password");
      const { token, expiresAtMs } = await issuer.issue(user.id, user.username);
      return { userId: user.id, username: user.username, token, expiresAtMs };
    },
  };
}
