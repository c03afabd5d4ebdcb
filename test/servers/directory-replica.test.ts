import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReplicaReads } from "../../internal/store/directory-reads-replica.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import type { SqlClient, SqlExecutor } from "../../internal/store/sql.js";
import { SqlStore } from "../../internal/store/store-sql.js";
import type { Store } from "../../internal/store/store.js";
import { createDatabase } from "../support/postgres-database.js";
import { group, storeContract, users } from "../support/store-contract.js";
import { waitFor } from "../support/wait.js";

/**
 * The conversation list on a hot standby (scripts/servers/servers.sh's postgres-replica,
 * streaming from the servers' PostgreSQL): every read still sees what was committed before it
 * began, because it waits for the replica to replay the primary's position, and goes to the
 * primary when the replica lags too far or is down.
 */
const replicaBase = () => {
  const v = process.env.POSTGRES_REPLICA_URL;
  if (!v) throw new Error("POSTGRES_REPLICA_URL is not set: source scripts/servers/env.sh");
  return v;
};

/** The same database on the replica, once replay has created it there. */
async function onReplica(primaryUrl: string): Promise<string> {
  const url = new URL(replicaBase());
  url.pathname = new URL(primaryUrl).pathname;
  await waitFor("the database on the replica", async () => {
    const c = new pg.Client({ connectionString: url.toString() });
    try {
      await c.connect();
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  });
  return url.toString();
}

/** A client that counts the conversation lists it served. */
class CountingClient implements SqlClient {
  lists = 0;
  constructor(private readonly inner: SqlClient) {}
  query<T>(sql: string, params?: unknown[]) {
    if (/FROM members m JOIN conversations c/.test(sql)) this.lists++;
    return this.inner.query<T>(sql, params);
  }
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>) { return this.inner.transaction(fn); }
  close() { return this.inner.close(); }
}

{
  let db: { url: string; drop: () => Promise<void> };
  const opened: Store[] = [];
  storeContract({
    name: "sql (PostgreSQL, lists on its replica)",
    async setup() { db = await createDatabase(); },
    async open() {
      const primary = new PostgresSqlClient(db.url);
      const s = await SqlStore.open(primary, new ReplicaReads(primary, [new PostgresSqlClient(await onReplica(db.url))], { maxWaitMs: 5_000, restMs: 60_000 }));
      opened.push(s);
      return s;
    },
    async teardown() { for (const s of opened) await s.close(); await db.drop(); },
  });
}

describe("conversation lists on a PostgreSQL replica", () => {
  let db: { url: string; drop: () => Promise<void> };
  let replicaUrl: string;
  let admin: pg.Client;
  const opened: Store[] = [];
  beforeAll(async () => {
    db = await createDatabase();
    replicaUrl = await onReplica(db.url);
    admin = new pg.Client({ connectionString: replicaUrl });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.query("SELECT pg_wal_replay_resume()").catch(() => {});
    await admin?.end();
    for (const s of opened) await s.close();
    await db?.drop();
  });
  const open = async (replica: SqlClient, maxWaitMs = 5_000) => {
    const primary = new CountingClient(new PostgresSqlClient(db.url));
    const s = await SqlStore.open(primary, new ReplicaReads(primary, [replica], { maxWaitMs, restMs: 60_000 }));
    opened.push(s);
    return { store: s, primary };
  };

  it("serves a list from the replica once it has replayed what was committed before the read", async () => {
    const replica = new CountingClient(new PostgresSqlClient(replicaUrl));
    const { store, primary } = await open(replica);
    const [a, b] = await users(store, "a", "b");
    const { conversation } = await group(store, [a!, b!]);
    // Asked right after the commit: the replica has it before it answers.
    expect((await store.listConversations(b!.id)).map((c) => c.id)).toEqual([conversation.id]);
    expect(replica.lists).toBe(1);
    expect(primary.lists).toBe(0);
  });

  it("goes to the primary when the replica has not replayed a write made before the read", async () => {
    const replica = new CountingClient(new PostgresSqlClient(replicaUrl));
    const { store, primary } = await open(replica, 200);
    const [a, b] = await users(store, "a", "b");
    const first = (await group(store, [a!, b!])).conversation;
    expect((await store.listConversations(b!.id)).map((c) => c.id)).toEqual([first.id]);
    expect(replica.lists).toBe(1);
    await admin.query("SELECT pg_wal_replay_pause()");
    try {
      const second = (await group(store, [a!, b!])).conversation;
      // The replica stops before the second group: read there, the list would miss it.
      expect((await store.listConversations(b!.id)).map((c) => c.id).sort()).toEqual([first.id, second.id].sort());
      expect(replica.lists).toBe(1);
      expect(primary.lists).toBe(1);
    } finally {
      await admin.query("SELECT pg_wal_replay_resume()");
    }
    expect((await store.listConversations(b!.id))).toHaveLength(2);
    expect(replica.lists).toBe(2);
  });

  it("refuses a replica URL that names another database of the cluster", async () => {
    const primary = new PostgresSqlClient(db.url);
    const other = new PostgresSqlClient(replicaBase());
    const reads = new ReplicaReads(primary, [other], { maxWaitMs: 100, restMs: 60_000 });
    try {
      await expect(reads.checkReachable()).rejects.toThrow(/POSTGRES_REPLICA_URLS: replica 1 is database chat of cluster \d+, not a standby of the primary's database meshchat_test_/);
    } finally {
      await reads.close();
      await primary.close();
    }
  });

  it("goes to the primary while the replica is down, and leaves it out for a while", async () => {
    const down = new URL(replicaUrl);
    down.port = "1";
    const replica = new CountingClient(new PostgresSqlClient(down.toString()));
    const { store, primary } = await open(replica);
    const [a, b] = await users(store, "a", "b");
    const { conversation } = await group(store, [a!, b!]);
    expect((await store.listConversations(a!.id)).map((c) => c.id)).toEqual([conversation.id]);
    expect((await store.listConversations(b!.id)).map((c) => c.id)).toEqual([conversation.id]);
    expect(primary.lists).toBe(2);
  });
});
