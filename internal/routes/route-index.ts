import type { Route } from "../../gen/chat/internal/v1/presence.js";

export type { Route };

/** A user's route version as a store answer carried it (route-versions.ts). */
export interface RouteSeen {
  epoch: number;
  version: number;
}

/**
 * Where each online device is: (user, device) -> edge. Routes are hints: a
 * message is stored before it is delivered, and devices catch up by cursor, so a
 * stale or missing route delays a message but never loses one.
 */
export interface RouteIndex {
  /**
   * `seen`: route versions the store answered for some of the users (route-cache.ts), which a
   * cache may answer from; an index that keeps nothing ignores them.
   */
  lookup(userIds: string[], seen?: ReadonlyMap<string, RouteSeen>): Promise<Route[]>;
  close(): Promise<void>;
}
