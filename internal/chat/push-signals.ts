import { context, ROOT_CONTEXT, type Context } from "@opentelemetry/api";
import type { ActivityRequest, NotifyBatchRequest, NotifyRequest, ReadMoved } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";
import { byPushShard, pushShard } from "../grpc/push-shard.js";
import type { Logger } from "../log/logger.js";
import { inBatchSpan } from "../telemetry/messaging.js";
import { preview, PUSH_PREVIEW_MAX } from "../notifier/preview.js";
import { blockedBetween, type ConversationInfo } from "./directory.js";

/** Protobuf framing of one recipient besides its ids. */
const RECIPIENT_OVERHEAD_BYTES = 16;

/** Deletions remembered: far more than can overtake their message's fan-out at once. */
const WITHDRAWN_REMEMBERED = 10_000;

const messageKey = (conversationId: string, seq: number) => `${conversationId}\u0000${seq}`;

/** The key of the one window when a call carries every shard. */
const ALL_SHARDS = -1;

/** What one push shard's notifier has not been told yet. */
interface ShardWindow {
  notifications: NotifyRequest[];
  bytes: number;
  active: Set<string>;
  /** user \0 conversation -> the highest read pointer heard. */
  reads: Map<string, ReadMoved>;
  /** The trace context each batch of messages came in (the fan-out's): the call joins the first, links the rest. */
  contexts: Context[];
  /** Stops the window's own flush (it went early, cut by bytes, or on drain). */
  cancel: () => void;
}

export interface NotifierFeedOptions {
  /**
   * How long the feed gathers before it calls the notifier (NOTIFY_BATCH_MS, 100 ms): a push
   * waits at most this long more, next to the hundreds of milliseconds FCM and APNs take,
   * and at 100 messages a second the notifier gets 10 calls instead of 200 (a call costs it
   * ~0.5 ms of CPU, more than the notifications in it: docs/performance.md, stop 23).
   */
  windowMs: number;
  /** A call is cut here, like a Deliver batch, so a window of large messages never passes gRPC's limit. */
  maxBytes?: number;
  /**
   * Behind sidecars each push shard may live on another notifier replica, so each gets its
   * own call (`x-push-shard` routes it). Without them there is one notifier, and one call
   * per window carries every shard: a window touches a few shards per message (the
   * recipient's, the sender's use, the reader's pointer), and a call each tripled the calls.
   */
  callPerShard: boolean;
}

/**
 * Everything the notifier hears from chat: the messages (every member but the sender, each
 * with the devices that have a live session: they get the message over it, the others may
 * get a push), the users who just used a device (sent, typed: that holds their pushes), and
 * read pointers that moved (that drops held pushes and updates the ones shown).
 *
 * One `NotifyBatch` call per window (per push shard behind sidecars) carries all three, the uses and reads
 * applied before the notifications: a use is never reordered behind the message it should
 * hold (two calls could be), and a read the notifier hears first is remembered
 * (`RecentActivity`), so the push of a message already read is dropped whichever comes
 * first. Nothing waits for the call: a send, ack or keystroke never does. A call that fails
 * is logged once per outage and dropped; the notifier then pushes as if nobody were looking
 * (a buzz too many or a push missed, never a message lost: devices sync from their logs).
 */
export class NotifierFeed {
  private readonly shards = new Map<number, ShardWindow>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Messages deleted for everyone lately, oldest first (conversation \0 seq). */
  private readonly withdrawn = new Set<string>();
  /** The last call failed: its warning is out (one per outage, not one per call). */
  private failed = false;
  private readonly maxBytes: number;

  constructor(
    /** `shard` is undefined when the call carries every shard (one notifier). */
    private readonly send: (shard: number | undefined, req: NotifyBatchRequest) => Promise<unknown>,
    private readonly log: Logger,
    private readonly o: NotifierFeedOptions,
  ) {
    this.maxBytes = o.maxBytes ?? BATCH_MAX_BYTES;
  }

  /** Messages just made durable, with the devices of their members that have a live session. */
  messages(items: Array<{ message: Message; info: ConversationInfo }>, onlineDevices: Map<string, string[]>): void {
    const ctx = context.active();
    for (const { message, info } of items) {
      if (this.withdrawn.has(messageKey(message.conversationId, message.seq))) continue;
      // No push between users in a block (either way), nor to a deleted account.
      const recipients = info.memberIds
        .filter((userId) => userId !== message.senderId && !info.deleted.has(userId) && !blockedBetween(info, userId, message.senderId))
        .map((userId) => ({ userId, muted: info.muted.has(userId), onlineDeviceIds: onlineDevices.get(userId) ?? [] }));
      if (recipients.length === 0) continue;
      // A push shows a preview: the text goes cut to the most any preview may show, not whole
      // (100,000 characters carried to show 120 cost chat and the notifier milliseconds each).
      const pushed = { ...message, text: preview(message.text, PUSH_PREVIEW_MAX) };
      for (const [shard, mine] of this.o.callPerShard ? byPushShard(recipients, (r) => r.userId) : [[ALL_SHARDS, recipients] as const]) {
        const size = textBytes(pushed.text) + ITEM_OVERHEAD_BYTES + mine.reduce((n, r) => n + r.userId.length + r.onlineDeviceIds.join("").length + RECIPIENT_OVERHEAD_BYTES * (1 + r.onlineDeviceIds.length), 0);
        let w = this.window(shard);
        if (w.notifications.length > 0 && w.bytes + size > this.maxBytes) {
          this.flush(shard);
          w = this.window(shard);
        }
        if (w.contexts.at(-1) !== ctx) w.contexts.push(ctx);
        w.notifications.push({ message: pushed, senderName: info.usernames.get(message.senderId) ?? "", conversationTitle: info.conversation.title, recipients: mine });
        w.bytes += size;
      }
    }
  }

  /** The user just used a device (sent a message, typed in a conversation). */
  used(userId: string): void {
    this.window(this.shardOf(userId)).active.add(userId);
  }

  /** The user's read pointer in the conversation moved to `readSeq`. */
  readMoved(userId: string, conversationId: string, readSeq: number): void {
    const reads = this.window(this.shardOf(userId)).reads;
    const key = `${userId}\u0000${conversationId}`;
    if ((reads.get(key)?.readSeq ?? -1) < readSeq) reads.set(key, { userId, conversationId, readSeq });
  }

  /**
   * A message deleted for everyone: its notification, if a window still holds it, never goes
   * out, and one that comes later (a deletion can overtake its message's fan-out) is dropped.
   * The notifier is told separately about what it already has.
   */
  withdraw(conversationId: string, seq: number): void {
    const key = messageKey(conversationId, seq);
    this.withdrawn.add(key);
    if (this.withdrawn.size > WITHDRAWN_REMEMBERED) this.withdrawn.delete(this.withdrawn.values().next().value!);
    for (const w of this.shards.values()) {
      w.notifications = w.notifications.filter((n) => n.message!.conversationId !== conversationId || n.message!.seq !== seq);
    }
  }

  /** Sends what every window holds now and waits for the calls (a draining chat loses no push). */
  async flushAll(): Promise<void> {
    for (const shard of [...this.shards.keys()]) this.flush(shard);
    await Promise.all(this.inFlight);
  }

  private shardOf(userId: string): number {
    return this.o.callPerShard ? pushShard(userId) : ALL_SHARDS;
  }

  private window(shard: number): ShardWindow {
    let w = this.shards.get(shard);
    if (!w) {
      const flush = () => this.flush(shard);
      let cancel: () => void;
      if (this.o.windowMs > 0) {
        const timer = setTimeout(flush, this.o.windowMs);
        cancel = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(flush);
        cancel = () => clearImmediate(immediate);
      }
      w = { notifications: [], bytes: 0, active: new Set(), reads: new Map(), contexts: [], cancel };
      this.shards.set(shard, w);
    }
    return w;
  }

  private flush(shard: number): void {
    const w = this.shards.get(shard);
    if (!w) return;
    this.shards.delete(shard);
    w.cancel();
    const activity: ActivityRequest = { activeUserIds: [...w.active], reads: [...w.reads.values()] };
    const req = { notifications: w.notifications, activity };
    const to = shard === ALL_SHARDS ? undefined : shard;
    // The call joins the first message's trace (its pushes descend from the sender's frame) and
    // links the others'; a window of uses and reads alone belongs to no one request's trace.
    const sent = w.contexts.length > 0
      ? inBatchSpan("chat.notify", w.contexts, { "meshchat.batch.messages": w.notifications.length }, () => this.send(to, req))
      : context.with(ROOT_CONTEXT, () => this.send(to, req));
    const call = sent.then(
      () => { this.failed = false; },
      (err: unknown) => {
        if (this.failed) return;
        this.failed = true;
        this.log.warn("notifier call failed; its pushes are dropped and the next are sent as if nobody were looking", { err });
      },
    );
    this.inFlight.add(call);
    void call.finally(() => this.inFlight.delete(call));
  }
}
