import type { SpanContext } from "@opentelemetry/api";
import { trimOldest } from "../run/trim-oldest.js";

/**
 * The trace each recent message was sent in, by conversation and seq, so that a
 * receipt (an Ack naming `conversation, seq`) can link the message's trace.
 * Nothing on the wire or in the store carries a message's trace context; the chat
 * instance that sequenced a message owns its conversation (ring hash), so it is
 * also the one that handles the acks of it and holds the entry. Bounded: an ack
 * of an older message simply has no link.
 */
export class MessageTraces {
  private readonly byKey = new Map<string, SpanContext>();

  constructor(private readonly capacity = 10_000) {}

  remember(conversationId: string, seq: number, ctx: SpanContext | undefined): void {
    if (!ctx) return;
    const key = `${conversationId}\u0000${seq}`;
    this.byKey.delete(key);
    this.byKey.set(key, ctx);
    trimOldest(this.byKey, this.capacity);
  }

  /** The trace of the message an ack names, if it is still remembered. */
  lookup(conversationId: string, seq: number): SpanContext | undefined {
    return this.byKey.get(`${conversationId}\u0000${seq}`);
  }
}
