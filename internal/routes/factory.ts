import type { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import type { CommonConfig } from "../config/config.js";
import { ConfigError, oneOf, unknownChoice } from "../config/env.js";
import type { EtcdKeyspace } from "../discovery/etcd-keyspace.js";
import { EtcdRouteIndex } from "./route-index-etcd.js";
import { PresenceRouteIndex } from "./route-index-presence.js";
import type { RouteIndex } from "./route-index.js";
import { EtcdRouteRegistry } from "./route-registry-etcd.js";
import { PresenceRouteRegistry, type RouteRegistry } from "./route-registry.js";

export const ROUTE_BACKENDS = ["presence", "etcd"] as const;

/**
 * ROUTES: where (user, device) -> edge routes live. presence (embedded default):
 * the presence service records them as devices connect. etcd (production default):
 * under each edge's lease, in the keyspace discovery opened (DISCOVERY=etcd).
 */
function routeBackend(config: CommonConfig): (typeof ROUTE_BACKENDS)[number] {
  return oneOf("ROUTES", config.profile === "embedded" ? "presence" : "etcd", ROUTE_BACKENDS);
}

function requireEtcd(etcd: EtcdKeyspace | undefined): EtcdKeyspace {
  if (!etcd) throw new ConfigError("ROUTES=etcd needs DISCOVERY=etcd: routes live under the process's etcd lease");
  return etcd;
}

export async function openRouteIndex(config: CommonConfig, etcd: EtcdKeyspace | undefined, presence: () => PresenceServiceClient): Promise<RouteIndex> {
  const backend = routeBackend(config);
  switch (backend) {
    case "presence":
      return new PresenceRouteIndex(presence());
    case "etcd": {
      const space = requireEtcd(etcd);
      return EtcdRouteIndex.open(space.client, space.prefix);
    }
    default:
      return unknownChoice("route backend", backend);
  }
}

export function routeRegistry(config: CommonConfig, etcd: EtcdKeyspace | undefined): RouteRegistry {
  const backend = routeBackend(config);
  switch (backend) {
    case "presence":
      return new PresenceRouteRegistry();
    case "etcd": {
      const space = requireEtcd(etcd);
      return new EtcdRouteRegistry(space.session, space.prefix);
    }
    default:
      return unknownChoice("route backend", backend);
  }
}
