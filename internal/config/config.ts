import path from "node:path";
import { bool, ConfigError, int, list, oneOf, str } from "./env.js";

export const PROFILES = ["embedded", "production"] as const;
export type Profile = (typeof PROFILES)[number];

/** Settings every service shares. Each default is the embedded profile's. */
export interface CommonConfig {
  /** PROFILE: embedded (no servers to install) or production (etcd, Redis, PostgreSQL, Cassandra). */
  profile: Profile;
  /** DATA_DIR: where embedded data, dev keys and certificates live. Default ./var. */
  dataDir: string;
  /** BIND_HOST: interface the gRPC and HTTP servers listen on. Default 127.0.0.1. */
  bindHost: string;
  /** INSTANCE_ID: unique name of this process in the mesh. Default <service>-<port>. */
  instanceId: string;
  /** ADVERTISE_HOST: how other processes reach this one's gRPC port (registered in discovery). Default 127.0.0.1. */
  advertiseHost: string;
  /**
   * MESH_SIDECAR: calls go to the local Envoy sidecar at the *_ADDRS ports, which
   * balances, retries and (ring hash on x-conversation-id) keeps conversation
   * affinity; discovery then only holds membership and routes. Default false.
   */
  meshSidecar: boolean;
  /** Static discovery (embedded): comma-separated host:port lists. */
  chatAddrs: string[];
  storeAddrs: string[];
  presenceAddrs: string[];
  notifierAddrs: string[];
  /** SHUTDOWN_TIMEOUT_MS: hard deadline for draining on SIGTERM. Default 10000. */
  shutdownTimeoutMs: number;
  /** TLS_ENABLED: mutual TLS on every internal hop. Default true. */
  tls: boolean;
  /** CERTS_DIR: ca.pem, <service>.pem, <service>-key.pem (mesh/certs.sh makes a dev set). Default DATA_DIR/certs. */
  certsDir: string;
  /** METRICS_PORT: Prometheus endpoint (0 = off). Default gRPC port + 2000. */
  metricsPort: number;
  /** ETCD_ENDPOINTS, REDIS_URL, POSTGRES_URL, CASSANDRA_CONTACT_POINTS: production servers. */
  etcdEndpoints: string[];
  redisUrl: string;
  /** REDIS_PREFIX: every Redis key and channel of this installation starts with it. Default meshchat:. */
  redisPrefix: string;
  postgresUrl: string;
  cassandraContactPoints: string[];
  cassandraLocalDc: string;
  cassandraKeyspace: string;
}

export const DEFAULT_PORTS = { edgeHttp: 8080, edge: 7101, chat: 7201, presence: 7301, store: 7401, notifier: 7501 } as const;

export function loadCommon(service: string, grpcPort: number): CommonConfig {
  const dataDir = path.resolve(str("DATA_DIR", "var"));
  const common: CommonConfig = {
    profile: oneOf("PROFILE", "embedded", PROFILES),
    dataDir,
    bindHost: str("BIND_HOST", "127.0.0.1"),
    instanceId: str("INSTANCE_ID", `${service}-${grpcPort}`),
    advertiseHost: str("ADVERTISE_HOST", "127.0.0.1"),
    meshSidecar: bool("MESH_SIDECAR", false),
    chatAddrs: list("CHAT_ADDRS", [`127.0.0.1:${DEFAULT_PORTS.chat}`]),
    storeAddrs: list("STORE_ADDRS", [`127.0.0.1:${DEFAULT_PORTS.store}`]),
    presenceAddrs: list("PRESENCE_ADDRS", [`127.0.0.1:${DEFAULT_PORTS.presence}`]),
    notifierAddrs: list("NOTIFIER_ADDRS", [`127.0.0.1:${DEFAULT_PORTS.notifier}`]),
    shutdownTimeoutMs: int("SHUTDOWN_TIMEOUT_MS", 10_000, 100),
    tls: bool("TLS_ENABLED", true),
    certsDir: path.resolve(str("CERTS_DIR", path.join(dataDir, "certs"))),
    metricsPort: int("METRICS_PORT", grpcPort + 2000, 0, 65535),
    etcdEndpoints: list("ETCD_ENDPOINTS", ["http://127.0.0.1:23790"]),
    redisUrl: str("REDIS_URL", "redis://127.0.0.1:63790"),
    redisPrefix: str("REDIS_PREFIX", "meshchat:"),
    postgresUrl: str("POSTGRES_URL", "postgres://chat:chat@127.0.0.1:54320/chat"),
    cassandraContactPoints: list("CASSANDRA_CONTACT_POINTS", ["127.0.0.1:9042"]),
    cassandraLocalDc: str("CASSANDRA_LOCAL_DC", "datacenter1"),
    cassandraKeyspace: str("CASSANDRA_KEYSPACE", "meshchat"),
  };
  // Plaintext with no caller checks is only sound where a sidecar does both for the app.
  if (!common.tls && !common.meshSidecar) {
    if (common.profile === "production") throw new ConfigError("TLS_ENABLED=false needs MESH_SIDECAR=true on the production profile: without a sidecar doing mutual TLS, any process that reaches the port could call every method");
    process.stderr.write(`${JSON.stringify({ level: "warn", service, msg: "TLS_ENABLED=false: internal calls are plaintext and callers are not checked (development only)" })}\n`);
  }
  return common;
}
