import { describe, expect, it } from "vitest";
import type { PresenceServiceClient, Route } from "../../gen/chat/internal/v1/presence.js";
import { PresenceRouteIndex } from "./route-index-presence.js";

const route = (userId: string, edgeId: string): Route => ({ userId, deviceId: "d", sessionId: `s-${edgeId}`, edgeId, edgeAddress: `${edgeId}:1` });

/** A presence client that answers GetRoutes from a fixed list (what presence would hold). */
function presenceHolding(routes: Route[], asked: string[][]): PresenceServiceClient {
  const getRoutes = (req: { userIds: string[] }, _md: unknown, _opts: unknown, cb: (err: Error | null, res: { routes: Route[] }) => void) => {
    asked.push(req.userIds);
    cb(null, { routes: routes.filter((r) => req.userIds.includes(r.userId)) });
  };
  return { getRoutes, getChannel: () => ({ getTarget: () => "presence:1" }) } as unknown as PresenceServiceClient;
}

describe("PresenceRouteIndex", () => {
  it("asks presence for the users' routes, once per lookup, and none for no users", async () => {
    const asked: string[][] = [];
    const index = new PresenceRouteIndex(presenceHolding([route("u1", "edge-1"), route("u2", "edge-2")], asked));
    expect(await index.lookup(["u1", "u2"])).toEqual([route("u1", "edge-1"), route("u2", "edge-2")]);
    expect(await index.lookup([])).toEqual([]);
    expect(asked).toEqual([["u1", "u2"]]);
  });

  it("drops routes to an edge that left the live set: presence keeps them until the devices' heartbeats lapse", async () => {
    const live = new Set(["edge-1"]);
    const index = new PresenceRouteIndex(presenceHolding([route("u1", "edge-1"), route("u1", "edge-dead")], []), (id) => live.has(id));
    expect(await index.lookup(["u1"])).toEqual([route("u1", "edge-1")]);
    live.add("edge-dead");
    expect((await index.lookup(["u1"])).map((r) => r.edgeId)).toEqual(["edge-1", "edge-dead"]);
  });
});
