import type { RouteVersionsSeen } from "../routes/route-cache.js";
import { ChatMetrics } from "../telemetry/telemetry.js";
import type { AppendGroup, AppendedMessage, AppendMessage, AppendResponse, AppendRequest } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { context, trace, type Context, type Link } from "@opentelemetry/api";
import { ChatError } from "../errors/chat-error.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";
import { sleep } from "../run/sleep.js";

/** What the sequencer needs from the message store. */
export interface AppendTarget {
  append(req: AppendRequest): Promise<AppendResponse>;
  lastSeq(conversationId: string): Promise<number>;
}

export interface SequencedMessage {
  appended: AppendedMessage;
  memberIds: string[];
  /** The members' route versions as the store answered them (route-cache.ts); epoch 0: none. */
  routes: RouteVersionsSeen;
}

interface Pending {
  conversationId: string;
  message: AppendMessage;
  /** What it adds to a store write (appendBytes). */
  bytes: number;
  /** The trace context of the send, so its trace shows the batch write. */
  ctx: Context;
  attempts: number;
  resolve: (r: SequencedMessage) => void;
  reject: (e: unknown) => void;
}

interface ConversationState {
  /** Last seq known to be stored; undefined = ask the store before the next append. */
  lastSeq: number | undefined;
  /** Sends of this conversation waiting in the senders' queues. */
  queued: number;
  /** An append or an exclusive operation on this conversation is running. */
  busy: boolean;
  waiters: Array<() => void>;
}

/** One sender's waiting sends, in arrival order, and the bytes it may still take in its turn. */
interface SenderQueue {
  pending: Pending[];
  deficit: number;
  /** Bytes of `pending` (what counts against maxQueuedBytesPerSender). */
  bytes: number;
}

/** One conversation's part of a store write: its sends in the order they were taken. */
interface BatchGroup {
  id: string;
  q: ConversationState;
  items: Pending[];
}

const MAX_CONFLICT_RETRIES = 3;

/**
 * The bytes a sender may take per turn (deficit round robin). Smaller than one
 * large message, so a sender of large messages needs several turns for one
 * while a sender of small ones takes a few in each: shares are fair in bytes.
 */
export const QUANTUM_BYTES = 64 * 1024;

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
  /** Bytes a sender may take per turn when a write is formed (default QUANTUM_BYTES). */
  quantumBytes?: number;
  /**
   * Bytes of sends waiting for a write, per sender and in all (defaults
   * SEND_QUEUE_BYTES_PER_SENDER, SEND_QUEUE_BYTES). A send past either is refused at once
   * with RATE_LIMITED (retryable, nothing written) instead of waiting without bound while
   * the store is slow: the back-pressure reaches the sender, and memory stays bounded.
   */
  maxQueuedBytesPerSender?: number;
  maxQueuedBytes?: number;
  /**
   * Heads of idle conversations kept (default CACHED_HEADS); past it the least recently
   * written is forgotten and read from the store at its next send. Without a bound a
   * long-lived owner would keep a head for every conversation it ever wrote.
   */
  maxCachedHeads?: number;
  /**
   * The store refused a write's base_seq: another instance appended to the conversation
   * since this one read its head (two owners overlapping while membership changes). Its
   * sends are retried on a fresh head; operators see how often ownership overlaps.
   */
  onConflict?: (conversationId: string) => void;
}

/** Idle conversations whose head an owner keeps, like the directory's conversation cache. */
export const CACHED_HEADS = 100_000;

/** Sends of one sender waiting for a write: ~16 of the largest legal messages, thousands of small ones. */
export const SEND_QUEUE_BYTES_PER_SENDER = 8 * 1024 * 1024;
/** Sends of everyone waiting for a write in one chat instance. */
export const SEND_QUEUE_BYTES = 256 * 1024 * 1024;
/** What a refused send is told to wait: about one store write at a loaded store. */
const QUEUE_FULL_RETRY_MS = 500;

/**
 * The owner's write path for the conversations this chat instance owns. Sends
 * are written in batches: while one store write is in flight the next batch
 * gathers, so a busy instance makes few large transactions and an idle one adds
 * no delay (group commit). A send resolves only after the store has it (P4).
 *
 * Fair per sender: sends wait in one queue per sender (user), and a batch is
 * formed by deficit round robin over the senders by bytes, so one user's queued
 * burst (in one conversation or spread over many) takes its share of each write
 * and never sits ahead of everyone else's sends. Each sender's sends keep their
 * order within a conversation (P2); a conversation's sends in one write are
 * numbered in the order they were taken, and one write per conversation is in
 * flight at a time. The store numbers messages from the base the owner believes
 * in; if another owner wrote meanwhile (ownership moved), the store refuses the
 * group, the owner reloads the head and retries.
 */
export class Sequencer {
  private readonly conversations = new Map<string, ConversationState>();
  private readonly senders = new Map<string, SenderQueue>();
  /** Senders with waiting sends, in turn order; `next` is whose turn comes first in the next batch. */
  private ring: string[] = [];
  private next = 0;
  private inFlight = 0;
  private closed = false;
  /** Bytes of every sender's waiting sends. */
  private queuedBytes = 0;

  constructor(
    private readonly store: AppendTarget,
    /** Current members, read at write time so a batch never mixes two memberships. */
    private readonly membersOf: (conversationId: string) => Promise<string[]>,
    private readonly opts: SequencerOptions = { maxInFlight: 2, maxBatchMessages: 2_000 },
  ) {}

  submit(conversationId: string, message: AppendMessage): Promise<SequencedMessage> {
    if (this.closed) return Promise.reject(new ChatError(ErrorCode.ERROR_CODE_SHUTTING_DOWN, "chat instance is shutting down"));
    const bytes = appendBytes(message);
    const refusal = this.queueFull(message.senderId, bytes);
    if (refusal) return Promise.reject(new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, refusal, { retryAfterMs: QUEUE_FULL_RETRY_MS }));
    return new Promise((resolve, reject) => {
      this.enqueue([{ conversationId, message, bytes, ctx: context.active(), attempts: 0, resolve, reject }], false);
      this.pump();
    });
  }

  /** Runs fn with no append of this conversation in flight (membership changes). */
  async exclusive<T>(conversationId: string, fn: () => Promise<T>): Promise<T> {
    const q = this.conversation(conversationId);
    while (q.busy) await new Promise<void>((r) => q.waiters.push(r));
    q.busy = true;
    try {
      return await fn();
    } finally {
      this.release(conversationId, q);
    }
  }

  /** Conversations whose head or queue this sequencer holds. */
  ids(): IterableIterator<string> {
    return this.conversations.keys();
  }

  /** Forget what we know of a conversation's head (ownership lost or regained). */
  forget(conversationId: string): void {
    const q = this.conversations.get(conversationId);
    if (q) q.lastSeq = undefined;
  }

  /** Forget the heads of every conversation `pred` picks (ownership moved, lease lost). */
  forgetWhere(pred: (conversationId: string) => boolean): void {
    for (const [id, q] of this.conversations) if (pred(id)) q.lastSeq = undefined;
  }

  /** Stop taking sends; resolves when every accepted send is settled. */
  async drain(): Promise<void> {
    this.closed = true;
    while (this.inFlight > 0 || this.ring.length > 0) await sleep(10);
  }

  /** Why a new send of `bytes` may not wait now, if it may not (the first send of an empty queue always may). */
  private queueFull(senderId: string, bytes: number): string | undefined {
    const mine = this.senders.get(senderId)?.bytes ?? 0;
    if (mine > 0 && mine + bytes > (this.opts.maxQueuedBytesPerSender ?? SEND_QUEUE_BYTES_PER_SENDER)) return "too many of your messages are waiting to be stored; retry";
    if (this.queuedBytes > 0 && this.queuedBytes + bytes > (this.opts.maxQueuedBytes ?? SEND_QUEUE_BYTES)) return "too many messages are waiting to be stored; retry";
    return undefined;
  }

  private conversation(id: string): ConversationState {
    let q = this.conversations.get(id);
    if (!q) {
      q = { lastSeq: undefined, queued: 0, busy: false, waiters: [] };
      this.conversations.set(id, q);
    }
    return q;
  }

  /** Queues sends behind their senders' waiting ones, or (retries) ahead of them, in the given order. */
  private enqueue(items: Pending[], first: boolean): void {
    const bySender = new Map<string, Pending[]>();
    for (const p of items) {
      this.conversation(p.conversationId).queued++;
      let list = bySender.get(p.message.senderId);
      if (!list) bySender.set(p.message.senderId, (list = []));
      list.push(p);
    }
    for (const [sender, list] of bySender) {
      let s = this.senders.get(sender);
      if (!s) {
        this.senders.set(sender, (s = { pending: [], deficit: 0, bytes: 0 }));
        this.ring.push(sender);
      }
      if (first) s.pending.unshift(...list);
      else s.pending.push(...list);
      // Retries (first) were accepted before: they count, but are never refused.
      const bytes = list.reduce((n, p) => n + p.bytes, 0);
      s.bytes += bytes;
      this.queuedBytes += bytes;
    }
    ChatMetrics.get().queueDepth.add(items.length);
  }

  private release(id: string, q: ConversationState): void {
    this.unbusy(id, q);
    this.pump();
  }

  private unbusy(id: string, q: ConversationState): void {
    q.busy = false;
    const waiter = q.waiters.shift();
    if (waiter) return waiter();
    if (q.queued > 0) return;
    this.conversations.delete(id);
    if (q.lastSeq === undefined) return;
    // Idle with a known head: now the most recently used (a Map keeps insertion order).
    this.conversations.set(id, q);
    this.evictIdleHeads();
  }

  private evictIdleHeads(): void {
    const max = this.opts.maxCachedHeads ?? CACHED_HEADS;
    if (this.conversations.size <= max) return;
    for (const [id, q] of this.conversations) {
      if (this.conversations.size <= max) return;
      if (!q.busy && q.queued === 0 && q.waiters.length === 0) this.conversations.delete(id);
    }
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight) {
      const batch = this.formBatch();
      if (batch.length === 0) return;
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        // Every conversation of the write is free before the next is formed, so all their senders can be in it.
        for (const b of batch) this.unbusy(b.id, b.q);
        this.pump();
      });
    }
  }

  /**
   * The next store write, by deficit round robin over the senders: in turn, each
   * sender earns a quantum of bytes and takes its oldest sends (of conversations
   * with no write in flight) while they fit in what it has earned and in the
   * write's bounds. A sender whose next send does not fit in the write is done
   * for this write and keeps what it earned; the write is formed when no sender
   * can add anything. The first send of a write is taken whatever its size (the
   * sender's deficit goes below zero and is paid back in later turns).
   */
  private formBatch(): BatchGroup[] {
    const maxBytes = this.opts.maxBatchBytes ?? BATCH_MAX_BYTES;
    const quantum = this.opts.quantumBytes ?? QUANTUM_BYTES;
    const groups = new Map<string, BatchGroup>();
    const done = new Set<string>();
    let count = 0;
    let bytes = 0;
    let i = this.next;
    while (count < this.opts.maxBatchMessages && done.size < this.ring.length) {
      if (i >= this.ring.length) i = 0;
      const sender = this.ring[i++]!;
      if (done.has(sender)) continue;
      const s = this.senders.get(sender)!;
      // Capped at one write: a sender kept out of many writes is owed a write, no more.
      s.deficit = Math.min(s.deficit + quantum, maxBytes);
      while (count < this.opts.maxBatchMessages) {
        // Its oldest send that may go now: a conversation with a write in flight waits (one base at a time).
        const k = s.pending.findIndex((p) => !this.conversations.get(p.conversationId)!.busy);
        if (k < 0) {
          // Nothing it may send now: it earns nothing while it waits (no saved-up burst later).
          s.deficit = 0;
          done.add(sender);
          break;
        }
        const p = s.pending[k]!;
        if (count > 0 && bytes + p.bytes > maxBytes) { done.add(sender); break; }
        if (count > 0 && p.bytes > s.deficit) break; // its next turn
        s.pending.splice(k, 1);
        s.deficit -= p.bytes;
        s.bytes -= p.bytes;
        this.queuedBytes -= p.bytes;
        count++;
        bytes += p.bytes;
        let g = groups.get(p.conversationId);
        if (!g) groups.set(p.conversationId, (g = { id: p.conversationId, q: this.conversations.get(p.conversationId)!, items: [] }));
        g.items.push(p);
      }
    }
    if (count === 0) return [];
    // Senders with nothing left leave the ring; the next write starts with whoever's turn came next.
    const kept: string[] = [];
    let next = 0;
    this.ring.forEach((sender, k) => {
      const s = this.senders.get(sender)!;
      if (s.pending.length === 0) { this.senders.delete(sender); return; }
      if (k < i) next++;
      kept.push(sender);
    });
    this.ring = kept;
    this.next = next;
    for (const g of groups.values()) {
      g.q.busy = true;
      g.q.queued -= g.items.length;
    }
    ChatMetrics.get().queueDepth.add(-count);
    return [...groups.values()];
  }

  private async flush(batch: BatchGroup[]): Promise<void> {
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
        this.opts.onConflict?.(b.id);
        b.q.lastSeq = undefined;
        const retry = b.items.filter((p) => ++p.attempts <= MAX_CONFLICT_RETRIES);
        for (const p of b.items) if (p.attempts > MAX_CONFLICT_RETRIES) p.reject(new ChatError(ErrorCode.ERROR_CODE_CONFLICT, "conversation is moving between chat instances; retry"));
        // Back at the head of their senders' queues: released after this write, they go next.
        this.enqueue(retry, true);
        return;
      }
      if (result.error !== ErrorCode.ERROR_CODE_UNSPECIFIED) {
        const err = result.error === ErrorCode.ERROR_CODE_NOT_FOUND ? ChatError.notFound("no such conversation") : new ChatError(result.error, "append refused");
        for (const p of b.items) p.reject(err);
        return;
      }
      b.q.lastSeq = result.lastSeq;
      const routes = { epoch: result.routeEpoch, versions: result.routeVersions };
      b.items.forEach((p, k) => p.resolve({ appended: result.messages[k]!, memberIds: groups[i]!.memberIds, routes }));
    });
  }
}
