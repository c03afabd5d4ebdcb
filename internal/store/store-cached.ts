import type { AppendGroup, AppendGroupResult, ChangeMessageRequest, UserEvent } from "../../gen/chat/internal/v1/store.js";
import type { HistoryPage, HistoryRequest } from "../../gen/chat/v1/client.js";
import { HistoryDirection } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { ITEM_OVERHEAD_BYTES, PAGE_MAX_BYTES, textBytes } from "../grpc/message-size.js";
import type { RecentMessages } from "./recent-messages-redis.js";
import { fitBytes, historyLimit, type MessageLog, type Store } from "./store.js";

/** A cached page cut at the byte budget like the stores' own pages (the cache holds full pages by count). */
function cutPage(page: HistoryPage, fromSeq: number, maxBytes: number): HistoryPage {
  const take = fitBytes(page.messages.map((m) => textBytes(m.text) + ITEM_OVERHEAD_BYTES), maxBytes);
  if (take === page.messages.length) return page;
  const messages = page.messages.slice(0, take);
  return { ...page, messages, hasMore: true, nextFromSeq: messages[messages.length - 1]?.seq ?? fromSeq };
}

/**
 * The store with its recent history pages answered from Redis when they can be. Only the
 * message log's history and the two writes that change what a page shows are the cache's;
 * every other call is the store's own (withOverrides), so nothing is passed through by hand.
 * Writes go to the store first; the cache only hears about what is durable.
 */
export function cacheHistory(store: Store, recent: RecentMessages): Store {
  return withOverrides(store, new HistoryCache(store, recent));
}

class HistoryCache implements Pick<MessageLog, "append" | "changeMessage" | "history">, Pick<Store, "close"> {
  constructor(private readonly inner: Store, private readonly recent: RecentMessages) {}

  async append(groups: AppendGroup[]): Promise<AppendGroupResult[]> {
    const results = await this.inner.append(groups);
    await Promise.all(results.map((r) => this.recent.appended(r.conversationId, r.messages.filter((m) => !m.duplicate).map((m) => m.message!))));
    return results;
  }

  /**
   * An edited or deleted message's cached copy is dropped with its conversation's run (the
   * next newest-page read rebuilds it): after a delete for everyone the text is in no key.
   */
  async changeMessage(req: ChangeMessageRequest): Promise<UserEvent[]> {
    if (!req.edit && !req.forEveryone) return this.inner.changeMessage(req);
    // Before: with Redis unreachable the change is refused (UNAVAILABLE, retryable) and nothing
    // changed. After: a newest-page read that raced the change may have put the old copy back.
    await this.forget(req.conversationId);
    const events = await this.inner.changeMessage(req);
    await this.forget(req.conversationId).catch(() => {});
    return events;
  }

  private async forget(conversationId: string): Promise<void> {
    try {
      await this.recent.forget(conversationId);
    } catch (err) {
      throw ChatError.unavailable("the history cache is unavailable", err);
    }
  }

  async history(userId: string, req: HistoryRequest, maxBytes = PAGE_MAX_BYTES): Promise<HistoryPage> {
    if (!(await this.inner.isMember(req.conversationId, userId))) throw ChatError.denied();
    // The cache is shared by the members: a user who hid messages for themselves reads the store.
    if ((await this.inner.hiddenSeqs(userId, req.conversationId)).length > 0) return this.inner.history(userId, req, maxBytes);
    const limit = historyLimit(req.limit);
    const lastSeq = await this.inner.lastSeq(req.conversationId);
    const hit = await this.recent.page(req, lastSeq, limit);
    if (hit) return cutPage(hit, req.fromSeq, maxBytes);
    const page = await this.inner.history(userId, req, maxBytes);
    const newest = req.direction !== HistoryDirection.HISTORY_DIRECTION_FORWARD && req.fromSeq === 0;
    if (newest) await this.recent.fill(req.conversationId, page.messages);
    return page;
  }

  async close(): Promise<void> {
    this.recent.close();
    await this.inner.close();
  }
}

/**
 * `inner` with the methods `overrides` has (its own methods, not Object's) taken from it instead.
 * Optional methods stay as `inner` has them: absent where it has none (trimLog).
 */
function withOverrides<T extends object>(inner: T, overrides: object): T {
  const own = new Set(Object.getOwnPropertyNames(Object.getPrototypeOf(overrides)).filter((k) => k !== "constructor"));
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (typeof prop === "string" && own.has(prop)) {
        const v = (overrides as Record<string, unknown>)[prop];
        return typeof v === "function" ? v.bind(overrides) : v;
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
