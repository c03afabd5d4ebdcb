import type { CommonConfig } from "../config/config.js";
import { int, oneOf, str } from "../config/env.js";
import type { Logger } from "../log/logger.js";
import type { Discovery } from "./discovery.js";
import { etcdAccess, EtcdDiscovery } from "./discovery-etcd.js";
import { StaticDiscovery } from "./discovery-static.js";
import { useDiscoveryForChannels } from "./grpc-resolver.js";

export const DISCOVERY_BACKENDS = ["static", "etcd"] as const;

/** DISCOVERY: static (embedded default: *_ADDRS) or etcd (production default: ETCD_ENDPOINTS). */
export async function openDiscovery(config: CommonConfig, log: Logger): Promise<Discovery> {
  const backend = oneOf("DISCOVERY", config.profile === "embedded" ? "static" : "etcd", DISCOVERY_BACKENDS);
  const discovery: Discovery = backend === "static"
    ? new StaticDiscovery(config)
    : await EtcdDiscovery.open({ endpoints: config.etcdEndpoints, prefix: etcdPrefix(), leaseTtlSeconds: int("DISCOVERY_LEASE_TTL_S", 5, 2, 600), access: etcdAccess() }, log);
  useDiscoveryForChannels(discovery);
  return discovery;
}

/** ETCD_PREFIX: the root of this installation's keys. Default /meshchat/. */
export function etcdPrefix(): string {
  const p = str("ETCD_PREFIX", "/meshchat/");
  return p.endsWith("/") ? p : `${p}/`;
}
