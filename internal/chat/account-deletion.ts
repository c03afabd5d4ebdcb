import type { NotifierServiceClient } from "../../gen/chat/internal/v1/notifier.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { call } from "../grpc/client.js";
import type { Logger } from "../log/logger.js";
import type { RouteIndex } from "../routes/route-index.js";
import type { EdgeClients } from "./fanout.js";
import type { ChatCore } from "./service.js";

/** What the devices of a deleted account are told as their sockets close. */
const REASON = "the account was deleted";

/**
 * Deleting an account once its password is confirmed (docs/features.md, "Deleting an account").
 * The store marks it deleted and ends every session in one transaction: from then on every token
 * of it is refused at Hello and at /v1/refresh. Then every edge that holds a device of it is told
 * to close those sockets at once (the route index says which), its push tokens go, and its
 * conversations show it as a deleted account. With erasure, its messages are deleted for everyone
 * before the account goes (so a failure leaves an account that can retry) and once more after
 * (whatever another device sent in between).
 */
export class AccountDeletion {
  constructor(
    private readonly deps: {
      store: MessageStoreServiceClient;
      core: ChatCore;
      routes: RouteIndex;
      edges: EdgeClients;
      notifier: NotifierServiceClient;
      log: Logger;
    },
  ) {}

  async delete(userId: string, erase: boolean): Promise<{ endedSessionIds: string[]; erasedMessages: number }> {
    const { store, core } = this.deps;
    let erasedMessages = 0;
    if (erase) {
      const { conversations } = await call(store, store.listConversations, { userId });
      erasedMessages += await core.eraseMessagesOf(userId, conversations.map((c) => c.id));
    }
    const res = await call(store, store.deleteAccount, { userId, nowMs: Date.now() });
    core.accountDeleted(userId, res.conversationIds);
    await this.disconnect(userId, res.sessionIds);
    await call(this.deps.notifier, this.deps.notifier.unregisterToken, { userId, deviceId: "", allDevices: true });
    if (erase) erasedMessages += await core.eraseMessagesOf(userId, res.conversationIds);
    return { endedSessionIds: res.sessionIds, erasedMessages };
  }

  /** Every edge holding a device of the user closes its sockets now (others refuse the tokens at Hello). */
  private async disconnect(userId: string, sessionIds: string[]): Promise<void> {
    const routes = await this.deps.routes.lookup([userId]);
    const edges = [...new Set(routes.map((r) => r.edgeAddress))];
    await Promise.all(edges.map(async (address) => {
      const edge = this.deps.edges.get(address);
      await call(edge, edge.endSessions, { sessionIds, reason: REASON }).catch((err) => {
        // That edge's sweep (SESSION_CHECK_INTERVAL_MS) closes them instead.
        this.deps.log.warn("ending a deleted account's sessions failed", { err, edge: address });
      });
    }));
  }
}
