import { Cluster, Redis, type RedisOptions } from "ioredis";
import { ConfigError } from "../config/env.js";

/** Reports the first error of a streak, then at most one every `everyMs`; `reset` starts a new streak. */
export type Reporter = ((err: unknown) => void) & { reset(): void };

export function throttledReporter(onError: (err: unknown) => void, everyMs = 10_000): Reporter {
  let last = 0;
  const report = ((err: unknown) => {
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    onError(err);
  }) as Reporter;
  report.reset = () => { last = 0; };
  return report;
}

export interface RedisClientOptions {
  /** Connection errors (ioredis emits one per failed reconnect attempt) go here; it starts over once connected. */
  report: Reporter;
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  lazyConnect?: boolean;
  /** Queue commands while disconnected (a subscriber wants its SUBSCRIBE replayed); off by default. */
  offlineQueue?: boolean;
}

/** A client of one Redis or of a Redis Cluster: what both answer (commands, scripts, connect, quit). */
export type RedisOrCluster = Redis | Cluster;

/** The seed nodes and credentials of a `redis+cluster://` URL. */
export interface ClusterUrl {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls: boolean;
}

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\/(.*)$/;

/**
 * `redis+cluster://[user:password@]host:port[,host:port...][/]` (`rediss+cluster://` with TLS)
 * names a Redis Cluster by a few of its nodes: the client learns every node and slot from any
 * of them, so a URL with one live node is enough to start. A URL of one host cannot say this
 * (a cluster node answers single-node clients too, until a key lives elsewhere), hence a scheme
 * of its own; every other URL is one Redis, read by ioredis as before. undefined when the URL
 * is not a cluster URL; ConfigError when it is one but malformed, so a bad setting fails at boot.
 */
export function parseClusterUrl(url: string): ClusterUrl | undefined {
  const m = CLUSTER_SCHEME.exec(url);
  if (!m) return undefined;
  const bad = (why: string) => new ConfigError(`${redacted(url)}: ${why} (expected ${m[1]}+cluster://[user:password@]host:port,host:port,...)`);
  let rest = m[2]!.replace(/\/$/, "");
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(":");
    username = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : auth) || undefined;
    password = colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) || undefined : undefined;
  }
  const nodes = rest.split(",").map((hostPort) => {
    const i = hostPort.lastIndexOf(":");
    const host = i > 0 ? hostPort.slice(0, i).replace(/^\[(.*)\]$/, "$1") : "";
    const port = Number(hostPort.slice(i + 1));
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw bad(`"${hostPort}" is not host:port`);
    return { host, port };
  });
  return { nodes, username, password, tls: m[1] === "rediss" };
}

/** The URL without its password, for messages. */
function redacted(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@]*@/, "//$1:***@");
}

const backoff = (times: number) => Math.min(100 * times, 2_000);

function commonOptions(opts: RedisClientOptions) {
  return {
    maxRetriesPerRequest: 1,
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
    ...(opts.connectTimeoutMs ? { connectTimeout: opts.connectTimeoutMs } : {}),
  } satisfies RedisOptions;
}

function watch<T extends RedisOrCluster>(client: T, opts: RedisClientOptions): T {
  client.on("error", opts.report);
  client.on("ready", () => opts.report.reset());
  return client;
}

/**
 * The one way this project connects to Redis: fail fast while Redis is down
 * (no offline queue, one retry) so callers get a typed UNAVAILABLE or skip a
 * cache, and reconnect in the background with a backoff capped at 2 s.
 * One Redis only: a `redis+cluster://` URL is refused, because this caller's
 * scripts or transactions name keys that Redis Cluster may put in different slots.
 */
export function redisClient(url: string, opts: RedisClientOptions): Redis {
  if (parseClusterUrl(url)) throw new ConfigError(`${redacted(url)}: this Redis use needs one Redis, not a Redis Cluster (only PRESENCE_REDIS_URL may name a cluster)`);
  return watch(
    new Redis(url, {
      lazyConnect: opts.lazyConnect ?? false,
      enableOfflineQueue: opts.offlineQueue ?? false,
      retryStrategy: backoff,
      ...commonOptions(opts),
    }),
    opts,
  );
}

/**
 * As redisClient, and a Redis Cluster client for a `redis+cluster://` URL, with the same
 * fail-fast rules. Only for callers whose every script and multi-key command stays in one
 * slot (hash-tagged keys, scripts declaring their keys): the cluster routes a call by its keys.
 */
export function redisOrClusterClient(url: string, opts: RedisClientOptions): RedisOrCluster {
  const cluster = parseClusterUrl(url);
  if (!cluster) return redisClient(url, opts);
  return watch(
    new Cluster(cluster.nodes, {
      lazyConnect: opts.lazyConnect ?? false,
      enableOfflineQueue: opts.offlineQueue ?? false,
      clusterRetryStrategy: backoff,
      redisOptions: {
        ...commonOptions(opts),
        ...(cluster.username ? { username: cluster.username } : {}),
        ...(cluster.password ? { password: cluster.password } : {}),
        ...(cluster.tls ? { tls: {} } : {}),
      },
    }),
    opts,
  );
}
