import { execFileSync } from "node:child_process";
import cassandra from "cassandra-driver";
import { Etcd3 } from "etcd3";
import { Cluster, Redis } from "ioredis";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { parseClusterUrl } from "../../internal/redis/client.js";
import { waitFor } from "../support/wait.js";

/**
 * The real servers scripts/servers/servers.sh started answer as the services
 * expect (run by `make test` between `servers.sh start` and `servers.sh stop`).
 */
const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: source scripts/servers/env.sh`);
  return v;
};

describe("real servers under ./var/servers", () => {
  it("etcd keeps a key under a lease and drops it when the lease is revoked", async () => {
    const client = new Etcd3({ hosts: env("ETCD_ENDPOINTS") });
    const lease = client.lease(5);
    await lease.put("meshchat/test/key").value("v");
    expect(await client.get("meshchat/test/key").string()).toBe("v");
    await lease.revoke();
    expect(await client.get("meshchat/test/key").string()).toBeNull();
    client.close();
  });

  it("Redis answers and expires keys", async () => {
    const r = new Redis(env("REDIS_URL"), { lazyConnect: true });
    await r.connect();
    // A long expiry for the first read (a stalled test process must not see it lapse), then a short one.
    await r.set("meshchat:test", "1", "PX", 60_000);
    expect(await r.get("meshchat:test")).toBe("1");
    expect(await r.pttl("meshchat:test")).toBeGreaterThan(0);
    await r.pexpire("meshchat:test", 50);
    await waitFor("the key expired", async () => (await r.get("meshchat:test")) === null);
    r.disconnect();
  });

  it("Redis Cluster has three masters that share every slot, and refuses a command across slots", async () => {
    const nodes = parseClusterUrl(env("REDIS_CLUSTER_URL"))!.nodes;
    expect(nodes).toHaveLength(3);
    const c = new Cluster(nodes);
    const slots = (await c.cluster("SLOTS")) as [number, number, ...unknown[]][];
    expect(new Set(slots.map((s) => JSON.stringify(s[2]))).size).toBe(3);
    expect(slots.reduce((n, [from, to]) => n + to - from + 1, 0)).toBe(16384);
    const err = await c.mset("meshchat:test:{a}", "1", "meshchat:test:{b}", "1").catch((e: unknown) => e);
    expect(String(err)).toMatch(/CROSSSLOT/);
    c.disconnect();
  });

  it("PostgreSQL accepts the chat role on the chat database", async () => {
    const c = new pg.Client({ connectionString: env("POSTGRES_URL") });
    await c.connect();
    const r = await c.query<{ db: string; user: string }>("select current_database() as db, current_user as user");
    expect(r.rows[0]).toEqual({ db: "chat", user: "chat" });
    await c.end();
  });

  it("Cassandra 5.0 serves CQL on loopback", async () => {
    const client = new cassandra.Client({ contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","), localDataCenter: env("CASSANDRA_LOCAL_DC") });
    const r = await client.execute("SELECT release_version FROM system.local");
    expect(String(r.rows[0]!.release_version)).toMatch(/^5\.0\./);
    await client.shutdown();
  });

  it("reports every server up", () => {
    const out = execFileSync("bash", ["scripts/servers/servers.sh", "status"], { encoding: "utf8" });
    for (const name of ["etcd", "redis", "redis-cluster", "postgres", "postgres-replica", "cassandra"]) expect(out).toMatch(new RegExp(`${name}\\s+up`));
  });
});
