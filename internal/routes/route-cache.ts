import { trimOldest } from "../run/trim-oldest.js";
import type { Route, RouteIndex, RouteSeen } from "./route-index.js";

/** The members' route versions in one store answer (AppendGroupResult.route_epoch / route_versions). */
export interface RouteVersionsSeen {
  /** 0: the store keeps no versions. */
  epoch: number;
  /** In the order of the members the answer was for. */
  versions: number[];
}

/** (user -> version) from answers, for RouteIndex.lookup; users seen under two epochs are left out (looked up). */
export function seenVersions(answers: Array<{ memberIds: string[]; routes?: RouteVersionsSeen }>): Map<string, RouteSeen> {
  const seen = new Map<string, RouteSeen>();
  const mixed = new Set<string>();
  for (const a of answers) {
    if (!a.routes || a.routes.epoch === 0) continue;
    const { epoch, versions } = a.routes;
    a.memberIds.forEach((u, i) => {
      const version = versions[i];
      if (version === undefined || mixed.has(u)) return;
      const s = seen.get(u);
      if (!s) seen.set(u, { epoch, version });
      else if (s.epoch !== epoch) {
        seen.delete(u);
        mixed.add(u);
      } else if (version > s.version) s.version = version; // one keeper counts up: the larger is the later
    });
  }
  return seen;
}

export interface RouteCacheOptions {
  /** How long a user's routes are used, at most, while their version stays: bounds a route whose disconnect never reached the store. 0: no cache. */
  ttlMs: number;
  maxUsers: number;
  /** Routes to an edge that left the live set are not used (as PresenceRouteIndex does when it fetches). */
  edgeIsLive?: (edgeId: string) => boolean;
  now?: () => number;
}

interface Entry {
  epoch: number;
  version: number;
  routes: Route[];
  /** When the fetch began: the entry's age counts from before presence answered. */
  at: number;
}

/**
 * Routes per user, reused while the store answers the version they were fetched under
 * (route-versions.ts says why that is exact): a 1:1 message whose members' devices did not
 * come or go since the last one costs no call to presence. A user with no device online is kept
 * too (no routes): the next connect moves the version. Lookups with no versions (receipts,
 * typing, membership events, a store that keeps none) go to presence as before.
 */
export class RouteCache implements RouteIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly index: RouteIndex, private readonly options: RouteCacheOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  async lookup(userIds: string[], seen?: ReadonlyMap<string, RouteSeen>): Promise<Route[]> {
    if (!seen || seen.size === 0 || this.options.ttlMs <= 0) return this.index.lookup(userIds);
    const now = this.now();
    const live = this.options.edgeIsLive ?? (() => true);
    const routes: Route[] = [];
    const missing: string[] = [];
    for (const u of userIds) {
      const s = seen.get(u);
      const e = s && this.entries.get(u);
      if (s && e && e.epoch === s.epoch && e.version === s.version && now - e.at < this.options.ttlMs) {
        for (const r of e.routes) if (live(r.edgeId)) routes.push(r);
      } else {
        missing.push(u);
      }
    }
    if (missing.length === 0) return routes;
    const fetched = await this.index.lookup(missing);
    const byUser = new Map<string, Route[]>();
    for (const r of fetched) {
      let list = byUser.get(r.userId);
      if (!list) byUser.set(r.userId, (list = []));
      list.push(r);
    }
    for (const u of missing) {
      const s = seen.get(u);
      if (!s) continue;
      this.entries.delete(u);
      this.entries.set(u, { epoch: s.epoch, version: s.version, routes: byUser.get(u) ?? [], at: now });
    }
    trimOldest(this.entries, this.options.maxUsers);
    routes.push(...fetched);
    return routes;
  }

  async close(): Promise<void> {
    await this.index.close();
  }
}
