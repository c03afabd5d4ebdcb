import { describe, expect, it } from "vitest";
import type { DeliverRequest } from "../../gen/chat/internal/v1/edge.js";
import type { Event } from "../../gen/chat/v1/client.js";
import { Logger } from "../log/logger.js";
import { RouteCache } from "../routes/route-cache.js";
import { Fanout, splitDelivery } from "./fanout.js";

const message = (seq: number, text: string): Event => ({
  pos: 0,
  atMs: 1,
  kind: { $case: "message", value: { conversationId: "c", seq, senderId: "a", senderDeviceId: "d", clientMsgId: `m${seq}`, text, sentAtMs: 1, editedAtMs: 0, deleted: false, replyToSeq: 0 } },
});

/** An edge client that records every Deliver it is sent. */
function edgeRecording() {
  const requests: DeliverRequest[] = [];
  const edge = {
    getChannel: () => ({ getTarget: () => "edge-1" }),
    deliver: (req: DeliverRequest, _md: unknown, _opts: unknown, cb: (err: null, res: object) => void) => { requests.push(req); cb(null, {}); },
  };
  return { requests, edge };
}

const seqOf = (e: Event | undefined) => (e?.kind?.$case === "message" ? e.kind.value.seq : 0);

describe("splitDelivery", () => {
  it("cuts one edge's delivery by bytes, keeps event order and each event's targets, and carries only events someone here gets", () => {
    // Twenty 4,000-byte messages for two users, plus one event nobody on this edge gets.
    const events = [...Array.from({ length: 20 }, (_, i) => message(i + 1, "é".repeat(2_000))), message(99, "not for this edge")];
    const req: DeliverRequest = {
      events,
      targets: Array.from({ length: 20 }, (_, i) => [{ userId: "u1", pos: 10 + i, eventIndex: i }, { userId: "u2", pos: 50 + i, eventIndex: i }]).flat(),
      receipts: [{ userIds: ["u1"], receipt: undefined }],
      presence: [],
      typing: [],
    };
    const parts = splitDelivery(req, 10_000);
    expect(parts.length).toBeGreaterThan(5);
    for (const p of parts) {
      const bytes = p.events.reduce((n, e) => n + (e.kind?.$case === "message" ? Buffer.byteLength(e.kind.value.text) : 0), 0);
      if (p.events.length > 1) expect(bytes).toBeLessThanOrEqual(10_000);
    }
    // Every (user, pos) once, in order, pointing at the right message.
    const delivered = parts.flatMap((p) => p.targets.map((t) => ({ user: t.userId, pos: t.pos, seq: seqOf(p.events[t.eventIndex]) })));
    expect(delivered.filter((d) => d.user === "u1")).toEqual(Array.from({ length: 20 }, (_, i) => ({ user: "u1", pos: 10 + i, seq: i + 1 })));
    expect(delivered.filter((d) => d.user === "u2")).toEqual(Array.from({ length: 20 }, (_, i) => ({ user: "u2", pos: 50 + i, seq: i + 1 })));
    expect(parts.flatMap((p) => p.events)).toHaveLength(20);
    // Receipts go once, in the first request.
    expect(parts.flatMap((p) => p.receipts)).toHaveLength(1);
    expect(parts[0]!.receipts).toHaveLength(1);
  });

  it("sends an event larger than the budget alone, and a small delivery as one request", () => {
    const big = splitDelivery({ events: [message(1, "x".repeat(20_000)), message(2, "y")], targets: [{ userId: "u", pos: 1, eventIndex: 0 }, { userId: "u", pos: 2, eventIndex: 1 }], receipts: [], presence: [], typing: [] }, 10_000);
    expect(big.map((p) => p.events.length)).toEqual([1, 1]);
    const small = splitDelivery({ events: [message(1, "a"), message(2, "b")], targets: [{ userId: "u", pos: 1, eventIndex: 0 }, { userId: "u", pos: 2, eventIndex: 1 }], receipts: [], presence: [], typing: [] });
    expect(small).toHaveLength(1);
    expect(small[0]!.targets.map((t) => t.eventIndex)).toEqual([0, 1]);
  });
});

describe("Fanout.userEvents", () => {
  it("carries an edit once for all its members (a target each), and per-user events one each", async () => {
    const { requests, edge } = edgeRecording();
    const users = ["u1", "u2", "u3"];
    const routes = { lookup: async (ids: string[]) => ids.map((userId) => ({ userId, deviceId: "d", sessionId: "s", edgeId: "e", edgeAddress: "edge-1" })) };
    const fanout = new Fanout(routes as never, { get: () => edge as never }, {} as never, new Logger("test"));
    const edited: Event = { pos: 0, atMs: 5, kind: { $case: "edited", value: { conversationId: "c", seq: 3, text: "x".repeat(100_000), editedAtMs: 5 } } };
    const read: Event = { pos: 0, atMs: 5, kind: { $case: "read", value: { conversationId: "c", readSeq: 2 } } };
    await fanout.userEvents([
      ...users.map((userId, i) => ({ userId, event: { ...edited, pos: 10 + i } })),
      { userId: "u1", event: { ...read, pos: 11 } },
      { userId: "u2", event: { ...read, pos: 12 } },
    ]);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.events.map((e) => e.kind?.$case)).toEqual(["edited", "read", "read"]);
    expect(requests[0]!.targets).toEqual([
      { userId: "u1", pos: 10, eventIndex: 0 }, { userId: "u2", pos: 11, eventIndex: 0 }, { userId: "u3", pos: 12, eventIndex: 0 },
      { userId: "u1", pos: 11, eventIndex: 1 }, { userId: "u2", pos: 12, eventIndex: 2 },
    ]);
  });
});

describe("Fanout.messages", () => {
  it("asks presence once for messages whose members' route versions did not move, and again for a member whose did", async () => {
    const { requests, edge } = edgeRecording();
    const asked: string[][] = [];
    const presence = { lookup: async (ids: string[]) => { asked.push(ids); return ids.map((userId) => ({ userId, deviceId: "d", sessionId: "s", edgeId: "e", edgeAddress: "edge-1" })); }, close: async () => {} };
    const notifier = { getChannel: () => ({ getTarget: () => "notifier-1" }), notifyBatch: (_r: unknown, _md: unknown, _o: unknown, cb: (err: null, res: object) => void) => cb(null, {}) };
    const fanout = new Fanout(new RouteCache(presence, { ttlMs: 60_000, maxUsers: 100 }), { get: () => edge as never }, notifier as never, new Logger("test"));
    const info = { conversation: { id: "c", title: "", kind: 0, members: [] }, memberIds: ["a", "b"], muted: new Set<string>(), usernames: new Map(), blocks: new Set<string>(), deleted: new Set<string>() } as never;
    const item = (seq: number, versions: number[]) => {
      const m = message(seq, `m${seq}`).kind;
      if (m?.$case !== "message") throw new Error("a message");
      return { message: m.value, atMs: 1, memberIds: ["a", "b"], positions: [seq, seq], info, routes: { epoch: 9, versions } };
    };
    fanout.messages([item(1, [1, 1])]);
    await expect.poll(() => requests.length).toBe(1);
    fanout.messages([item(2, [1, 1])]);
    await expect.poll(() => requests.length).toBe(2);
    fanout.messages([item(3, [1, 2])]);
    await expect.poll(() => requests.length).toBe(3);
    expect(asked).toEqual([["a", "b"], ["b"]]);
    expect(requests.map((r) => r.targets.map((t) => t.userId))).toEqual([["a", "b"], ["a", "b"], ["a", "b"]]);
    await fanout.pushes.flushAll();
  });
});
