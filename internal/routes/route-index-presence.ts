import { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import { call } from "../grpc/client.js";
import type { Route, RouteIndex } from "./route-index.js";

/**
 * Routes kept by the presence service, which already tracks every connection (in memory on
 * the embedded profile, sharded over Redis or Redis Cluster in production). Not cached here:
 * a route a device made a moment ago must get the next message, and one call per fan-out
 * batch (not per message) is what a lookup costs.
 *
 * `edgeIsLive` (dynamic discovery): a dead edge's routes stay in presence until its devices'
 * heartbeats lapse (PRESENCE_TIMEOUT_MS, 45 s); its membership goes with its lease (5 s),
 * so routes to an edge that left the live set are dropped here and nothing is sent to it.
 */
export class PresenceRouteIndex implements RouteIndex {
  constructor(
    private readonly presence: PresenceServiceClient,
    private readonly edgeIsLive: (edgeId: string) => boolean = () => true,
  ) {}

  async lookup(userIds: string[]): Promise<Route[]> {
    if (userIds.length === 0) return [];
    const res = await call(this.presence, this.presence.getRoutes, { userIds }, 2_000);
    return res.routes.filter((r) => this.edgeIsLive(r.edgeId));
  }

  async close(): Promise<void> {}
}
