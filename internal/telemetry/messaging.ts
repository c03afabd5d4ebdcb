import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span, type SpanContext } from "@opentelemetry/api";
import type { Message } from "../../gen/chat/v1/client.js";

/**
 * Messaging spans (OpenTelemetry messaging conventions): a conversation is the
 * destination, the message id is `conversation/seq` (unique and what acks name).
 */
export const MESSAGING_SYSTEM = "meshchat";

export function messageId(m: Pick<Message, "conversationId" | "seq">): string {
  return `${m.conversationId}/${m.seq}`;
}

export function messageAttributes(m: Pick<Message, "conversationId" | "seq">): Record<string, string | number> {
  return { "messaging.system": MESSAGING_SYSTEM, "messaging.destination.name": m.conversationId, "messaging.message.id": messageId(m), "meshchat.message.seq": m.seq };
}

/**
 * The PRODUCER span of a send: the message's creation context, which every
 * delivery of it descends from. The destination is known at once; the id and
 * seq once the store has sequenced it (set them with `sequenced`).
 */
export function startSendSpan<T>(conversationId: string, fn: (span: Span) => Promise<T>): Promise<T> {
  return trace.getTracer("meshchat").startActiveSpan(
    "send",
    { kind: SpanKind.PRODUCER, attributes: { "messaging.system": MESSAGING_SYSTEM, "messaging.operation.type": "send", "messaging.operation.name": "send", "messaging.destination.name": conversationId } },
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        // The message was not sequenced (the store failed): the send is an error.
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/**
 * One CONSUMER span per write of a message to a device's socket, a child of the
 * active context (the edge's Deliver call), so a message's trace reaches every
 * device it was written to.
 */
export function recordDeviceWrite(m: Message, recipient: { userId: string; deviceId: string }, links: Link[] = []): void {
  const span = trace.getTracer("meshchat").startSpan("process", {
    kind: SpanKind.CONSUMER,
    links,
    attributes: {
      ...messageAttributes(m),
      "messaging.operation.type": "process",
      "messaging.operation.name": "deliver",
      "enduser.id": recipient.userId,
      "meshchat.device.id": recipient.deviceId,
      "meshchat.recipient": recipientLabel(m, recipient.userId),
    },
  });
  span.end();
}

/** "sender" for the sender's own other devices (not a delivery to a recipient), else "other". */
export function recipientLabel(m: Pick<Message, "senderId">, userId: string): "sender" | "other" {
  return m.senderId === userId ? "sender" : "other";
}

/** Links to span contexts, skipping the missing ones and duplicates. */
export function linksTo(contexts: Array<SpanContext | undefined>, except?: SpanContext): Link[] {
  const seen = new Set<string>(except ? [except.spanId] : []);
  const out: Link[] = [];
  for (const c of contexts) {
    if (!c || seen.has(c.spanId)) continue;
    seen.add(c.spanId);
    out.push({ context: c });
  }
  return out;
}

/**
 * Runs `work` in a span for a batch gathered from many requests: the span joins the first
 * request's trace and links every other one's (each message's trace still reaches the call).
 */
export function inBatchSpan<T>(name: string, contexts: Context[], attributes: Attributes, work: () => Promise<T>): Promise<T> {
  const [first, ...rest] = contexts;
  const parent = first ?? context.active();
  const links = linksTo(rest.map((c) => trace.getSpanContext(c)), trace.getSpanContext(parent));
  return context.with(parent, () => trace.getTracer("meshchat").startActiveSpan(name, { links, attributes }, (span) => work().finally(() => span.end())));
}
