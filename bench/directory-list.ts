/**
 * What one PostgreSQL primary gives the conversation list, the directory read that grows with
 * traffic (clients ask for it when they connect; docs/scaling.md, "Storage"): lists a second,
 * their latency, and PostgreSQL's CPU per list, on a directory of 10,000 users in 20
 * conversations each (14 direct, 6 groups of 20), the model's shape.
 *
 *   make bench-directory     (starts the servers; writes bench/results/directory-list.json,
 *                            which `make capacity` reads)
 *   set -a; . scripts/servers/env.sh; set +a; node dist/bench/directory-list.js [--out DIR]
 *
 * It lists through the store's own `SqlStore.listConversations` (two queries, what the
 * Cassandra store asks of PostgreSQL), in a database of its own that it drops at the end. The
 * load generator shares the box with PostgreSQL, so lists a second are a lower bound; the CPU
 * per list is PostgreSQL's own (the server's processes, from /proc).
 *
 * With POSTGRES_REPLICA_URL set (scripts/servers/env.sh: the servers' hot standby) it lists a
 * second time with the lists routed to the replica (directory-reads-replica.ts), and reports
 * the primary's CPU per list (the position it is asked for) and the replica's apart.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { build } from "hdr-histogram-js";
import pg from "pg";
import { ReplicaReads } from "../internal/store/directory-reads-replica.js";
import { PostgresSqlClient } from "../internal/store/sql-postgres.js";
import { SqlStore } from "../internal/store/store-sql.js";
import { cpuTicks } from "./proc-stat.js";

const USERS = 10_000;
const DIRECT_PER_USER = 14;
const GROUPS_PER_USER = 6;
const GROUP_SIZE = 20;
const CONCURRENCY = 32;
const SECONDS = 10;

/** The postmaster of the server `url` reaches: the parent of the backend that answers. */
async function postmasterOf(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    // Read while the backend lives: it exits with the connection.
    return parentOf(Number((await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid));
  } finally {
    await c.end();
  }
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/**
 * CPU ticks of one PostgreSQL server: its postmaster, every process it started, and those of
 * them that have exited (the postmaster waits for each, so the kernel adds their time to its
 * cutime and cstime: an autovacuum worker that ends mid-run is not lost from the sum).
 */
function postgresTicks(postmaster: number): number {
  const f = fs.readFileSync(`/proc/${postmaster}/stat`, "utf8").split(") ")[1]!.split(" ");
  let ticks = cpuTicks(postmaster) + Number(f[13]) + Number(f[14]);
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (parentOf(Number(pid)) === postmaster) ticks += cpuTicks(Number(pid));
    } catch {
      // a backend that exited meanwhile
    }
  }
  return ticks;
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const opts = new Command("directory-list")
  .option("--out <dir>", "where directory-list.json goes", path.join(REPO, "bench", "results"))
  .parse()
  .opts<{ out: string }>();
const url = process.env.POSTGRES_URL;
if (!url) throw new Error("POSTGRES_URL is not set: run `set -a; . scripts/servers/env.sh; set +a` first");
const name = `meshchat_bench_dir_${process.pid}`;
const admin = new pg.Client({ connectionString: url });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const dbUrlOf = new URL(url);
dbUrlOf.pathname = `/${name}`;
const dbUrl = dbUrlOf.toString();
const client = new PostgresSqlClient(dbUrl, CONCURRENCY);
try {
  const store = await SqlStore.open(client);
  const t0 = Date.now();
  // Users u0..u(N-1); direct conversations pair each user with the next 7 (so 14 each);
  // groups g0..g(N*6/20-1) of 20 consecutive users, six rounds over shifted orders (6 each).
  const setup = new pg.Client({ connectionString: dbUrl });
  await setup.connect();
  await setup.query(`INSERT INTO users (id, username, password_hash, created_at) SELECT 'u' || i, 'user' || i, 'x', i FROM generate_series(0, $1 - 1) i`, [USERS]);
  await setup.query(`INSERT INTO conversations (id, kind, created_by, created_at, last_seq)
    SELECT 'd' || i || '-' || k, 1, 'u' || i, i * 10 + k, 50 FROM generate_series(0, $1 - 1) i, generate_series(1, $2) k`, [USERS, DIRECT_PER_USER / 2]);
  await setup.query(`INSERT INTO members (conversation_id, user_id, joined_at, read_seq)
    SELECT 'd' || i || '-' || k, 'u' || i, 0, 50 FROM generate_series(0, $1 - 1) i, generate_series(1, $2) k
    UNION ALL SELECT 'd' || i || '-' || k, 'u' || ((i + k) % $1), 0, 40 FROM generate_series(0, $1 - 1) i, generate_series(1, $2) k`, [USERS, DIRECT_PER_USER / 2]);
  const groupsPerRound = USERS / GROUP_SIZE;
  await setup.query(`INSERT INTO conversations (id, kind, title, created_by, created_at, last_seq)
    SELECT 'g' || r || '-' || g, 2, 'group ' || g, 'u' || (g * $2), g, 500 FROM generate_series(0, $3 - 1) r, generate_series(0, $1 - 1) g`, [groupsPerRound, GROUP_SIZE, GROUPS_PER_USER]);
  // Round r orders users by a stride prime to N (a permutation), so each round's groups hold other people.
  await setup.query(`INSERT INTO members (conversation_id, user_id, joined_at, read_seq)
    SELECT 'g' || r || '-' || (((i * (ARRAY[1, 7919, 7927, 7933, 7937, 7949])[r + 1]) % $1) / $2), 'u' || i, 0, 490
      FROM generate_series(0, $3 - 1) r, generate_series(0, $1 - 1) i`, [USERS, GROUP_SIZE, GROUPS_PER_USER]);
  await setup.query("ANALYZE");
  await setup.end();
  const counts = await store.listConversations("u42");
  console.log(`directory: ${USERS} users, ${counts.length} conversations each (e.g. u42), made in ${Date.now() - t0} ms`);

  // Warm the buffer cache and the plans first: a primary that has run for days has them.
  const until = (ms: number) => performance.now() + ms;
  const measure = async (listStore: SqlStore, postmasters: number[]) => {
    const latency = build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000, numberOfSignificantValueDigits: 3 });
    let lists = 0;
    let conversations = 0;
    const run = async (end: number, record: boolean) => {
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < end) {
          const userId = `u${Math.floor(Math.random() * USERS)}`;
          const started = performance.now();
          const list = await listStore.listConversations(userId);
          if (!record) continue;
          latency.recordValue(Math.max(1, Math.round((performance.now() - started) * 10)));
          lists++;
          conversations += list.length;
        }
      }));
    };
    await run(until(3_000), false);
    const ticksBefore = postmasters.map(postgresTicks);
    const started = performance.now();
    await run(until(SECONDS * 1000), true);
    const seconds = (performance.now() - started) / 1000;
    return {
      conversationsPerList: conversations / lists,
      listsPerS: Math.round(lists / seconds),
      p50Ms: latency.getValueAtPercentile(50) / 10,
      p99Ms: latency.getValueAtPercentile(99) / 10,
      // Per server, in the order given.
      micros: postmasters.map((p, i) => Math.round(((postgresTicks(p) - ticksBefore[i]!) * 10_000) / lists)),
    };
  };
  const primaryPid = await postmasterOf(url);
  const onPrimary = await measure(store, [primaryPid]);
  const pgMicrosPerList = onPrimary.micros[0]!;
  console.log(`lists: ${onPrimary.listsPerS}/s from ${CONCURRENCY} at once, ${onPrimary.conversationsPerList.toFixed(1)} conversations each; p50 ${onPrimary.p50Ms} ms, p99 ${onPrimary.p99Ms} ms`);
  console.log(`PostgreSQL CPU per list: ${pgMicrosPerList} µs (${Math.round(1e6 / pgMicrosPerList)} lists a second per PostgreSQL core)`);
  const directory: Record<string, unknown> = { users: USERS, conversationsPerList: onPrimary.conversationsPerList, concurrency: CONCURRENCY, listsPerS: onPrimary.listsPerS, p50Ms: onPrimary.p50Ms, p99Ms: onPrimary.p99Ms, postgresMicrosPerList: pgMicrosPerList };
  const result = { at: new Date().toISOString(), directory };
  const replicaBase = process.env.POSTGRES_REPLICA_URL;
  if (replicaBase) {
    const replicaUrl = new URL(replicaBase);
    replicaUrl.pathname = `/${name}`;
    const replica = new PostgresSqlClient(replicaUrl.toString(), CONCURRENCY);
    const reads = new ReplicaReads(client, [replica], { maxWaitMs: 100, restMs: 5_000 });
    // The same database, its lists on the replica (writes, none here, would still go to the primary).
    const routed = await SqlStore.open(client, reads);
    try {
      const r = await measure(routed, [primaryPid, await postmasterOf(replicaBase)]);
      console.log(`lists on the replica: ${r.listsPerS}/s; p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms; CPU per list: primary ${r.micros[0]} µs, replica ${r.micros[1]} µs`);
      directory.replicaRouting = { listsPerS: r.listsPerS, p50Ms: r.p50Ms, p99Ms: r.p99Ms, primaryMicrosPerList: r.micros[0], replicaMicrosPerList: r.micros[1] };
    } finally {
      await reads.close();
    }
  }
  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(path.join(opts.out, "directory-list.json"), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await client.close().catch(() => {});
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
