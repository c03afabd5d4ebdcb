import path from "node:path";
import fs from "node:fs";
import type { CommonConfig } from "../config/config.js";
import { oneOf } from "../config/env.js";
import { PgliteSqlClient } from "./sql-pglite.js";
import { PostgresSqlClient } from "./sql-postgres.js";
import { SqlStore } from "./store-sql.js";
import type { Store } from "./store.js";

export const STORE_BACKENDS = ["pglite", "postgres"] as const;
export type StoreBackend = (typeof STORE_BACKENDS)[number];

function assertNever(x: never): never {
  throw new Error(`unknown store backend: ${String(x)}`);
}

/** STORE_BACKEND: pglite (embedded default, files under DATA_DIR/store) or postgres (POSTGRES_URL). */
export function storeBackend(config: CommonConfig): StoreBackend {
  return oneOf("STORE_BACKEND", config.profile === "embedded" ? "pglite" : "postgres", STORE_BACKENDS);
}

export async function openStore(config: CommonConfig): Promise<Store> {
  const backend = storeBackend(config);
  switch (backend) {
    case "pglite": {
      const dir = path.join(config.dataDir, "store");
      fs.mkdirSync(dir, { recursive: true });
      return SqlStore.open(await PgliteSqlClient.open(dir));
    }
    case "postgres":
      return SqlStore.open(new PostgresSqlClient(config.postgresUrl));
    default:
      return assertNever(backend);
  }
}
