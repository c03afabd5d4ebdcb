import { randomBytes } from "node:crypto";
import net from "node:net";
import cassandra from "cassandra-driver";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendGroup } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode, Event, HistoryDirection } from "../../gen/chat/v1/client.js";
import { ConfigError } from "../../internal/config/env.js";
import { ChatError } from "../../internal/errors/chat-error.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import { RequestTrackerBase } from "../../internal/store/cassandra-requests.js";
import { CassandraStore, createCassandraClient } from "../../internal/store/store-cassandra.js";
import { SqlStore } from "../../internal/store/store-sql.js";
import type { Store } from "../../internal/store/store.js";
import { expectGapless, group, id, messageSeqs, msg, readAll, storeContract, type StoreBackend, users } from "../support/store-contract.js";
import { sleep } from "../../internal/run/sleep.js";

/**
 * The message store against the real servers: the same contract runs on the
 * SQL store over PostgreSQL and on the Cassandra store (PostgreSQL directory +
 * Cassandra messages), each on a throwaway database / keyspace. The Cassandra
 * keyspace uses tiny buckets so that every test crosses partition boundaries.
 */
const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: source scripts/servers/env.sh`);
  return v;
};
const RUN = randomBytes(4).toString("hex");
const MESSAGES_PER_BUCKET = 4;
const LOG_ENTRIES_PER_BUCKET = 5;
let uniq = 0;

async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `meshchat_test_${RUN}_${++uniq}`;
  const admin = new pg.Client({ connectionString: env("POSTGRES_URL") });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(env("POSTGRES_URL"));
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: env("POSTGRES_URL") });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

const cassClient = () => createCassandraClient(env("CASSANDRA_CONTACT_POINTS").split(","), env("CASSANDRA_LOCAL_DC"));

interface Backend extends StoreBackend {
  /** The throwaway PostgreSQL database of this backend. */
  url(): string;
}

function sqlBackend(): Backend {
  let db: { url: string; drop: () => Promise<void> };
  const opened: Store[] = [];
  return {
    name: "sql (PostgreSQL)",
    url: () => db.url,
    async setup() { db = await createDatabase(); },
    async open() { const s = await SqlStore.open(new PostgresSqlClient(db.url)); opened.push(s); return s; },
    async teardown() { for (const s of opened) await s.close(); await db.drop(); },
  };
}

const KEYSPACE = `meshchat_test_${RUN}`;
const DC = env("CASSANDRA_LOCAL_DC");
function cassandraBackend(): Backend {
  let db: { url: string; drop: () => Promise<void> };
  const opened: Store[] = [];
  return {
    name: "cassandra",
    url: () => db.url,
    async setup() { db = await createDatabase(); },
    async open() {
      const s = await CassandraStore.open(new PostgresSqlClient(db.url), cassClient(), {
        keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET,
      });
      opened.push(s);
      return s;
    },
    async teardown() {
      for (const s of opened) await s.close();
      const c = cassClient();
      await c.execute(`DROP KEYSPACE IF EXISTS ${KEYSPACE}`).catch(() => {});
      await c.shutdown();
      await db.drop();
    },
  };
}

for (const backend of [sqlBackend(), cassandraBackend()]) storeContract(backend);

describe("Cassandra store specifics", () => {
  const backend = cassandraBackend();
  let store: CassandraStore;
  let raw: cassandra.Client;
  beforeAll(async () => {
    await backend.setup();
    store = (await backend.open()) as CassandraStore;
    raw = cassClient();
    await raw.connect();
  }, 120_000);
  afterAll(async () => {
    await raw?.shutdown();
    await backend.teardown();
  }, 60_000);

  /** A crash right after the commit point: the LWT stored the intent, nothing else was written. */
  async function crashAfterCommit(conversationId: string, baseSeq: number, intent: Omit<AppendGroup, "conversationId" | "baseSeq">) {
    const blob = Buffer.from(AppendGroup.encode({ conversationId, baseSeq, ...intent }).finish());
    const r = await raw.execute(
      `UPDATE ${KEYSPACE}.conversation_heads SET last_seq = ?, pending = ? WHERE conversation_id = ? IF last_seq = ? AND pending = null`,
      [baseSeq + intent.messages.length, blob, conversationId, baseSeq],
    );
    expect(r.wasApplied()).toBe(true);
  }

  it("a pending intent left by a crash is replayed by readLog, exactly once even with concurrent replayers", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [msg(a!, "k1")] }]);
    await crashAfterCommit(conv.id, 1, { memberIds, messages: [msg(b!, "k2"), msg(b!, "k3")] });
    const other = await backend.open();
    // Several instances find the pending intent at once.
    await Promise.all([store.readLog(b!.id, 0, 100), other.readLog(a!.id, 0, 100), other.lastSeq(conv.id), store.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 })]);
    for (const u of memberIds) {
      const log = await readAll(store, u);
      expectGapless(log);
      expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3]);
    }
    const head = await raw.execute(`SELECT pending FROM ${KEYSPACE}.conversation_heads WHERE conversation_id = ?`, [conv.id]);
    expect(head.first()["pending"]).toBeNull();
    // The replay raised the sender's pointers too.
    expect((await store.getConversation(conv.id))!.conversation.members.map((m) => m.readSeq)).toEqual([1, 3]);
  });

  it("a crash in the middle of applying an intent: the replay logs only what is missing", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [msg(a!, "g1")] }]);
    expect((await store.readLog(b!.id, 0, 10)).head).toBe(2);
    await crashAfterCommit(conv.id, 1, { memberIds, messages: [msg(a!, "g2"), msg(a!, "g3")] });
    // The crashed instance had logged seq 2 for b at position 3 (index candidate first, then the row),
    // and left a candidate for seq 3 at a position that holds something else; no head hint.
    await raw.execute(`INSERT INTO ${KEYSPACE}.log_index (user_id, conversation_id, seq, pos) VALUES (?, ?, ?, ?)`, [b!.id, conv.id, 2, 3]);
    await raw.execute(`INSERT INTO ${KEYSPACE}.log_index (user_id, conversation_id, seq, pos) VALUES (?, ?, ?, ?)`, [b!.id, conv.id, 3, 1]);
    await raw.execute(`INSERT INTO ${KEYSPACE}.sync_log (user_id, bucket, pos, at, conversation_id, seq) VALUES (?, 0, 3, ?, ?, 2) IF NOT EXISTS`, [b!.id, Date.now(), conv.id]);
    const log = await readAll(store, b!.id);
    expectGapless(log);
    expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3]);
    expect(log.map((e) => e.pos)).toEqual([1, 2, 3, 4]);
    expect(messageSeqs(await readAll(store, a!.id), conv.id)).toEqual([1, 2, 3]);
    // The next append goes on from there.
    const [r] = await store.append([{ conversationId: conv.id, baseSeq: 3, memberIds, messages: [msg(b!, "g4")] }]);
    expect(r!.messages[0]).toMatchObject({ message: { seq: 4 }, positions: [5, 5] });
  });

  it("a pending intent is replayed by the next append, which then appends after it", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    await crashAfterCommit(conv.id, 0, { memberIds, messages: [msg(a!, "c1"), msg(a!, "c2"), msg(a!, "c3"), msg(a!, "c4"), msg(a!, "c5")] });
    // An owner that did not see the crashed one: stale base, refused after the replay.
    const [stale] = await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [msg(b!, "d1")] }]);
    expect(stale).toMatchObject({ error: ErrorCode.ERROR_CODE_CONFLICT, lastSeq: 5 });
    // The retried "c3" is recognised as a duplicate of the replayed message.
    const [r] = await store.append([{ conversationId: conv.id, baseSeq: 5, memberIds, messages: [msg(a!, "c3"), msg(b!, "d1")] }]);
    expect(r!.messages.map((m) => [m.message!.seq, m.duplicate, m.positions])).toEqual([[3, true, []], [6, false, [7, 7]]]);
    for (const u of memberIds) {
      const log = await readAll(store, u);
      expectGapless(log);
      expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3, 4, 5, 6]);
    }
  });

  it("an owner that read the head before another's crashed commit gets CONFLICT, after the intent is replayed", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    // This owner reads the head (last_seq 0, no intent) ...
    expect(await store.lastSeq(conv.id)).toBe(0);
    // ... another one commits and crashes ...
    await crashAfterCommit(conv.id, 0, { memberIds, messages: [msg(a!, "e1")] });
    // ... and this owner's append (base 0) finds the intent, replays it and is refused.
    const [r] = await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [msg(b!, "f1")] }]);
    expect(r).toMatchObject({ error: ErrorCode.ERROR_CODE_CONFLICT, lastSeq: 1 });
    expect(messageSeqs(await readAll(store, b!.id), conv.id)).toEqual([1]);
  });

  it("an edit or deletion cut short by a crash is logged at the next start if and only if the message row took it", async () => {
    const [a, b] = await users(store, "a", "b");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "x1", "one"), msg(a!, "x2", "two")] }]);
    const pgc = new PostgresSqlClient(backend.url());
    const outbox = async (seq: number, text: string) => {
      const event = Event.encode({ pos: 0, atMs: 2_000, kind: { $case: "edited", value: { conversationId: conv.id, seq, text: "", editedAtMs: 2_000 } } }).finish();
      const { rows } = await pgc.query<{ id: string }>(`INSERT INTO cassandra_log_outbox (conversation_id, user_ids, event, created_at) VALUES ($1, $2, $3, $4) RETURNING id`, [conv.id, [a!.id, b!.id], event, 2_000]);
      return { id: Number(rows[0]!.id), text };
    };
    // Seq 1: the compare-and-set took the edit, then the process died before logging it.
    const applied = await outbox(1, "one, edited");
    await raw.execute(`UPDATE ${KEYSPACE}.messages SET body = ?, edited_at = ?, edit_count = ?, changes = changes + ? WHERE conversation_id = ? AND bucket = 0 AND seq = 1`,
      [applied.text, 2_000, 1, [applied.id], conv.id], { prepare: true });
    // Seq 2: the process died before the compare-and-set: nothing happened, nothing may be logged.
    await outbox(2, "never applied");
    await backend.open(); // drains the outbox
    for (const u of [a!.id, b!.id]) {
      const log = await readAll(store, u);
      expectGapless(log);
      expect(log.flatMap((e) => (e.kind?.$case === "edited" ? [[e.kind.value.seq, e.kind.value.text]] : []))).toEqual([[1, "one, edited"]]);
    }
    expect((await pgc.query<{ n: number }>(`SELECT count(*)::int AS n FROM cassandra_log_outbox WHERE conversation_id = $1`, [conv.id])).rows[0]!.n).toBe(0);
    await pgc.close();
  });

  it("writes no tombstone for what a row does not carry (a message's log entry has no event)", async () => {
    // A bound null is a cell tombstone: one per sync-log row, read back by every catch-up
    // (and a read past tombstone_failure_threshold fails). Cassandra's own trace counts them.
    const [a, b] = await users(store, "ta", "tb");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "t1"), msg(a!, "t2")] }]);
    const res = await raw.execute(`SELECT pos, seq, event FROM ${KEYSPACE}.sync_log WHERE user_id = ? AND bucket = 0`, [b!.id], { prepare: true, traceQuery: true });
    // The group's creation (an event), then the two messages (references, no event).
    expect(res.rows.map((r) => [Number(r["seq"]) > 0, r["event"] === null])).toEqual([[false, false], [true, true], [true, true]]);
    // getTrace waits until the trace is complete (Cassandra writes it asynchronously).
    const trace = (await raw.metadata.getTrace((res.info as { traceId: cassandra.types.Uuid }).traceId)) as { events: Array<{ activity: string }> };
    const counts = trace.events.map((e) => /Read (\d+) live rows and (\d+) tombstone cells/.exec(e.activity)).filter((m) => m !== null);
    expect(counts.length).toBeGreaterThan(0);
    expect(counts.map((m) => [Number(m![1]), Number(m![2])])).toEqual(counts.map(() => [3, 0]));
  });

  it("compacts the expiring log index by time windows", async () => {
    const { rows } = await raw.execute(`SELECT compaction, gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'log_index'`, [KEYSPACE], { prepare: true });
    expect((rows[0]!["compaction"] as Record<string, string>)["class"]).toMatch(/TimeWindowCompactionStrategy$/);
    expect(rows[0]!["gc_grace_seconds"]).toBe(10800);
  });

  it("opens a keyspace made under other bucket sizes with its own when none is configured (an upgrade keeps old keyspaces readable)", async () => {
    const [a, b] = await users(store, "up-a", "up-b");
    const conv = (await group(store, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    // An instance of a later release: no sizes given, defaults (200 / 10,000) unlike this keyspace's (4 / 5).
    const later = await CassandraStore.open(new PostgresSqlClient(backend.url()), cassClient(), { keyspace: KEYSPACE, localDc: DC });
    try {
      const sent = Array.from({ length: 6 }, (_, i) => msg(a!, `up${i}`));
      await later.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: sent }]);
      // Rows where this keyspace puts them (seq 5 in bucket 1 of 4 seqs), and every reader agrees.
      const row = await raw.execute(`SELECT seq FROM ${KEYSPACE}.messages WHERE conversation_id = ? AND bucket = 1 AND seq = 5`, [conv.id], { prepare: true });
      expect(row.rowLength).toBe(1);
      for (const s of [later, store]) {
        const page = await s.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
        expect(page.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(messageSeqs(await readAll(s, b!.id), conv.id)).toEqual([1, 2, 3, 4, 5, 6]);
      }
    } finally {
      await later.close();
    }
  });

  it("answers a head check with one read per user, at or past every acknowledged entry", async () => {
    const asked: string[] = [];
    class Recorder extends RequestTrackerBase {
      override onSuccess(_host: unknown, query: string | Array<{ query: string }>): void { asked.push(typeof query === "string" ? query : "batch"); }
    }
    const client = new cassandra.Client({ contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","), localDataCenter: DC, requestTracker: new Recorder(),
      queryOptions: { prepare: true, consistency: cassandra.types.consistencies.localQuorum, serialConsistency: cassandra.types.consistencies.localSerial } });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    try {
      const [a, b] = await users(s, "hc-a", "hc-b");
      const conv = (await group(s, [a!, b!])).conversation;
      // Past a bucket of 5 positions, so the exact head would read two buckets.
      const sent = Array.from({ length: 7 }, (_, i) => msg(a!, `hc${i}`));
      await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: sent }]);
      const exact = (await s.readLog(b!.id, 0, 100)).head;
      asked.length = 0;
      expect(await s.logHeads([a!.id, b!.id, id("nobody")])).toEqual([exact, exact, 0]);
      expect(asked).toHaveLength(3);
      expect(asked.every((q) => q.includes("log_heads"))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it("is written from one data centre: an instance of another refuses to start until told to take the writes over", async () => {
    const writer = async () => (await raw.execute(`SELECT value FROM ${KEYSPACE}.store_roles WHERE name = 'writer_dc'`)).first()?.["value"] as string;
    expect(await writer()).toBe(DC);
    const open = async (localDc: string, takeOverWrites = false) => {
      const [db, client] = [new PostgresSqlClient(backend.url()), cassClient()];
      try {
        return await CassandraStore.open(db, client, { keyspace: KEYSPACE, localDc, takeOverWrites, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
      } catch (err) {
        await Promise.all([client.shutdown(), db.close()]);
        throw err;
      }
    };
    try {
      // Another region's store, say after a deploy there: refused, typed, and nothing changes.
      const err = await open("dc-west").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect(String(err)).toMatch(/written from data centre .* not dc-west.*CASSANDRA_TAKE_OVER_WRITES/);
      expect(await writer()).toBe(DC);
      // The operator's failover: dc-west takes the writes; then the old one is refused in turn.
      await (await open("dc-west", true)).close();
      expect(await writer()).toBe("dc-west");
      expect(String(await open(DC).catch((e: unknown) => e))).toMatch(/written from data centre dc-west, not /);
    } finally {
      await (await open(DC, true)).close();
    }
    expect(await writer()).toBe(DC);
  });

  it("refuses to open a keyspace with different bucket sizes", async () => {
    const other = cassClient();
    await expect(CassandraStore.open(new PostgresSqlClient(backend.url()), other, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: 7, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET }))
      .rejects.toThrow(/messages_per_bucket/);
    await other.shutdown();
  });

  it("Cassandra unreachable or going away surfaces as a retryable UNAVAILABLE", async () => {
    // Nothing listens there: open fails with NoHostAvailableError.
    const dead = new cassandra.Client({ contactPoints: ["127.0.0.1:1"], localDataCenter: env("CASSANDRA_LOCAL_DC"), socketOptions: { connectTimeout: 1000 } });
    const err = await CassandraStore.open(new PostgresSqlClient(backend.url()), dead, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
    await dead.shutdown();

    // Through a proxy that then goes away: a running store's calls fail UNAVAILABLE.
    const [host, port] = env("CASSANDRA_CONTACT_POINTS").split(",")[0]!.split(":");
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(Number(port ?? 9042), host);
      for (const s of [inbound, outbound]) { sockets.add(s); s.on("error", () => {}); s.on("close", () => sockets.delete(s)); }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((res) => proxy.listen(0, "127.0.0.1", res));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    // The driver checks instanceof AddressTranslator, which its typings declare as an interface.
    type Translator = cassandra.policies.addressResolution.AddressTranslator;
    const Base = (cassandra.policies.addressResolution as unknown as { AddressTranslator: new () => Translator }).AddressTranslator;
    class ViaProxy extends Base {
      override translate(_address: string, _port: number, callback: (endpoint: string) => void): void {
        callback(`127.0.0.1:${proxyPort}`);
      }
    }
    const viaProxy = new cassandra.Client({
      contactPoints: [`127.0.0.1:${proxyPort}`],
      localDataCenter: env("CASSANDRA_LOCAL_DC"),
      queryOptions: { prepare: true },
      socketOptions: { connectTimeout: 1000, readTimeout: 2000 },
      policies: {
        // Every node the driver discovers is reached through the proxy.
        addressResolution: new ViaProxy(),
        reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(60_000),
      },
    });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), viaProxy, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    const [a] = await users(s, "a");
    const conv = (await group(s, [a!])).conversation;
    expect(await s.lastSeq(conv.id)).toBe(0);
    proxy.close();
    for (const sock of sockets) sock.destroy();
    await sleep(200);
    const e1 = await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id], messages: [msg(a!, "z")] }]).catch((e: unknown) => e);
    expect(e1).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    const e2 = await s.readLog(a!.id, 0, 10).catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    await s.close();
  }, 60_000);
});
