import { ChatMetrics } from "../telemetry/telemetry.js";
import type { AppendGroup, AppendedMessage, AppendMessage, AppendResponse, AppendRequest } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { context, trace, type Context, type Link } from "@opentelemetry/api";
import { ChatError } from "../errors/chat-error.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";

/** What the sequencer needs from the message store. */
export interface AppendTarget {
  append(req: AppendRequest): Promise<AppendResponse>;
  lastSeq(conversationId: string): Promise<number>;
}

export interface SequencedMessage {
  appended: AppendedMessage;
  memberIds: string[];
}

interface Pending {
  message: AppendMessage;
  /** The trace context of the send, so its trace shows the batch write. */
  ctx: Context;
  attempts: number;
  resolve: (r: SequencedMessage) => void;
  reject: (e: unknown) => void;
}

interface ConversationQueue {
  /** Last seq known to be stored; undefined = ask the store before the next append. */
  lastSeq: number | undefined;
  pending: Pending[];
  /** An append or an exclusive operation on this conversation is running. */
  busy: boolean;
  waiters: Array<() => void>;
}

const MAX_CONFLICT_RETRIES = 3;

/** What one send adds to an Append request (and, echoed with its positions, to the reply). */
function appendBytes(m: AppendMessage): number {
  return textBytes(m.text) + m.senderId.length + m.senderDeviceId.length + m.clientMsgId.length + ITEM_OVERHEAD_BYTES;
}

export interface SequencerOptions {
  /** Store writes in flight at once. */
  maxInFlight: number;
  /** Messages per store write. */
  maxBatchMessages: number;
  /**
   * Bytes per store write (default BATCH_MAX_BYTES): a batch of large messages
   * is split before it nears gRPC's message limit, so it is never refused whole
   * with other users' sends in it. A batch always takes at least one send.
   */
  maxBatchBytes?: number;
}

/**
 * The owner's write path for the conversations this chat instance owns. Sends are
 * queued per conversation in arrival order (P2) and written in batches: while
 * one store write is in flight the next batch gathers, so a busy instance makes
 * few large transactions and an idle one adds no delay (group commit). A send
 * resolves only after the store has it (P4). The store numbers messages from
 * the base the owner believes in; if another owner wrote meanwhile (ownership
 * moved), the store refuses the group, the owner reloads the head and retries.
 */
export class Sequencer {
  private readonly queues = new Map<string, ConversationQueue>();
  private ready: string[] = [];
  private inFlight = 0;
  private closed = false;

  constructor(
    private readonly store: AppendTarget,
    /** Current members, read at write time so a batch never mixes two memberships. */
    private readonly membersOf: (conversationId: string) => Promise<string[]>,
    private readonly opts: SequencerOptions = { maxInFlight: 2, maxBatchMessages: 2_000 },
  ) {}

  submit(conversationId: string, message: AppendMessage): Promise<SequencedMessage> {
    if (this.closed) return Promise.reject(new ChatError(ErrorCode.ERROR_CODE_SHUTTING_DOWN, "chat instance is shutting down"));
    return new Promise((resolve, reject) => {
      const q = this.queue(conversationId);
      q.pending.push({ message, ctx: context.active(), attempts: 0, resolve, reject });
      ChatMetrics.get().queueDepth.add(1);
      this.markReady(conversationId);
      this.pump();
    });
  }

  /** Runs fn with no append of this conversation in flight (membership changes). */
  async exclusive<T>(conversationId: string, fn: () => Promise<T>): Promise<T> {
    const q = this.queue(conversationId);
    while (q.busy) await new Promise<void>((r) => q.waiters.push(r));
    q.busy = true;
    try {
      return await fn();
    } finally {
      this.release(conversationId, q);
    }
  }

  /** Forget what we know of a conversation's head (ownership lost or regained). */
  forget(conversationId: string): void {
    const q = this.queues.get(conversationId);
    if (q) q.lastSeq = undefined;
  }

  /** Forget the heads of every conversation `pred` picks (ownership moved, lease lost). */
  forgetWhere(pred: (conversationId: string) => boolean): void {
    for (const [id, q] of this.queues) if (pred(id)) q.lastSeq = undefined;
  }

  /** Stop taking sends; resolves when every accepted send is settled. */
  async drain(): Promise<void> {
    this.closed = true;
    while (this.inFlight > 0 || this.ready.length > 0) await new Promise((r) => setTimeout(r, 10));
  }

  private queue(id: string): ConversationQueue {
    let q = this.queues.get(id);
    if (!q) {
      q = { lastSeq: undefined, pending: [], busy: false, waiters: [] };
      this.queues.set(id, q);
    }
    return q;
  }

  private markReady(id: string): void {
    if (!this.ready.includes(id)) this.ready.push(id);
  }

  private release(id: string, q: ConversationQueue): void {
    q.busy = false;
    const waiter = q.waiters.shift();
    if (waiter) waiter();
    else if (q.pending.length > 0) this.markReady(id);
    else if (q.lastSeq === undefined) this.queues.delete(id);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight) {
      const batch: Array<{ id: string; q: ConversationQueue; items: Pending[] }> = [];
      const maxBytes = this.opts.maxBatchBytes ?? BATCH_MAX_BYTES;
      let count = 0;
      let bytes = 0;
      const skipped: string[] = [];
      while (this.ready.length > 0 && count < this.opts.maxBatchMessages && bytes < maxBytes) {
        const id = this.ready.shift()!;
        const q = this.queues.get(id);
        if (!q || q.pending.length === 0) continue;
        if (q.busy) { skipped.push(id); continue; }
        // This conversation's sends, in order, while they fit in the batch's count and bytes.
        let n = 0;
        while (n < q.pending.length && count + n < this.opts.maxBatchMessages) {
          const size = appendBytes(q.pending[n]!.message);
          if (count + n > 0 && bytes + size > maxBytes) break;
          bytes += size;
          n++;
        }
        if (n === 0) {
          // The batch is full: this conversation leads the next one.
          this.ready.unshift(id);
          break;
        }
        q.busy = true;
        const items = q.pending.splice(0, n);
        ChatMetrics.get().queueDepth.add(-items.length);
        count += n;
        batch.push({ id, q, items });
      }
      this.ready.push(...skipped);
      if (batch.length === 0) return;
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        for (const b of batch) this.release(b.id, b.q);
      });
    }
  }

  private async flush(batch: Array<{ id: string; q: ConversationQueue; items: Pending[] }>): Promise<void> {
    const groups: AppendGroup[] = [];
    const sent: typeof batch = [];
    for (const b of batch) {
      let memberIds: string[];
      try {
        if (b.q.lastSeq === undefined) b.q.lastSeq = await this.store.lastSeq(b.id);
        // A membership change waits in exclusive() until this batch is written.
        memberIds = await this.membersOf(b.id);
      } catch (err) {
        for (const p of b.items) p.reject(err);
        continue;
      }
      groups.push({ conversationId: b.id, baseSeq: b.q.lastSeq, messages: b.items.map((p) => p.message), memberIds });
      sent.push(b);
    }
    if (groups.length === 0) return;
    let res: AppendResponse;
    try {
      // The batch write joins the first send's trace and links every other send in it.
      const items = sent.flatMap((b) => b.items);
      ChatMetrics.get().batchSize.record(items.length);
      const links: Link[] = items.slice(1).map((p) => trace.getSpanContext(p.ctx)).filter((c) => c !== undefined).map((c) => ({ context: c }));
      res = await context.with(items[0]!.ctx, () =>
        trace.getTracer("meshchat").startActiveSpan("chat.append_batch", { links, attributes: { "meshchat.batch.messages": items.length, "meshchat.batch.conversations": groups.length } }, async (span) => {
          try {
            return await this.store.append({ groups });
          } finally {
            span.end();
          }
        }),
      );
    } catch (err) {
      // The write may or may not have committed: forget the heads (the next append
      // reloads them) and let clients resend; client_msg_id makes a resend safe.
      for (const b of sent) { b.q.lastSeq = undefined; for (const p of b.items) p.reject(err); }
      return;
    }
    sent.forEach((b, i) => {
      const result = res.results[i]!;
      if (result.error === ErrorCode.ERROR_CODE_CONFLICT) {
        // Someone else appended (an overlapping owner): reload and retry these, in order.
        b.q.lastSeq = undefined;
        const retry = b.items.filter((p) => ++p.attempts <= MAX_CONFLICT_RETRIES);
        for (const p of b.items) if (p.attempts > MAX_CONFLICT_RETRIES) p.reject(new ChatError(ErrorCode.ERROR_CODE_CONFLICT, "conversation is moving between chat instances; retry"));
        b.q.pending.unshift(...retry);
        ChatMetrics.get().queueDepth.add(retry.length);
        return;
      }
      if (result.error !== ErrorCode.ERROR_CODE_UNSPECIFIED) {
        const err = result.error === ErrorCode.ERROR_CODE_NOT_FOUND ? ChatError.notFound("no such conversation") : new ChatError(result.error, "append refused");
        for (const p of b.items) p.reject(err);
        return;
      }
      b.q.lastSeq = result.lastSeq;
      b.items.forEach((p, k) => p.resolve({ appended: result.messages[k]!, memberIds: groups[i]!.memberIds }));
    });
  }
}
