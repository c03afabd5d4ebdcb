import type { HistoryPage, HistoryRequest, Message } from "../../gen/chat/v1/client.js";
import { HistoryDirection } from "../../gen/chat/v1/client.js";
import { pageBoundsContract } from "../../test/support/page-bounds-contract.js";
import type { RecentMessages } from "./recent-messages-redis.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { cacheHistory } from "./store-cached.js";
import { SqlStore } from "./store-sql.js";

/**
 * A cache that holds every message and answers every page by count, as the
 * Redis one does for recent pages, so each page the cached store returns comes
 * from the cache and shows that a cached page is cut by bytes too (the Redis
 * cache itself runs the same cases in test/servers/history-cache.test.ts).
 */
class EverythingCached {
  private readonly messages = new Map<string, Message[]>();
  async appended(conversationId: string, messages: Message[]): Promise<void> {
    const list = this.messages.get(conversationId) ?? [];
    list.push(...messages);
    this.messages.set(conversationId, list);
  }
  async page(req: HistoryRequest, lastSeq: number, limit: number): Promise<HistoryPage> {
    const all = this.messages.get(req.conversationId) ?? [];
    const forward = req.direction === HistoryDirection.HISTORY_DIRECTION_FORWARD;
    const chosen = forward
      ? all.filter((m) => m.seq > req.fromSeq).slice(0, limit)
      : all.filter((m) => req.fromSeq === 0 || m.seq < req.fromSeq).reverse().slice(0, limit);
    const last = chosen[chosen.length - 1];
    const hasMore = last !== undefined && (forward ? last.seq < lastSeq : last.seq > 1);
    return { conversationId: req.conversationId, messages: chosen, hasMore, nextFromSeq: last?.seq ?? req.fromSeq };
  }
  async fill(): Promise<void> {}
  close(): void {}
}

pageBoundsContract("the history cache answering from its cache", async () => cacheHistory(await SqlStore.open(await PgliteSqlClient.open(":memory:")), new EverythingCached() as unknown as RecentMessages));
