import { afterEach, describe, expect, it, vi } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { PresencePublisher } from "./publisher.js";

const route = (userId: string, edgeAddress: string) => ({ userId, deviceId: "d", sessionId: `s-${userId}`, edgeId: edgeAddress, edgeAddress });
const ONLINE = PresenceStatus.PRESENCE_STATUS_ONLINE;
const OFFLINE = PresenceStatus.PRESENCE_STATUS_OFFLINE;

describe("presence publisher", () => {
  afterEach(() => { vi.useRealTimers(); });

  it("sends each edge one call per window with the latest status of each user", async () => {
    vi.useFakeTimers();
    const calls: Array<{ edge: string; deliveries: Array<{ userIds: string[]; update: { userId: string; status: PresenceStatus } }> }> = [];
    const p = new PresencePublisher(async (edge, deliveries) => { calls.push({ edge, deliveries }); }, 50);
    p.publish({ userId: "alice", status: ONLINE, lastActiveAtMs: 1 }, [route("bob", "e1"), route("carol", "e2")]);
    p.publish({ userId: "dave", status: ONLINE, lastActiveAtMs: 1 }, [route("bob", "e1")]);
    p.publish({ userId: "alice", status: OFFLINE, lastActiveAtMs: 2 }, [route("bob", "e1"), route("erin", "e1")]);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(49);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    const byEdge = new Map(calls.map((c) => [c.edge, c.deliveries]));
    expect(calls).toHaveLength(2);
    expect(byEdge.get("e1")).toEqual([
      { userIds: ["bob", "erin"], update: { userId: "alice", status: OFFLINE, lastActiveAtMs: 2 } },
      { userIds: ["bob"], update: { userId: "dave", status: ONLINE, lastActiveAtMs: 1 } },
    ]);
    expect(byEdge.get("e2")).toEqual([{ userIds: ["carol"], update: { userId: "alice", status: ONLINE, lastActiveAtMs: 1 } }]);
  });

  it("flushes what is pending on demand (shutdown) and survives a failing edge", async () => {
    const seen: string[] = [];
    const errors: unknown[] = [];
    const p = new PresencePublisher(async (edge) => { if (edge === "bad") throw new Error("down"); seen.push(edge); }, 10_000, (e) => errors.push(e));
    p.publish({ userId: "alice", status: ONLINE, lastActiveAtMs: 1 }, [route("bob", "bad"), route("carol", "good")]);
    await p.flush();
    expect(seen).toEqual(["good"]);
    expect(errors).toHaveLength(1);
  });
});
