import type { Route } from "./route-index.js";

/**
 * Where an edge records the devices it holds, for the route index to find.
 * Embedded: the presence service already records them (PresenceRouteRegistry
 * is a no-op). Production: etcd, under the edge's lease.
 */
export interface RouteRegistry {
  add(route: Route): Promise<void>;
  remove(route: Route): Promise<void>;
}

/** The presence service keeps routes itself (embedded profile): nothing to do. */
export class PresenceRouteRegistry implements RouteRegistry {
  async add(): Promise<void> {}
  async remove(): Promise<void> {}
}
