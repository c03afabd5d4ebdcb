import type { DeliverRequest, DeliveryTarget, EdgeDeliveryServiceClient, ReceiptDelivery, TypingDelivery } from "../../gen/chat/internal/v1/edge.js";
import type { NotifierServiceClient } from "../../gen/chat/internal/v1/notifier.js";
import type { UserEvent } from "../../gen/chat/internal/v1/store.js";
import { Event, type Message, type Receipt, type TypingUpdate } from "../../gen/chat/v1/client.js";
import { context, type Context } from "@opentelemetry/api";
import { inBatchSpan } from "../telemetry/messaging.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";
import { call } from "../grpc/client.js";
import { BATCH_MAX_BYTES, ITEM_OVERHEAD_BYTES, textBytes } from "../grpc/message-size.js";
import type { Logger } from "../log/logger.js";
import type { Route, RouteIndex, RouteSeen } from "../routes/route-index.js";
import { seenVersions, type RouteVersionsSeen } from "../routes/route-cache.js";
import type { ConversationInfo } from "./directory.js";
import { sleep } from "../run/sleep.js";
import { byPushShard, pushShardHeader } from "../grpc/push-shard.js";
import { NotifierFeed } from "./push-signals.js";

type MessageItem = { message: Message; atMs: number; memberIds: string[]; positions: number[]; info: ConversationInfo; routes?: RouteVersionsSeen };

/** What an event adds to a Deliver request: a message's text is measured, other (rare, small) events encoded. */
function eventBytes(ev: Event): number {
  if (ev.kind?.$case === "message") return textBytes(ev.kind.value.text) + ITEM_OVERHEAD_BYTES;
  return Event.encode(ev).finish().length + ITEM_OVERHEAD_BYTES;
}

/** Events that are the same for every user they go to (edits, deletions): what identifies one. */
function sharedKey(ev: Event): string | undefined {
  const k = ev.kind;
  if (k?.$case === "edited") return `edited\u0000${k.value.conversationId}\u0000${k.value.seq}\u0000${k.value.editedAtMs}`;
  if (k?.$case === "deleted") return `deleted\u0000${k.value.conversationId}\u0000${k.value.seq}\u0000${k.value.forEveryone}\u0000${k.value.actorId}`;
  return undefined;
}

/** Protobuf framing, position and index of one delivery target, besides its user id. */
const TARGET_OVERHEAD_BYTES = 24;

/**
 * One edge's delivery cut into requests of about `maxBytes` at most, in event
 * order: a batch of large messages never makes one Deliver past gRPC's limit
 * (which would fail it whole, every other user's events included). Only events
 * some target refers to are carried, and an event travels with all its targets
 * (always at least one event per request). Receipts and presence, small, go in
 * the first request.
 */
export function splitDelivery(req: DeliverRequest, maxBytes = BATCH_MAX_BYTES): DeliverRequest[] {
  const targetsOf = new Map<number, DeliveryTarget[]>();
  for (const t of req.targets) {
    let list = targetsOf.get(t.eventIndex);
    if (!list) targetsOf.set(t.eventIndex, (list = []));
    list.push(t);
  }
  const parts: DeliverRequest[] = [{ events: [], targets: [], receipts: req.receipts, presence: req.presence, typing: req.typing }];
  let bytes = 0;
  for (const [index, targets] of [...targetsOf].sort((a, b) => a[0] - b[0])) {
    const event = req.events[index]!;
    const size = eventBytes(event) + targets.reduce((n, t) => n + t.userId.length + TARGET_OVERHEAD_BYTES, 0);
    let part = parts[parts.length - 1]!;
    if (part.events.length > 0 && bytes + size > maxBytes) {
      parts.push((part = { events: [], targets: [], receipts: [], presence: [], typing: [] }));
      bytes = 0;
    }
    const k = part.events.length;
    part.events.push(event);
    for (const t of targets) part.targets.push({ ...t, eventIndex: k });
    bytes += size;
  }
  return parts;
}

export interface EdgeClients {
  get(address: string): EdgeDeliveryServiceClient;
}

/**
 * Live delivery after a write is durable: look up routes, send each edge one
 * batch, and tell the notifier about the members' devices with no live session
 * (one call per push shard per batch). Failures here never fail the send (the
 * message is stored; devices catch up by cursor).
 */
export class Fanout {
  /** Messages, uses (sends, typing) and reads for the notifier, which pushes, holds and updates pushes with them. */
  readonly pushes: NotifierFeed;

  constructor(
    private readonly routes: RouteIndex,
    private readonly edges: EdgeClients,
    private readonly notifier: NotifierServiceClient,
    private readonly log: Logger,
    pushOptions: { windowMs: number; callPerShard: boolean } = { windowMs: 100, callPerShard: true },
  ) {
    this.pushes = new NotifierFeed((shard, req) => call(notifier, notifier.notifyBatch, req, 5_000, shard === undefined ? undefined : pushShardHeader(shard)), log, pushOptions);
  }

  private pending: Array<{ items: MessageItem[]; ctx: Context }> = [];
  private scheduled = false;

  /**
   * Messages just appended, each with the members' log positions. Everything one
   * store write made durable is resolved in the same tick, so the deliveries of
   * a whole batch go out together: one route lookup and one call per edge.
   * Nothing to await: a delivery that fails is logged here, and devices catch up
   * from the store (on their next event, or the edge's head check).
   */
  messages(items: MessageItem[]): void {
    this.pending.push({ items, ctx: context.active() });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch = this.pending;
        this.pending = [];
        // The batch's calls join the first message's trace and link every other message's.
        const started = performance.now();
        void inBatchSpan("chat.fanout", batch.map((b) => b.ctx), { "meshchat.batch.messages": batch.length }, () =>
          this.deliverMessages(batch.flatMap((b) => b.items)).finally(() => ChatMetrics.get().fanoutDuration.record(secondsSince(started))),
        ).catch((err) => this.log.warn("fanout failed", { err }));
      });
    }
  }

  private async deliverMessages(items: MessageItem[]): Promise<void> {
    const userIds = [...new Set(items.flatMap((i) => i.memberIds))];
    // The store's answers carry the members' route versions: routes held under them are exact.
    const routes = await this.lookup(userIds, seenVersions(items));
    if (!routes) return;
    const events: Event[] = items.map((i) => ({ pos: 0, atMs: i.atMs, kind: { $case: "message", value: i.message } }));
    const targets: DeliveryTarget[] = [];
    items.forEach((item, index) => item.memberIds.forEach((userId, k) => targets.push({ userId, pos: item.positions[k]!, eventIndex: index })));
    await this.sendToEdges(routes, { events, targets, receipts: [], presence: [], typing: [] });
    // Every member, not only those with no online device: a phone gets a push while the
    // desktop is connected, held while the desktop is in use (the notifier decides).
    const onlineDevices = new Map<string, string[]>();
    for (const r of routes) onlineDevices.set(r.userId, [...(onlineDevices.get(r.userId) ?? []), r.deviceId]);
    this.pushes.messages(items, onlineDevices);
  }

  /** A message deleted for everyone: its pushes that have not gone out are dropped. */
  withdrawPush(conversationId: string, seq: number, userIds: string[]): void {
    this.pushes.withdraw(conversationId, seq);
    for (const [shard, mine] of byPushShard(userIds, (u) => u)) {
      call(this.notifier, this.notifier.withdraw, { conversationId, seq, userIds: mine }, 5_000, pushShardHeader(shard)).catch((err) => this.log.warn("push withdrawal failed", { err }));
    }
  }

  /** Events with per-user positions (membership changes, read markers). */
  async userEvents(events: UserEvent[]): Promise<void> {
    if (events.length === 0) return;
    const routes = await this.lookup([...new Set(events.map((e) => e.userId))]);
    if (!routes) return;
    // An edit or deletion is the same payload for every member (an edit may carry 100,000
    // characters): one copy, a target per member. Membership changes and read markers are rare
    // and small: one payload per user keeps them simple.
    const shared: Event[] = [];
    const indexOf = new Map<string, number>();
    const targets: DeliveryTarget[] = events.map((e, i) => {
      const key = sharedKey(e.event!) ?? `#${i}`;
      let index = indexOf.get(key);
      if (index === undefined) {
        indexOf.set(key, (index = shared.length));
        shared.push({ ...e.event!, pos: 0 });
      }
      return { userId: e.userId, pos: e.event!.pos, eventIndex: index };
    });
    await this.sendToEdges(routes, { events: shared, targets, receipts: [], presence: [], typing: [] });
  }

  async receipts(items: Array<{ receipt: Receipt; userIds: string[] }>): Promise<void> {
    const routes = await this.lookup([...new Set(items.flatMap((i) => i.userIds))]);
    if (!routes) return;
    const receipts: ReceiptDelivery[] = items.map((i) => ({ userIds: i.userIds, receipt: i.receipt }));
    await this.sendToEdges(routes, { events: [], targets: [], receipts, presence: [], typing: [] });
  }

  private pendingTyping: TypingDelivery[] = [];

  /**
   * Typing indicators: ephemeral, so no retry beyond the route lookup's and no
   * notifier. Those of one tick share one route lookup and one call per edge.
   */
  typing(item: TypingDelivery): void {
    this.pendingTyping.push(item);
    if (this.pendingTyping.length > 1) return;
    setImmediate(() => {
      const typing = this.pendingTyping;
      this.pendingTyping = [];
      void (async () => {
        const routes = await this.lookup([...new Set(typing.flatMap((t) => t.userIds))]);
        if (!routes) return;
        await this.sendToEdges(routes, { events: [], targets: [], receipts: [], presence: [], typing });
      })().catch((err) => this.log.warn("typing fanout failed", { err }));
    });
  }

  /**
   * An online device only learns of an event it was not sent when a later one
   * shows the gap, so a failed lookup or delivery is retried a few times before
   * it is left to the device's next reconnect.
   */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 3) {
          this.log.warn(`${what} failed; devices will catch up on their next event or reconnect`, { err });
          return null;
        }
        await sleep(50 * attempt);
      }
    }
  }

  private lookup(userIds: string[], seen?: ReadonlyMap<string, RouteSeen>): Promise<Route[] | null> {
    return this.retry("route lookup", () => this.routes.lookup(userIds, seen));
  }

  /** Deliver calls to each edge holding any of the users, carrying only what concerns them, cut by bytes. */
  private async sendToEdges(routes: Route[], req: DeliverRequest): Promise<void> {
    const usersByEdge = new Map<string, Set<string>>();
    for (const r of routes) {
      let s = usersByEdge.get(r.edgeAddress);
      if (!s) usersByEdge.set(r.edgeAddress, (s = new Set()));
      s.add(r.userId);
    }
    await Promise.all(
      [...usersByEdge].map(async ([address, users]) => {
        const edgeReq: DeliverRequest = {
          events: req.events,
          targets: req.targets.filter((t) => users.has(t.userId)),
          receipts: req.receipts.map((r) => ({ ...r, userIds: r.userIds.filter((u) => users.has(u)) })).filter((r) => r.userIds.length > 0),
          presence: [],
          typing: req.typing.map((t) => ({ ...t, userIds: t.userIds.filter((u) => users.has(u)) })).filter((t) => t.userIds.length > 0),
        };
        const edge = this.edges.get(address);
        // In order, one after the other: a session sends positions in order and fetches any gap.
        for (const part of splitDelivery(edgeReq)) {
          // Delivering twice is harmless: a session drops positions it has already sent.
          await this.retry(`deliver to edge ${address}`, () => call(edge, edge.deliver, part, 3_000));
        }
      }),
    );
  }
}
