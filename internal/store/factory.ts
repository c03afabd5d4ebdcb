import path from "node:path";
import fs from "node:fs";
import type { CommonConfig } from "../config/config.js";
import { int, oneOf, unknownChoice } from "../config/env.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { PostgresSqlClient } from "./sql-postgres.js";
import { CassandraStore, createCassandraClient } from "./store-cassandra.js";
import { RecentMessages } from "./recent-messages-redis.js";
import { CachedStore } from "./store-cached.js";
import { SqlStore } from "./store-sql.js";
import type { Store } from "./store.js";
import { instrumentStore } from "../telemetry/store.js";

export const STORE_BACKENDS = ["pglite", "postgres", "cassandra"] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];

/**
 * STORE_BACKEND: pglite (embedded default, files under DATA_DIR/store), postgres
 * (everything in POSTGRES_URL) or cassandra (production default: the directory in
 * POSTGRES_URL, messages, sync logs and pointers in CASSANDRA_CONTACT_POINTS /
 * CASSANDRA_LOCAL_DC / CASSANDRA_KEYSPACE; CASSANDRA_REPLICATION_FACTOR is used
 * only if the store creates the keyspace, see schema-cassandra.ts).
 */
export function storeBackend(config: CommonConfig): StoreBackend {
  return oneOf("STORE_BACKEND", config.profile === "embedded" ? "pglite" : "cassandra", STORE_BACKENDS);
}

/**
 * HISTORY_CACHE: redis (production default: recent pages from REDIS_URL, the last
 * HISTORY_CACHE_SIZE messages of each conversation that is read) or off.
 */
export async function openStore(config: CommonConfig, onError: (err: unknown) => void = () => {}): Promise<Store> {
  const backend = storeBackend(config);
  const store = instrumentStore(await openBackend(config), backend);
  if (oneOf("HISTORY_CACHE", config.profile === "embedded" ? "off" : "redis", ["off", "redis"] as const) === "off") return store;
  const recent = new RecentMessages(config.redisUrl, config.redisPrefix, int("HISTORY_CACHE_SIZE", 200, 1, 10_000), int("HISTORY_CACHE_TTL_S", 86_400, 1), onError);
  // The cache's own latency is labelled apart from the backend it fronts.
  return instrumentStore(new CachedStore(store, recent), `${backend}+cache`);
}

async function openBackend(config: CommonConfig): Promise<Store> {
  const backend = storeBackend(config);
  switch (backend) {
    case "pglite": {
      const dir = path.join(config.dataDir, "store");
      fs.mkdirSync(dir, { recursive: true });
      return SqlStore.open(await PgliteSqlClient.open(dir));
    }
    case "postgres":
      return SqlStore.open(new PostgresSqlClient(config.postgresUrl));
    case "cassandra": {
      const client = createCassandraClient(config.cassandraContactPoints, config.cassandraLocalDc);
      try {
        return await CassandraStore.open(new PostgresSqlClient(config.postgresUrl), client, {
          keyspace: config.cassandraKeyspace,
          replicationFactor: int("CASSANDRA_REPLICATION_FACTOR", 1, 1, 99),
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
