import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { ActivityRequest, NotifyBatchRequest, NotifyRequest, ReadMoved } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";
import { byPushShard } from "../grpc/push-shard.js";
import type { Logger } from "../log/logger.js";
import { TickBatcher } from "../run/tick-batcher.js";
import { blockedBetween, type ConversationInfo } from "./directory.js";

/** Protobuf framing of one recipient besides its ids. */
const RECIPIENT_OVERHEAD_BYTES = 16;

/** A call to the notifier about the users of one push shard (`internal/grpc/push-shard.ts`). */
export interface ShardBatch {
  shard: number;
  request: NotifyBatchRequest;
}

/**
 * The notifier's view of one tick's messages: every member but the sender, each with
 * the devices that have a live session (they get the message over it; the others may
 * get a push). One batch per push shard of the recipients, each cut at `maxBytes` like
 * a Deliver batch, so a tick of large messages never makes one call past gRPC's limit.
 */
export function notifyBatches(items: Array<{ message: Message; info: ConversationInfo }>, onlineDevices: Map<string, string[]>, maxBytes = BATCH_MAX_BYTES): ShardBatch[] {
  const done: ShardBatch[] = [];
  const open = new Map<number, { batch: ShardBatch; bytes: number }>();
  for (const { message, info } of items) {
    // No push between users in a block (either way), nor to a deleted account.
    const recipients = info.memberIds
      .filter((userId) => userId !== message.senderId && !info.deleted.has(userId) && !blockedBetween(info, userId, message.senderId))
      .map((userId) => ({ userId, muted: info.muted.has(userId), onlineDeviceIds: onlineDevices.get(userId) ?? [] }));
    for (const [shard, mine] of byPushShard(recipients, (r) => r.userId)) {
      const size = textBytes(message.text) + ITEM_OVERHEAD_BYTES + mine.reduce((n, r) => n + r.userId.length + r.onlineDeviceIds.join("").length + RECIPIENT_OVERHEAD_BYTES * (1 + r.onlineDeviceIds.length), 0);
      let cur = open.get(shard);
      if (cur && cur.bytes + size > maxBytes) {
        done.push(cur.batch);
        cur = undefined;
      }
      if (!cur) open.set(shard, (cur = { batch: { shard, request: { notifications: [] } }, bytes: 0 }));
      cur.batch.request.notifications.push({ message, senderName: info.usernames.get(message.senderId) ?? "", conversationTitle: info.conversation.title, recipients: mine } satisfies NotifyRequest);
      cur.bytes += size;
    }
  }
  for (const cur of open.values()) done.push(cur.batch);
  return done;
}

type Signal = { used: string } | { read: ReadMoved };
const userOf = (s: Signal) => ("used" in s ? s.used : s.read.userId);

/**
 * What the notifier needs besides messages to hold pushes and update the ones shown:
 * users who just used a device (sent, typed), read pointers that moved. Those of one tick
 * go in one Activity call per push shard, after the fact: no send, ack or typing waits
 * for it. A call that fails is logged and dropped; the notifier then pushes as if nobody
 * were looking (a buzz too many, never a message lost).
 */
export class PushSignals {
  private readonly batcher: TickBatcher<Signal, void>;
  /** The last batch failed: its warning is out (one per outage, not one per signal). */
  private failed = false;

  constructor(send: (shard: number, req: ActivityRequest) => Promise<unknown>, private readonly log: Logger) {
    this.batcher = new TickBatcher(async (signals) => {
      // A tick's signals come from many requests: the call belongs to none of their traces.
      await context.with(ROOT_CONTEXT, () => Promise.all([...byPushShard(signals, userOf)].map(([shard, mine]) => send(shard, activityOf(mine)))));
      return signals.map(() => undefined);
    });
  }

  /** The user just used a device (sent a message, typed in a conversation). */
  used(userId: string): void {
    this.signal({ used: userId });
  }

  /** The user's read pointer in the conversation moved to `readSeq`. */
  readMoved(userId: string, conversationId: string, readSeq: number): void {
    this.signal({ read: { userId, conversationId, readSeq } });
  }

  private signal(s: Signal): void {
    this.batcher.call(s).then(
      () => { this.failed = false; },
      (err: unknown) => {
        if (this.failed) return;
        this.failed = true;
        this.log.warn("push signals failed; pushes are sent as if nobody were looking", { err });
      },
    );
  }
}

/** One Activity request: each user once, each read pointer at its highest. */
function activityOf(signals: Signal[]): ActivityRequest {
  const active = new Set<string>();
  const reads = new Map<string, ReadMoved>();
  for (const s of signals) {
    if ("used" in s) active.add(s.used);
    else {
      const key = `${s.read.userId}\u0000${s.read.conversationId}`;
      const prev = reads.get(key);
      if (!prev || prev.readSeq < s.read.readSeq) reads.set(key, s.read);
    }
  }
  return { activeUserIds: [...active], reads: [...reads.values()] };
}
