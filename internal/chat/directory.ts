import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import type { Conversation } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import { trimOldest } from "../run/trim-oldest.js";

export interface ConversationInfo {
  conversation: Conversation;
  memberIds: string[];
  muted: Set<string>;
  usernames: Map<string, string>;
  /** Blocks between members, as "blocker\u0000blocked" (blockedBetween reads them). */
  blocks: Set<string>;
  /** Members whose account was deleted. */
  deleted: Set<string>;
}

/** Whether either of the two members blocked the other. */
export function blockedBetween(info: ConversationInfo, a: string, b: string): boolean {
  return info.blocks.size > 0 && (info.blocks.has(`${a}\u0000${b}`) || info.blocks.has(`${b}\u0000${a}`));
}

const TTL_MS = 30_000;
/** CHAT_CONVERSATION_CACHE: conversations whose members a chat instance keeps in memory. Default 100000. */
export const DEFAULT_CACHE_SIZE = 100_000;

/**
 * Conversations and members as the chat owner sees them, cached. Every
 * membership change of a conversation goes through its owner, which drops the
 * entry afterwards; the TTL bounds staleness after an ownership move.
 */
export class ConversationDirectory {
  /** In order of last use (a Map keeps insertion order): the first entry is the one to evict. */
  private readonly cache = new Map<string, { info: Promise<ConversationInfo>; at: number }>();

  constructor(private readonly store: MessageStoreServiceClient, private readonly maxEntries = DEFAULT_CACHE_SIZE) {}

  get size(): number {
    return this.cache.size;
  }

  get(conversationId: string): Promise<ConversationInfo> {
    const hit = this.cache.get(conversationId);
    if (hit && Date.now() - hit.at < TTL_MS) {
      this.cache.delete(conversationId);
      this.cache.set(conversationId, hit);
      return hit.info;
    }
    const info = this.load(conversationId);
    this.cache.delete(conversationId);
    this.cache.set(conversationId, { info, at: Date.now() });
    // Bounded: a user in 10,000 groups, or a long-lived instance, cannot grow it without end.
    trimOldest(this.cache, this.maxEntries);
    info.catch(() => this.cache.delete(conversationId));
    return info;
  }

  /** Resolves the conversation if `userId` is a member; otherwise PERMISSION_DENIED (existence is not revealed). */
  async requireMember(conversationId: string, userId: string): Promise<ConversationInfo> {
    let info: ConversationInfo;
    try {
      info = await this.get(conversationId);
    } catch (err) {
      if (err instanceof ChatError && err.code === ChatError.notFound("").code) throw ChatError.denied();
      throw err;
    }
    if (!info.memberIds.includes(userId)) throw ChatError.denied();
    return info;
  }

  ids(): IterableIterator<string> {
    return this.cache.keys();
  }

  invalidate(conversationId: string): void {
    this.cache.delete(conversationId);
  }

  invalidateWhere(pred: (conversationId: string) => boolean): void {
    for (const id of this.cache.keys()) if (pred(id)) this.cache.delete(id);
  }

  private async load(conversationId: string): Promise<ConversationInfo> {
    const res = await call(this.store, this.store.getConversation, { conversationId });
    if (!res.conversation) throw ChatError.notFound("no such conversation");
    const c = res.conversation;
    return {
      conversation: c,
      memberIds: c.members.map((m) => m.userId),
      muted: new Set(res.mutedUserIds),
      usernames: new Map(c.members.map((m) => [m.userId, m.username])),
      blocks: new Set(res.blocks.map((p) => `${p.blockerId}\u0000${p.blockedId}`)),
      deleted: new Set(c.members.filter((m) => m.accountDeleted).map((m) => m.userId)),
    };
  }
}
