import type { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import type { Discovery } from "../discovery/discovery.js";
import { EtcdDiscovery } from "../discovery/discovery-etcd.js";
import { EtcdRouteIndex } from "./route-index-etcd.js";
import { PresenceRouteIndex } from "./route-index-presence.js";
import type { RouteIndex } from "./route-index.js";
import { EtcdRouteRegistry } from "./route-registry-etcd.js";
import { PresenceRouteRegistry, type RouteRegistry } from "./route-registry.js";

/** Routes live where discovery does: etcd in production, the presence service when embedded. */
export async function openRouteIndex(discovery: Discovery, presence: () => PresenceServiceClient): Promise<RouteIndex> {
  return discovery instanceof EtcdDiscovery ? EtcdRouteIndex.open(discovery.client, discovery.prefix) : new PresenceRouteIndex(presence());
}

export function routeRegistry(discovery: Discovery): RouteRegistry {
  return discovery instanceof EtcdDiscovery ? new EtcdRouteRegistry(discovery.session, discovery.prefix) : new PresenceRouteRegistry();
}
