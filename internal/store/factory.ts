import path from "node:path";
import fs from "node:fs";
import type { CommonConfig } from "../config/config.js";
import type { Leadership } from "../discovery/discovery.js";
import { bool, int, list, oneOf, str, unknownChoice } from "../config/env.js";
import type { DirectoryReads } from "./directory-reads.js";
import { PrimaryReads } from "./directory-reads-primary.js";
import { ReplicaReads } from "./directory-reads-replica.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { PostgresSqlClient } from "./sql-postgres.js";
import { CassandraStore, createCassandraClient } from "./store-cassandra.js";
import { RecentMessages } from "./recent-messages-redis.js";
import { cacheHistory } from "./store-cached.js";
import { SqlStore } from "./store-sql.js";
import type { Store } from "./store.js";
import { instrumentStore } from "../telemetry/store.js";

export const STORE_BACKENDS = ["sqlite", "pglite", "postgres", "cassandra"] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];

/**
 * STORE_BACKEND: sqlite (embedded default, DATA_DIR/sqlite/meshchat.db; STORE_SYNC=full
 * adds an fsync per commit so acknowledged messages survive power loss, not only the
 * kill of a process), pglite (the former embedded default, files under DATA_DIR/store;
 * chosen by default when that folder holds a database, so an upgrade keeps its data), postgres
 * (everything in POSTGRES_URL) or cassandra (production default: the directory in
 * POSTGRES_URL, messages, sync logs and pointers in CASSANDRA_CONTACT_POINTS /
 * CASSANDRA_LOCAL_DC / CASSANDRA_KEYSPACE; CASSANDRA_REPLICATION is used
 * only if the store creates the keyspace, see schema-cassandra.ts).
 */
export function storeBackend(config: CommonConfig): StoreBackend {
  return oneOf("STORE_BACKEND", config.profile === "embedded" ? embeddedDefault(config.dataDir) : "cassandra", STORE_BACKENDS);
}

/**
 * Whether the backend takes one writer per keyspace: the Cassandra log's leader
 * (docs/cassandra-log.md). Its instances elect one (Discovery.lead) before opening the
 * store; the others wait as standbys. The SQL backends take any number of instances.
 */
export function storeHasOneWriter(config: CommonConfig): boolean {
  return storeBackend(config) === "cassandra";
}

function embeddedDefault(dataDir: string): StoreBackend {
  return fs.existsSync(path.join(dataDir, "store", "PG_VERSION")) ? "pglite" : "sqlite";
}

/**
 * SYNC_LOG_RETENTION_S: how long sync-log entries are kept (docs/sync-log-trim.md), 30 days by
 * default (the capacity model's figure, bench/capacity-model.yaml), 0 for ever. Messages are
 * kept for ever whatever it says: a device away for longer resyncs in full from the directory
 * and history.
 */
export function syncLogRetentionSeconds(): number {
  return int("SYNC_LOG_RETENTION_S", 30 * 86_400, 0, 20 * 365 * 86_400);
}

/**
 * HISTORY_CACHE: redis (production default: the last HISTORY_CACHE_SIZE messages of each
 * conversation that is read) or off. HISTORY_CACHE_REDIS_URL (default REDIS_URL): a cache may
 * lose anything, so in a deployment it gets a Redis of its own that evicts and never persists,
 * apart from the one that holds presence and limits (mesh/k8s/infra.yaml, docs/production.md).
 */
export async function openStore(config: CommonConfig, onError: (err: unknown) => void = () => {}, onDeposed: () => void = () => {}, leadership?: Leadership): Promise<Store> {
  const backend = storeBackend(config);
  const store = instrumentStore(await openBackend(config, onDeposed, leadership), backend);
  if (oneOf("HISTORY_CACHE", config.profile === "embedded" ? "off" : "redis", ["off", "redis"] as const) === "off") return store;
  const recent = new RecentMessages(str("HISTORY_CACHE_REDIS_URL", config.redisUrl), config.redisPrefix, int("HISTORY_CACHE_SIZE", 200, 1, 10_000), int("HISTORY_CACHE_TTL_S", 86_400, 1), onError);
  // The cache's own latency is labelled apart from the backend it fronts.
  return instrumentStore(cacheHistory(store, recent), `${backend}+cache`);
}

async function openBackend(config: CommonConfig, onDeposed: () => void, leadership: Leadership | undefined): Promise<Store> {
  const backend = storeBackend(config);
  switch (backend) {
    case "sqlite": {
      const dir = path.join(config.dataDir, "sqlite");
      fs.mkdirSync(dir, { recursive: true });
      // Imported here: node:sqlite exists from Node 22.13 on, and only this backend needs it.
      const { SqliteStore } = await import("./store-sqlite.js").catch((err: unknown) => {
        throw new Error(`the embedded store needs node:sqlite (Node >= 22.13), this is Node ${process.version}: start through make, which runs the pinned node_modules/.bin/node, or set STORE_BACKEND`, { cause: err });
      });
      return SqliteStore.open(path.join(dir, "meshchat.db"), oneOf("STORE_SYNC", "normal", ["normal", "full"] as const));
    }
    case "pglite": {
      const dir = path.join(config.dataDir, "store");
      fs.mkdirSync(dir, { recursive: true });
      return SqlStore.open(await PgliteSqlClient.open(dir));
    }
    case "postgres": {
      const primary = new PostgresSqlClient(config.postgresUrl);
      return SqlStore.open(primary, await directoryReads(primary));
    }
    case "cassandra": {
      const client = createCassandraClient(config.cassandraContactPoints, config.cassandraLocalDc);
      try {
        const primary = new PostgresSqlClient(config.postgresUrl);
        return await CassandraStore.open(primary, client, {
          directoryReads: await directoryReads(primary),
          keyspace: config.cassandraKeyspace,
          localDc: config.cassandraLocalDc,
          takeOverWrites: bool("CASSANDRA_TAKE_OVER_WRITES", false),
          // CASSANDRA_REPLICATION_FACTOR is the older name of a plain factor.
          replication: str("CASSANDRA_REPLICATION", str("CASSANDRA_REPLICATION_FACTOR", "1")),
          onDeposed,
          heldUntil: leadership && (() => leadership.heldUntil()),
          logRetentionSeconds: syncLogRetentionSeconds(),
        });
      } catch (err) {
        await client.shutdown().catch(() => {});
        throw err;
      }
    }
    default:
      return unknownChoice("store backend", backend);
  }
}

/**
 * POSTGRES_REPLICA_URLS: hot standbys of POSTGRES_URL (comma-separated, none by default) that
 * serve the conversation lists, each read once the replica has replayed what the primary had
 * when the read began (directory-reads-replica.ts); REPLICA_MAX_WAIT_MS (100) is how long a read
 * waits for that before it runs on the primary, REPLICA_REST_MS (5,000) how long a replica that
 * failed is left out.
 */
async function directoryReads(primary: PostgresSqlClient): Promise<DirectoryReads> {
  const urls = list("POSTGRES_REPLICA_URLS", []);
  if (urls.length === 0) return new PrimaryReads(primary);
  const reads = new ReplicaReads(primary, urls.map((u) => new PostgresSqlClient(u)), {
    maxWaitMs: int("REPLICA_MAX_WAIT_MS", 100, 0, 10_000),
    restMs: int("REPLICA_REST_MS", 5_000, 0, 600_000),
  });
  try {
    await reads.checkReachable();
  } catch (err) {
    await reads.close();
    throw err;
  }
  return reads;
}
