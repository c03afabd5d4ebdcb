import type { CommonConfig } from "../config/config.js";
import { int, oneOf, str, unknownChoice } from "../config/env.js";
import type { Logger } from "../log/logger.js";
import type { Discovery } from "./discovery.js";
import { EtcdDiscovery } from "./discovery-etcd.js";
import { etcdAccess, EtcdKeyspace } from "./etcd-keyspace.js";
import { StaticDiscovery } from "./discovery-static.js";
import { useDiscoveryForChannels } from "./grpc-resolver.js";

export const DISCOVERY_BACKENDS = ["static", "etcd"] as const;

/** What a process knows of the mesh. */
export interface Membership {
  discovery: Discovery;
}

/** DISCOVERY: static (embedded default: *_ADDRS) or etcd (production default: ETCD_ENDPOINTS). */
export async function openDiscovery(config: CommonConfig, log: Logger): Promise<Membership> {
  const backend = oneOf("DISCOVERY", config.profile === "embedded" ? "static" : "etcd", DISCOVERY_BACKENDS);
  let membership: Membership;
  switch (backend) {
    case "static":
      membership = { discovery: new StaticDiscovery(config) };
      break;
    case "etcd": {
      const etcd = await EtcdKeyspace.open({ endpoints: config.etcdEndpoints, prefix: etcdPrefix(), leaseTtlSeconds: int("DISCOVERY_LEASE_TTL_S", 5, 2, 600), access: etcdAccess() }, log);
      membership = { discovery: await EtcdDiscovery.open(etcd) };
      break;
    }
    default:
      return unknownChoice("discovery backend", backend);
  }
  useDiscoveryForChannels(membership.discovery);
  return membership;
}

/** ETCD_PREFIX: the root of this installation's keys. Default /meshchat/. */
export function etcdPrefix(): string {
  const p = str("ETCD_PREFIX", "/meshchat/");
  return p.endsWith("/") ? p : `${p}/`;
}
