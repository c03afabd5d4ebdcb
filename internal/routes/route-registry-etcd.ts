import type { EtcdSession } from "../discovery/etcd-session.js";
import type { Route } from "./route-index.js";
import type { RouteRegistry } from "./route-registry.js";

export function routeKey(prefix: string, userId: string, deviceId: string): string {
  return `${prefix}routes/${userId}/${deviceId}`;
}

/**
 * Routes under the edge's own lease: `<prefix>routes/<user>/<device>` -> Route.
 * If the edge dies its lease expires and every route it held goes with it; if
 * it only lost etcd for a while, the session writes them all again.
 */
export class EtcdRouteRegistry implements RouteRegistry {
  constructor(private readonly session: EtcdSession, private readonly prefix: string) {}

  async add(route: Route): Promise<void> {
    await this.session.put(routeKey(this.prefix, route.userId, route.deviceId), JSON.stringify(route));
  }

  /** Removes the route only if it is still this session's (a takeover elsewhere may have replaced it). */
  async remove(route: Route): Promise<void> {
    const key = routeKey(this.prefix, route.userId, route.deviceId);
    if (this.session.valueOf(key) === JSON.stringify(route)) await this.session.delete(key);
  }
}
