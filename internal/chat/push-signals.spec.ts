import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { NotifyBatchRequest } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { pushShard } from "../grpc/push-shard.js";
import { Logger } from "../log/logger.js";
import { PUSH_PREVIEW_MAX } from "../notifier/preview.js";
import { NotifierFeed } from "./push-signals.js";
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

/** A feed whose calls are recorded; time is faked, so the window passes when the test says. */
function recorded(maxBytes?: number, fail = false, callPerShard = true) {
  const calls: Array<{ shard: number | undefined; req: NotifyBatchRequest }> = [];
  const warnings: string[] = [];
  const log = new Logger("test");
  log.warn = (m: string) => { warnings.push(m); };
  const feed = new NotifierFeed(async (shard, req) => {
    calls.push({ shard, req });
    if (fail) throw new Error("notifier down");
  }, log, { windowMs: 20, maxBytes, callPerShard });
  const of = (shard: number | undefined) => calls.filter((c) => c.shard === shard).map((c) => c.req);
  return { feed, calls, warnings, of };
}

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe("NotifierFeed", () => {
  it("names every recipient but the sender with the devices that have a live session, one call per push shard per window", async () => {
    const { feed, calls, of } = recorded();
    const online = new Map([[bob, ["bob-desktop"]], ["alice", ["laptop"]]]);
    feed.messages([{ message: msg(1, "hi"), info }], online);
    feed.messages([{ message: msg(2, "again"), info }], online);
    await vi.advanceTimersByTimeAsync(19);
    expect(calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    const [toBob] = of(pushShard(bob));
    expect(toBob!.notifications.map((n) => n.message!.seq)).toEqual([1, 2]);
    expect(toBob!.notifications[0]).toMatchObject({ senderName: "Alice", conversationTitle: "", recipients: [{ userId: bob, muted: false, onlineDeviceIds: ["bob-desktop"] }] });
    expect(of(pushShard(other))[0]!.notifications[0]!.recipients).toEqual([{ userId: other, muted: true, onlineDeviceIds: [] }]);
  });

  it("carries a text cut to the longest preview a push may show", async () => {
    const { feed, calls } = recorded(undefined, false, false);
    feed.messages([{ message: msg(1, "😀".repeat(100_000)), info }, { message: msg(2, "short"), info }], new Map());
    await vi.advanceTimersByTimeAsync(20);
    expect(calls[0]!.req.notifications.map((n) => n.message!.text)).toEqual(["😀".repeat(PUSH_PREVIEW_MAX) + "…", "short"]);
  });

  it("cuts a window's notifications by bytes, in order", async () => {
    const { feed, of } = recorded(4_000);
    for (let i = 1; i <= 10; i++) feed.messages([{ message: msg(i, "é".repeat(800)), info }], new Map());
    await vi.advanceTimersByTimeAsync(20);
    for (const [user, shard] of [[bob, pushShard(bob)], [other, pushShard(other)]] as const) {
      const mine = of(shard);
      expect(mine.length).toBeGreaterThan(2);
      const all = mine.flatMap((r) => r.notifications);
      expect(all.map((n) => n.message!.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(all.every((n) => n.recipients.length === 1 && n.recipients[0]!.userId === user)).toBe(true);
    }
  });

  it("leaves out members in a block with the sender (either way) and deleted accounts", async () => {
    const recipients = async (i: ConversationInfo, sender: string) => {
      const { feed, calls } = recorded();
      feed.messages([{ message: { ...msg(1, "hi"), senderId: sender }, info: i }], new Map());
      await vi.advanceTimersByTimeAsync(20);
      return calls.flatMap((c) => c.req.notifications.flatMap((n) => n.recipients.map((r) => r.userId)));
    };
    expect(await recipients({ ...info, blocks: new Set([`${bob}\u0000alice`]) }, "alice")).toEqual([other]);
    expect(await recipients({ ...info, blocks: new Set([`alice\u0000${bob}`]) }, "alice")).toEqual([other]);
    expect(await recipients({ ...info, deleted: new Set([other]) }, "alice")).toEqual([bob]);
  });

  it("sends a window's uses and reads in the same call as its messages, each user once and each read pointer at its highest", async () => {
    const { feed, calls, of } = recorded();
    feed.used(bob);
    feed.messages([{ message: msg(9, "hi"), info }], new Map());
    feed.used(bob);
    feed.readMoved(bob, "c", 4);
    feed.readMoved(bob, "c", 7);
    feed.readMoved(bob, "c", 5);
    feed.readMoved(other, "c", 2);
    await vi.advanceTimersByTimeAsync(20);
    expect(calls).toHaveLength(2);
    expect(of(pushShard(bob))[0]!.activity).toEqual({ activeUserIds: [bob], reads: [{ userId: bob, conversationId: "c", readSeq: 7 }] });
    expect(of(pushShard(bob))[0]!.notifications.map((n) => n.message!.seq)).toEqual([9]);
    expect(of(pushShard(other))[0]!.activity).toEqual({ activeUserIds: [], reads: [{ userId: other, conversationId: "c", readSeq: 2 }] });
  });

  it("with one notifier (no sidecars), one call per window carries every shard, with no shard header", async () => {
    const { feed, calls } = recorded(undefined, false, false);
    feed.used("alice");
    feed.messages([{ message: msg(1, "hi"), info }], new Map());
    feed.readMoved(bob, "c", 1);
    await vi.advanceTimersByTimeAsync(20);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.shard).toBeUndefined();
    expect(calls[0]!.req.notifications[0]!.recipients.map((r) => r.userId)).toEqual([bob, other]);
    expect(calls[0]!.req.activity).toEqual({ activeUserIds: ["alice"], reads: [{ userId: bob, conversationId: "c", readSeq: 1 }] });
  });

  it("a message deleted for everyone is never sent, whether its window holds it or it comes after the deletion", async () => {
    const { feed, calls } = recorded(undefined, false, false);
    feed.messages([{ message: msg(1, "kept"), info }, { message: msg(2, "oops"), info }], new Map());
    feed.withdraw("c", 2);
    feed.withdraw("c", 3);
    feed.messages([{ message: msg(3, "overtaken"), info }], new Map());
    await vi.advanceTimersByTimeAsync(20);
    expect(calls.flatMap((c) => c.req.notifications.map((n) => n.message!.text))).toEqual(["kept"]);
  });

  it("flushAll sends what the windows hold at once (a draining chat loses no push)", async () => {
    const { feed, calls } = recorded();
    feed.messages([{ message: msg(1, "hi"), info }], new Map());
    await feed.flushAll();
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(2);
  });

  it("a failed call is logged once per outage, not thrown at anyone", async () => {
    const { feed, warnings } = recorded(undefined, true);
    feed.used(bob);
    await vi.advanceTimersByTimeAsync(20);
    feed.used(bob);
    await vi.advanceTimersByTimeAsync(20);
    expect(warnings).toEqual(["notifier call failed; its pushes are dropped and the next are sent as if nobody were looking"]);
  });
});
