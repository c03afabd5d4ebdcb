import { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import { call } from "../grpc/client.js";
import type { Route, RouteIndex } from "./route-index.js";

/**
 * Routes kept by the presence service, which already tracks every connection.
 * Use it in the embedded profile, where no etcd runs; production reads etcd.
 */
export class PresenceRouteIndex implements RouteIndex {
  constructor(private readonly presence: PresenceServiceClient) {}

  async lookup(userIds: string[]): Promise<Route[]> {
    if (userIds.length === 0) return [];
    const res = await call(this.presence, this.presence.getRoutes, { userIds }, 2_000);
    return res.routes;
  }

  async close(): Promise<void> {}
}
