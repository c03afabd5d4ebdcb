import type { Actor } from "../../gen/chat/internal/v1/chat.js";
import type { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import { type BlockedUser, ConversationKind } from "../../gen/chat/v1/client.js";
import { ChatError } from "../errors/chat-error.js";
import { call } from "../grpc/client.js";
import { blockedBetween, type ConversationInfo } from "./directory.js";

/**
 * Blocks as chat applies them (docs/features.md, "Blocking a user"). The blocked user is told,
 * with a typed PERMISSION_DENIED, when they try to write to the blocker in a direct
 * conversation or open one: a send is answered only once it is stored and delivered (P2), so a
 * silently dropped one would be a lie the sender's other devices contradict. Between the two,
 * typing, receipts, presence and pushes stop in both directions; shared groups carry their
 * messages as before (one history for every member).
 */
export class BlockRules {
  constructor(private readonly store: MessageStoreServiceClient) {}

  /** Blocks or unblocks `subject`; answers the conversations whose cached block state is now stale. */
  async set(actor: Actor, subject: { id: string; username: string }, blocked: boolean): Promise<string[]> {
    if (subject.id === actor.userId) throw ChatError.invalid("you cannot block yourself");
    const res = await call(this.store, this.store.setBlocked, { userId: actor.userId, blockedId: subject.id, blocked, atMs: Date.now() });
    return res.sharedConversationIds;
  }

  async list(actor: Actor): Promise<BlockedUser[]> {
    return (await call(this.store, this.store.getBlocks, { userId: actor.userId })).blocked;
  }

  /** The ids of the users who blocked `userId`. */
  async blockersOf(userId: string): Promise<Set<string>> {
    return new Set((await call(this.store, this.store.getBlocks, { userId })).blockedBy);
  }

  /** A direct conversation with someone who blocked the actor, or whose account was deleted, takes no message. */
  requireMayWrite(info: ConversationInfo, actorId: string): void {
    if (info.conversation.kind !== ConversationKind.CONVERSATION_KIND_DIRECT) return;
    const peer = info.memberIds.find((u) => u !== actorId);
    if (!peer) return;
    if (info.deleted.has(peer)) throw ChatError.denied("this account was deleted");
    if (info.blocks.has(`${peer}\u0000${actorId}`)) throw ChatError.denied("this user does not accept your messages");
    if (info.blocks.has(`${actorId}\u0000${peer}`)) throw ChatError.denied("you blocked this user: unblock them to write");
  }

  /** Of `userIds`, those with no block with `userId` either way (who may hear of its typing and receipts). */
  static without(info: ConversationInfo, userId: string, userIds: string[]): string[] {
    return info.blocks.size === 0 ? userIds : userIds.filter((u) => !blockedBetween(info, u, userId));
  }
}
