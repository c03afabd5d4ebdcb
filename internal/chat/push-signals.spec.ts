import { describe, expect, it } from "vitest";
import type { ActivityRequest } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { pushShard } from "../grpc/push-shard.js";
import { Logger } from "../log/logger.js";
import { notifyBatches, PushSignals } from "./push-signals.js";
import type { ConversationInfo } from "./directory.js";

const msg = (seq: number, text: string, senderId = "alice"): Message => ({
  conversationId: "c", seq, senderId, senderDeviceId: "laptop", clientMsgId: `m${seq}`, text, sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0,
});
// Two users in different push shards, so the notifier replica of each gets its own calls.
const bob = "bob";
const other = Array.from({ length: 100 }, (_, i) => `carol-${i}`).find((u) => pushShard(u) !== pushShard(bob))!;
const info: ConversationInfo = {
  conversation: { id: "c", kind: 1, title: "", members: [], createdAtMs: 1 } as never,
  memberIds: ["alice", bob, other],
  muted: new Set([other]),
  usernames: new Map([["alice", "Alice"]]),
  blocks: new Set(),
  deleted: new Set(),
};

describe("notifyBatches", () => {
  it("names every recipient but the sender with the devices that have a live session, one batch per push shard, cut by bytes", () => {
    const online = new Map([[bob, ["bob-desktop"]], ["alice", ["laptop"]]]);
    const items = Array.from({ length: 10 }, (_, i) => ({ message: msg(i + 1, "é".repeat(2_000)), info }));
    const batches = notifyBatches(items, online, 10_000);
    for (const [user, shard] of [[bob, pushShard(bob)], [other, pushShard(other)]] as const) {
      const mine = batches.filter((b) => b.shard === shard);
      expect(mine.length).toBeGreaterThan(2);
      const all = mine.flatMap((b) => b.request.notifications);
      expect(all.map((n) => n.message!.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(all.every((n) => n.recipients.length === 1 && n.recipients[0]!.userId === user)).toBe(true);
    }
    const first = batches.find((b) => b.shard === pushShard(bob))!.request.notifications[0]!;
    expect(first).toMatchObject({ senderName: "Alice", conversationTitle: "", recipients: [{ userId: bob, muted: false, onlineDeviceIds: ["bob-desktop"] }] });
    expect(batches.find((b) => b.shard === pushShard(other))!.request.notifications[0]!.recipients).toEqual([{ userId: other, muted: true, onlineDeviceIds: [] }]);
    expect(notifyBatches([{ message: msg(1, "hi"), info }], online)).toHaveLength(2);
  });

  it("leaves out members in a block with the sender (either way) and deleted accounts", () => {
    const recipients = (i: ConversationInfo, sender: string) =>
      notifyBatches([{ message: { ...msg(1, "hi"), senderId: sender }, info: i }], new Map()).flatMap((b) => b.request.notifications.flatMap((n) => n.recipients.map((r) => r.userId)));
    expect(recipients({ ...info, blocks: new Set([`${bob}\u0000alice`]) }, "alice")).toEqual([other]);
    expect(recipients({ ...info, blocks: new Set([`alice\u0000${bob}`]) }, "alice")).toEqual([other]);
    expect(recipients({ ...info, deleted: new Set([other]) }, "alice")).toEqual([bob]);
  });
});

describe("PushSignals", () => {
  it("sends the uses and reads of one tick in one call per push shard, each read pointer at its highest", async () => {
    const calls: Array<{ shard: number; req: ActivityRequest }> = [];
    const s = new PushSignals(async (shard, req) => { calls.push({ shard, req }); }, new Logger("test"));
    s.used(bob);
    s.used(bob);
    s.readMoved(bob, "c", 4);
    s.readMoved(bob, "c", 7);
    s.readMoved(bob, "c", 5);
    s.readMoved(other, "c", 2);
    expect(calls).toEqual([]);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(calls.sort((a, b) => a.shard - b.shard)).toEqual([
      { shard: pushShard(bob), req: { activeUserIds: [bob], reads: [{ userId: bob, conversationId: "c", readSeq: 7 }] } },
      { shard: pushShard(other), req: { activeUserIds: [], reads: [{ userId: other, conversationId: "c", readSeq: 2 }] } },
    ].sort((a, b) => a.shard - b.shard));
  });

  it("a failed call is logged, not thrown at anyone", async () => {
    const warnings: string[] = [];
    const log = new Logger("test");
    log.warn = (m: string) => { warnings.push(m); };
    const s = new PushSignals(async () => { throw new Error("notifier down"); }, log);
    s.used(bob);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(warnings).toEqual(["push signals failed; pushes are sent as if nobody were looking"]);
  });
});
