import type { Receipt } from "../../gen/chat/v1/client.js";
import { trimOldest } from "../run/trim-oldest.js";

interface ConversationState {
  /** Sender of seq `base + i` (undefined: a seq this instance did not sequence). */
  base: number;
  senders: Array<string | undefined>;
  /** Per member, the pointers the last receipt about them was sent for. */
  told: Map<string, { delivered: number; read: number }>;
}

/**
 * Who needs a member's receipt. R8 asks that the *sender* see delivered and read; sending
 * every member's receipt to every member costs members² frames per message in a group
 * (one message read by an online 100-member group: ~10,000 receipt deliveries). A receipt
 * moving a member's pointers from what was last told to the new values concerns only the
 * senders of the messages in between, so that is where it goes.
 *
 * The conversation's owner sequences its messages, so it knows their senders; it keeps the
 * last `perConversation` of them, for at most `conversations` conversations (least recently
 * used go first). A receipt whose range it cannot name a sender for in full (older than it
 * remembers, a conversation just taken over, a member's first receipt since) goes to every
 * member, as before: never fewer than need it, only sometimes more.
 */
export class ReceiptAudience {
  private readonly byConversation = new Map<string, ConversationState>();

  constructor(private readonly perConversation = 128, private readonly conversations = 10_000) {}

  /** A message this instance sequenced. */
  sent(conversationId: string, seq: number, senderId: string): void {
    const s = this.state(conversationId, seq);
    if (seq < s.base) return;
    while (s.base + s.senders.length < seq) s.senders.push(undefined);
    s.senders[seq - s.base] = senderId;
    const extra = s.senders.length - this.perConversation;
    if (extra > 0) {
      s.senders.splice(0, extra);
      s.base += extra;
    }
  }

  /** The members to send `receipt` to, and from now on the receipt is what they were told. */
  audience(receipt: Receipt, memberIds: string[]): string[] {
    const s = this.byConversation.get(receipt.conversationId);
    const told = s?.told.get(receipt.userId);
    s?.told.set(receipt.userId, { delivered: Math.max(told?.delivered ?? 0, receipt.deliveredSeq), read: Math.max(told?.read ?? 0, receipt.readSeq) });
    if (!s || !told) return memberIds;
    const senders = new Set<string>();
    for (const [from, to] of [[told.delivered, receipt.deliveredSeq], [told.read, receipt.readSeq]] as const) {
      for (let seq = from + 1; seq <= to; seq++) {
        const sender = seq >= s.base ? s.senders[seq - s.base] : undefined;
        if (sender === undefined) return memberIds;
        senders.add(sender);
      }
    }
    senders.delete(receipt.userId);
    return memberIds.filter((id) => senders.has(id));
  }

  ids(): IterableIterator<string> {
    return this.byConversation.keys();
  }

  /** Conversations this instance no longer owns: what it knew of them may be stale. */
  forgetWhere(pred: (conversationId: string) => boolean): void {
    for (const id of [...this.byConversation.keys()]) if (pred(id)) this.byConversation.delete(id);
  }

  private state(conversationId: string, firstSeq: number): ConversationState {
    let s = this.byConversation.get(conversationId);
    this.byConversation.delete(conversationId);
    s ??= { base: firstSeq, senders: [], told: new Map() };
    this.byConversation.set(conversationId, s);
    trimOldest(this.byConversation, this.conversations);
    return s;
  }
}
