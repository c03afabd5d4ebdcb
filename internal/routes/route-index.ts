import type { Route } from "../../gen/chat/internal/v1/presence.js";

export type { Route };

/**
 * Where each online device is: (user, device) -> edge. Routes are hints: a
 * message is stored before it is delivered, and devices catch up by cursor, so a
 * stale or missing route delays a message but never loses one.
 */
export interface RouteIndex {
  lookup(userIds: string[]): Promise<Route[]>;
  close(): Promise<void>;
}
