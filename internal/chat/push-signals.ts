import type { ActivityRequest, NotifyBatchRequest, NotifyRequest, ReadMoved } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";
import type { Logger } from "../log/logger.js";
import { TickBatcher } from "../run/tick-batcher.js";
import type { ConversationInfo } from "./directory.js";

/** Protobuf framing of one recipient besides its ids. */
const RECIPIENT_OVERHEAD_BYTES = 16;

/**
 * The notifier's view of one tick's messages: every member but the sender, each with
 * the devices that have a live session (they get the message over it; the others may
 * get a push). Cut at `maxBytes` like a Deliver batch, so a tick of large messages
 * never makes one call past gRPC's limit.
 */
export function notifyBatches(items: Array<{ message: Message; info: ConversationInfo }>, onlineDevices: Map<string, string[]>, maxBytes = BATCH_MAX_BYTES): NotifyBatchRequest[] {
  const batches: NotifyBatchRequest[] = [];
  let current: NotifyRequest[] = [];
  let bytes = 0;
  for (const { message, info } of items) {
    const recipients = info.memberIds
      .filter((userId) => userId !== message.senderId)
      .map((userId) => ({ userId, muted: info.muted.has(userId), onlineDeviceIds: onlineDevices.get(userId) ?? [] }));
    if (recipients.length === 0) continue;
    const size = textBytes(message.text) + ITEM_OVERHEAD_BYTES + recipients.reduce((n, r) => n + r.userId.length + r.onlineDeviceIds.join("").length + RECIPIENT_OVERHEAD_BYTES * (1 + r.onlineDeviceIds.length), 0);
    if (current.length > 0 && bytes + size > maxBytes) {
      batches.push({ notifications: current });
      current = [];
      bytes = 0;
    }
    current.push({ message, senderName: info.usernames.get(message.senderId) ?? "", conversationTitle: info.conversation.title, recipients });
    bytes += size;
  }
  if (current.length > 0) batches.push({ notifications: current });
  return batches;
}

type Signal = { typed: string } | { read: ReadMoved };

/**
 * What the notifier needs besides messages to hold pushes and update the ones shown:
 * users who typed, read pointers that moved. Those of one tick go in one Activity call,
 * after the fact: no send, ack or typing waits for it. A call that fails is logged and
 * dropped; the notifier then pushes as if nobody were looking (a buzz too many, never a
 * message lost).
 */
export class PushSignals {
  private readonly batcher: TickBatcher<Signal, void>;
  /** The last batch failed: its warning is out (one per outage, not one per signal). */
  private failed = false;

  constructor(send: (req: ActivityRequest) => Promise<unknown>, private readonly log: Logger) {
    this.batcher = new TickBatcher(async (signals) => {
      const active = new Set<string>();
      const reads = new Map<string, ReadMoved>();
      for (const s of signals) {
        if ("typed" in s) active.add(s.typed);
        else {
          const key = `${s.read.userId}\u0000${s.read.conversationId}`;
          const prev = reads.get(key);
          if (!prev || prev.readSeq < s.read.readSeq) reads.set(key, s.read);
        }
      }
      await send({ activeUserIds: [...active], reads: [...reads.values()] });
      return signals.map(() => undefined);
    });
  }

  /** The user typed in a conversation: a device of theirs is in use. */
  typed(userId: string): void {
    this.signal({ typed: userId });
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
