import type { AppendGroup, AppendGroupResult, ChangeMessageRequest, User, UserEvent } from "../../gen/chat/internal/v1/store.js";
import { DirectoryTables } from "./directory-tables.js";
import type { Conversation, HistoryPage, HistoryRequest, MembershipAction } from "../../gen/chat/v1/client.js";
import { HistoryDirection } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { ITEM_OVERHEAD_BYTES, PAGE_MAX_BYTES, textBytes } from "../grpc/message-size.js";
import type { RecentMessages } from "./recent-messages-redis.js";
import { fitBytes, historyLimit, type LogPage, type PointerMoveResult, type PointerUpdate, type Store } from "./store.js";

/** A cached page cut at the byte budget like the stores' own pages (the cache holds full pages by count). */
function cutPage(page: HistoryPage, fromSeq: number, maxBytes: number): HistoryPage {
  const take = fitBytes(page.messages.map((m) => textBytes(m.text) + ITEM_OVERHEAD_BYTES), maxBytes);
  if (take === page.messages.length) return page;
  const messages = page.messages.slice(0, take);
  return { ...page, messages, hasMore: true, nextFromSeq: messages[messages.length - 1]?.seq ?? fromSeq };
}


/**
 * A store whose recent history pages come from Redis when they can. Writes go
 * to the inner store first; the cache only hears about what is durable.
 */
export class CachedStore extends DirectoryTables implements Store {
  // Sessions, privacy settings and block lists are the inner store's, passed through.
  constructor(private readonly inner: Store, private readonly recent: RecentMessages) {
    super(inner, inner, inner);
  }

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

  isMember(conversationId: string, userId: string): Promise<boolean> { return this.inner.isMember(conversationId, userId); }
  hiddenSeqs(userId: string, conversationId: string): Promise<number[]> { return this.inner.hiddenSeqs(userId, conversationId); }
  createUser(user: User): Promise<void> { return this.inner.createUser(user); }
  getUserByName(username: string): Promise<User | null> { return this.inner.getUserByName(username); }
  getUsers(ids: string[]): Promise<User[]> { return this.inner.getUsers(ids); }
  sentMessages(conversationId: string, senderId: string): Promise<number[]> { return this.inner.sentMessages(conversationId, senderId); }
  createConversation(conversation: Conversation, createdBy: string, maxMembers: number) { return this.inner.createConversation(conversation, createdBy, maxMembers); }
  getConversation(id: string) { return this.inner.getConversation(id); }
  changeMembership(req: { conversationId: string; actorId: string; subjectId: string; action: MembershipAction; maxMembers: number }) { return this.inner.changeMembership(req); }
  listConversations(userId: string): Promise<Conversation[]> { return this.inner.listConversations(userId); }
  contactIds(userId: string): Promise<string[]> { return this.inner.contactIds(userId); }
  groupsCreatedSince(userId: string, sinceMs: number): Promise<number> { return this.inner.groupsCreatedSince(userId, sinceMs); }
  setMuted(conversationId: string, userId: string, muted: boolean): Promise<void> { return this.inner.setMuted(conversationId, userId, muted); }
  lastSeq(conversationId: string): Promise<number> { return this.inner.lastSeq(conversationId); }
  readLog(userId: string, afterPos: number, limit: number, maxBytes?: number): Promise<LogPage> { return this.inner.readLog(userId, afterPos, limit, maxBytes); }
  /** The inner store's trim, when it has one (the cache holds no log). */
  get trimLog(): Store["trimLog"] {
    const inner = this.inner;
    return inner.trimLog && ((beforeMs: number) => inner.trimLog!(beforeMs));
  }
  logHeads(userIds: string[]): Promise<number[]> { return this.inner.logHeads(userIds); }
  updatePointers(conversationId: string, userId: string, deliveredSeq: number, readSeq: number) { return this.inner.updatePointers(conversationId, userId, deliveredSeq, readSeq); }
  updatePointersBatch(updates: PointerUpdate[]): Promise<PointerMoveResult[]> { return this.inner.updatePointersBatch(updates); }

  async close(): Promise<void> {
    this.recent.close();
    await this.inner.close();
  }
}
