import { describe, expect, it } from "vitest";
import type { ActivityRequest } from "../../gen/chat/internal/v1/notifier.js";
import type { Message } from "../../gen/chat/v1/client.js";
import { Logger } from "../log/logger.js";
import { notifyBatches, PushSignals } from "./push-signals.js";
import type { ConversationInfo } from "./directory.js";

const msg = (seq: number, text: string, senderId = "alice"): Message => ({
  conversationId: "c", seq, senderId, senderDeviceId: "laptop", clientMsgId: `m${seq}`, text, sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0,
});
const info: ConversationInfo = {
  conversation: { id: "c", kind: 1, title: "", members: [], createdAtMs: 1 } as never,
  memberIds: ["alice", "bob", "carol"],
  muted: new Set(["carol"]),
  usernames: new Map([["alice", "Alice"]]),
};

describe("notifyBatches", () => {
  it("names every recipient but the sender with the devices that have a live session, and cuts the batch by bytes", () => {
    const online = new Map([["bob", ["bob-desktop"]], ["alice", ["laptop"]]]);
    const items = Array.from({ length: 10 }, (_, i) => ({ message: msg(i + 1, "é".repeat(2_000)), info }));
    const batches = notifyBatches(items, online, 10_000);
    expect(batches.length).toBeGreaterThan(2);
    const all = batches.flatMap((b) => b.notifications);
    expect(all.map((n) => n.message!.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(all[0]).toMatchObject({
      senderName: "Alice",
      conversationTitle: "",
      recipients: [{ userId: "bob", muted: false, onlineDeviceIds: ["bob-desktop"] }, { userId: "carol", muted: true, onlineDeviceIds: [] }],
    });
    expect(notifyBatches([{ message: msg(1, "hi"), info }], online)).toHaveLength(1);
  });
});

describe("PushSignals", () => {
  it("sends the typing and reads of one tick in one call, each read pointer at its highest", async () => {
    const calls: ActivityRequest[] = [];
    const s = new PushSignals(async (req) => { calls.push(req); }, new Logger("test"));
    s.typed("bob");
    s.typed("bob");
    s.readMoved("bob", "c", 4);
    s.readMoved("bob", "c", 7);
    s.readMoved("bob", "c", 5);
    s.readMoved("carol", "c", 2);
    expect(calls).toEqual([]);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([{ activeUserIds: ["bob"], reads: [{ userId: "bob", conversationId: "c", readSeq: 7 }, { userId: "carol", conversationId: "c", readSeq: 2 }] }]);
  });

  it("a failed call is logged, not thrown at anyone", async () => {
    const warnings: string[] = [];
    const log = new Logger("test");
    log.warn = (m: string) => { warnings.push(m); };
    const s = new PushSignals(async () => { throw new Error("notifier down"); }, log);
    s.typed("bob");
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(warnings).toEqual(["push signals failed; pushes are sent as if nobody were looking"]);
  });
});
