import { randomBytes } from "node:crypto";
import net from "node:net";
import cassandra from "cassandra-driver";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, Event, HistoryDirection, MembershipAction } from "../../gen/chat/v1/client.js";
import { ConfigError } from "../../internal/config/env.js";
import { ChatError } from "../../internal/errors/chat-error.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import { createDatabase } from "../support/postgres-database.js";
import { LogLeader } from "../../internal/store/cassandra-leader.js";
import { RequestTrackerBase } from "../../internal/store/cassandra-requests.js";
import { CassandraStore, type CassandraStoreOptions, createCassandraClient } from "../../internal/store/store-cassandra.js";
import { SqlStore } from "../../internal/store/store-sql.js";
import type { Store } from "../../internal/store/store.js";
import { expectGapless, group, id, messageSeqs, msg, readAll, storeContract, type StoreBackend, users } from "../support/store-contract.js";
import { waitFor } from "../support/wait.js";

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
    secondOwner: async (first) => first,
    logExpires: true,
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
  const open = (extra: Partial<CassandraStoreOptions> = {}) => CassandraStore.open(new PostgresSqlClient(backend.url()), cassClient(), {
    keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET, ...extra,
  });
  beforeAll(async () => {
    await backend.setup();
    raw = cassClient();
    await raw.connect();
  }, 120_000);
  // Each test starts on an instance that holds the log: one that a test's other instance took it from refuses every call.
  beforeEach(async () => {
    store = (await backend.open()) as CassandraStore;
  }, 60_000);
  afterAll(async () => {
    await raw?.shutdown();
    await backend.teardown();
  }, 60_000);

  const historySeqs = async (s: Store, userId: string, conversationId: string) =>
    (await s.history(userId, { conversationId, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 200 })).messages;

  it("appends, acknowledges pointers and logs events with no lightweight transaction", async () => {
    const kinds: string[] = [];
    class Recorder extends RequestTrackerBase {
      override onSuccess(_host: unknown, query: string | Array<{ query: string }>): void {
        for (const q of typeof query === "string" ? [query] : query.map((x) => x.query)) kinds.push(/\bIF\b/i.test(q) ? "lwt" : "plain");
      }
    }
    const client = new cassandra.Client({ contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","), localDataCenter: DC, requestTracker: new Recorder(),
      queryOptions: { prepare: true, consistency: cassandra.types.consistencies.localQuorum, serialConsistency: cassandra.types.consistencies.localSerial } });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    try {
      // Opening took the log: that is where the design's only Paxos rounds are.
      expect(kinds).toContain("lwt");
      const [a, b] = await users(s, "nl-a", "nl-b");
      const conv = (await group(s, [a!, b!])).conversation;
      kinds.length = 0;
      for (let i = 0; i < 5; i++) await s.append([{ conversationId: conv.id, baseSeq: i, memberIds: [a!.id, b!.id], messages: [msg(a!, `nl${i}`)] }]);
      await s.updatePointersBatch([{ conversationId: conv.id, userId: b!.id, deliveredSeq: 5, readSeq: 3 }]);
      await s.changeMessage({ conversationId: conv.id, seq: 2, actorId: a!.id, atMs: 5_000, edit: { text: "edited" } } as never);
      expect(kinds.length).toBeGreaterThan(0);
      expect(kinds.filter((k) => k === "lwt")).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it("a first send skips the dedupe read; a resend of it is looked up and answered as the original", async () => {
    const statements: string[] = [];
    class Recorder extends RequestTrackerBase {
      override onSuccess(_host: unknown, query: string | Array<{ query: string }>): void {
        for (const q of typeof query === "string" ? [query] : query.map((x) => x.query)) statements.push(q);
      }
    }
    const client = new cassandra.Client({ contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","), localDataCenter: DC, requestTracker: new Recorder(),
      queryOptions: { prepare: true, consistency: cassandra.types.consistencies.localQuorum, serialConsistency: cassandra.types.consistencies.localSerial } });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    const dedupeReads = () => statements.filter((q) => /^SELECT\b.*\bFROM\s+\S*message_ids\b.*\bclient_msg_id\s*=/is.test(q)).length;
    try {
      const [a, b] = await users(s, "fs-a", "fs-b");
      const conv = (await group(s, [a!, b!])).conversation;
      const memberIds = [a!.id, b!.id];
      statements.length = 0;
      const [first] = await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [{ ...msg(a!, "fs1"), firstSend: true }, { ...msg(a!, "fs2"), firstSend: true }] }]);
      expect(first!.messages.map((m) => [m.message!.seq, m.duplicate])).toEqual([[1, false], [2, false]]);
      expect(dedupeReads()).toBe(0);
      // The Sent was lost: the client sends fs1 again, no longer first. It is found, not stored twice.
      const [again] = await s.append([{ conversationId: conv.id, baseSeq: 2, memberIds, messages: [msg(a!, "fs1"), { ...msg(a!, "fs3"), firstSend: true }] }]);
      expect(again!.messages.map((m) => [m.message!.seq, m.duplicate])).toEqual([[1, true], [3, false]]);
      expect(dedupeReads()).toBe(1);
      const page = await s.history(b!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
      expect(page.messages.map((m) => [m.seq, m.clientMsgId])).toEqual([[1, "fs1"], [2, "fs2"], [3, "fs3"]]);
    } finally {
      await s.close();
    }
  });

  it("sync-log entries expire after SYNC_LOG_RETENTION_S: a read from before them is told where the trim ends, the log goes on after it, history keeps every message", async () => {
    const short = await open({ logRetentionSeconds: 1 });
    const [a, b] = await users(short, "ttl-a", "ttl-b");
    const conv = (await group(short, [a!, b!])).conversation;
    const send = (s: Store, base: number, n: number) => s.append([{ conversationId: conv.id, baseSeq: base, memberIds: [a!.id, b!.id], messages: Array.from({ length: n }, (_, k) => msg(a!, `ttl${base + k}`)) }]);
    await send(short, 0, 3);
    // b's log: 1 its membership, 2-4 the messages. Expiry is Cassandra's clock: wait for it, whatever the load.
    await waitFor("b's first entries to expire", async () => (await short.readLog(b!.id, 0, 10)).trimmedTo === 4, { timeoutMs: 60_000 });
    // A new leader (keeping entries longer) learns the head from the marks, which never expire.
    const long = await open({ logRetentionSeconds: 3_600 });
    await send(long, 3, 2);
    for (const after of [0, 3]) expect(await long.readLog(b!.id, after, 10)).toMatchObject({ events: [], head: 6, trimmedTo: 4 });
    const rest = await long.readLog(b!.id, 4, 10);
    expect(rest.trimmedTo ?? 0).toBe(0);
    expect(rest.events.map((e) => e.pos)).toEqual([5, 6]);
    expect(messageSeqs(rest.events, conv.id)).toEqual([4, 5]);
    expect((await historySeqs(long, b!.id, conv.id)).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    await Promise.all([short.close(), long.close()]);
  }, 120_000);

  it("a second instance takes the log while the first has appends in flight: every acknowledged message keeps its seq, nothing is numbered twice, every device's log equals history, and the first refuses from then on", async () => {
    let deposed = 0;
    const first = await open({ onDeposed: (e) => { deposed = e; } });
    const [a, b, c] = await users(first, "ov-a", "ov-b", "ov-c");
    const convs = await Promise.all([0, 1, 2].map(async () => (await group(first, [a!, b!, c!])).conversation));
    const memberIds = [a!.id, b!.id, c!.id];
    const acked = new Map<string, { conv: string; seq: number }>();
    const refused: Array<{ conv: string; clientMsgId: string }> = [];
    // One chat owner per conversation: one append at a time, the next from the last result, until refused.
    const owners = convs.map((conv, k) => (async () => {
      let base = 0;
      for (let i = 0; ; i++) {
        const clientMsgId = `ov${k}-${i}`;
        try {
          const [r] = await first.append([{ conversationId: conv.id, baseSeq: base, memberIds, messages: [msg(a!, clientMsgId)] }]);
          expect(r!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
          base = r!.lastSeq;
          acked.set(clientMsgId, { conv: conv.id, seq: r!.messages[0]!.message!.seq });
        } catch (err) {
          expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
          refused.push({ conv: conv.id, clientMsgId });
          return;
        }
      }
    })());
    await waitFor("acknowledged appends on the first instance", () => acked.size >= 15);
    const second = await open();
    await Promise.all(owners);
    expect(deposed).toBeGreaterThan(0);
    await expect(first.lastSeq(convs[0]!.id)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    await expect(first.readLog(b!.id, 0, 10)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    // The refused sends are sent again through the new leader with their client_msg_ids: each is stored once.
    for (const r of refused) {
      const base = await second.lastSeq(r.conv);
      const [res] = await second.append([{ conversationId: r.conv, baseSeq: base, memberIds, messages: [msg(a!, r.clientMsgId)] }]);
      expect(res!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
    }
    for (const conv of convs) {
      const hist = await historySeqs(second, a!.id, conv.id);
      expect(hist.map((m) => m.seq)).toEqual(hist.map((_, i) => i + 1));
      expect(new Set(hist.map((m) => m.clientMsgId)).size).toBe(hist.length);
      for (const [clientMsgId, at] of acked) if (at.conv === conv.id) expect(hist.find((m) => m.clientMsgId === clientMsgId)?.seq).toBe(at.seq);
      for (const r of refused) if (r.conv === conv.id) expect(hist.filter((m) => m.clientMsgId === r.clientMsgId)).toHaveLength(1);
      for (const u of memberIds) {
        const log = await readAll(second, u);
        expectGapless(log);
        expect(messageSeqs(log, conv.id)).toEqual(hist.map((m) => m.seq));
      }
    }
    await Promise.all([first.close(), second.close()]);
  }, 120_000);

  it("a tick's heads come from its intent when a stop cut its marks short: the next leader numbers after it", async () => {
    const s = await open();
    const [a, b] = await users(s, "im-a", "im-b");
    const conv = (await group(s, [a!, b!])).conversation;
    await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "im1"), msg(a!, "im2")] }]);
    // Marks are written with the next tick or after a short idle: closing now leaves them behind.
    await s.close();
    const mark = await raw.execute(`SELECT value FROM ${KEYSPACE}.log_marks WHERE key = ?`, [`c:${conv.id}`], { prepare: true });
    expect(Number(mark.first()?.["value"] ?? 0)).toBeLessThan(2);
    const next = await open();
    expect(await next.lastSeq(conv.id)).toBe(2);
    const [r] = await next.append([{ conversationId: conv.id, baseSeq: 2, memberIds: [a!.id, b!.id], messages: [msg(a!, "im3")] }]);
    expect(r!.messages[0]!.message!.seq).toBe(3);
    const log = await readAll(next, b!.id);
    expectGapless(log);
    expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3]);
    await next.close();
  });

  it("marks wait and merge across ticks: a next leader takes the heads of every tick since the last marks from their intents, not only the last one's", async () => {
    const s = await open();
    const [a, b] = await users(s, "mw-a", "mw-b");
    const [x, y] = [(await group(s, [a!, b!])).conversation, (await group(s, [a!, b!])).conversation];
    const memberIds = [a!.id, b!.id];
    await s.append([{ conversationId: x.id, baseSeq: 0, memberIds, messages: [msg(a!, "mw1"), msg(a!, "mw2")] }]);
    // Later ticks that do not move x: its head is named only in an earlier intent.
    await s.append([{ conversationId: y.id, baseSeq: 0, memberIds, messages: [msg(a!, "mw3")] }]);
    await s.append([{ conversationId: y.id, baseSeq: 1, memberIds, messages: [msg(a!, "mw4")] }]);
    await s.close();
    const mark = await raw.execute(`SELECT value FROM ${KEYSPACE}.log_marks WHERE key = ?`, [`c:${x.id}`], { prepare: true });
    expect(Number(mark.first()?.["value"] ?? 0)).toBeLessThan(2);
    const next = await open();
    expect(await next.lastSeq(x.id)).toBe(2);
    expect(await next.lastSeq(y.id)).toBe(2);
    const [r] = await next.append([{ conversationId: x.id, baseSeq: 2, memberIds, messages: [msg(a!, "mw5")] }]);
    expect(r!.messages[0]!.message!.seq).toBe(3);
    const log = await readAll(next, b!.id);
    expectGapless(log);
    expect(messageSeqs(log, x.id)).toEqual([1, 2, 3]);
    expect(messageSeqs(log, y.id)).toEqual([1, 2]);
    await next.close();
  });

  it("checks acknowledgements and history against members kept in memory, and a membership change it commits is seen by the next check", async () => {
    const [a, b, c] = await users(store, "ms-a", "ms-b", "ms-c");
    const conv = (await group(store, [a!, b!, c!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id, c!.id], messages: [msg(a!, "ms1"), msg(a!, "ms2")] }]);
    const ack = async (u: string, seq: number) => (await store.updatePointersBatch([{ conversationId: conv.id, userId: u, deliveredSeq: seq, readSeq: 0 }]))[0]!;
    const page = (u: string) => store.history(u, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
    expect((await ack(b!.id, 1)).pointers?.deliveredSeq).toBe(1);
    expect((await page(b!.id)).messages).toHaveLength(2);
    await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: b!.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 100 });
    expect(await ack(b!.id, 2)).toEqual({ error: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    await expect(page(b!.id)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    expect(await store.isMember(conv.id, b!.id)).toBe(false);
    await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: b!.id, action: MembershipAction.MEMBERSHIP_ACTION_ADDED, maxMembers: 100 });
    expect((await ack(b!.id, 2)).pointers?.deliveredSeq).toBe(2);
    expect(await store.isMember(conv.id, b!.id)).toBe(true);
  });

  it("rows a deposed leader writes past the heads are never read, and the leader's own writes there replace them whole", async () => {
    const [a, b] = await users(store, "dz-a", "dz-b");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "dz1")] }]);
    const head = (await store.readLog(b!.id, 0, 100)).head;
    // A late write of an earlier epoch (its timestamp is below every epoch's of the log): a message at
    // seq 2 and an event at b's next position.
    const stale = Event.encode({ pos: 0, atMs: 1, kind: { $case: "read", value: { conversationId: conv.id, readSeq: 9 } } }).finish();
    await raw.execute(`INSERT INTO ${KEYSPACE}.messages (conversation_id, bucket, seq, sender_id, sender_device_id, client_msg_id, body, sent_at, reply_to_seq) VALUES (?, 0, 2, ?, 'd', 'ghost', 'ghost', 1, 0)`, [conv.id, b!.id], { prepare: true });
    await raw.execute(`INSERT INTO ${KEYSPACE}.sync_log (user_id, bucket, pos, at, conversation_id, seq, event) VALUES (?, ?, ?, 1, ?, 0, ?)`,
      [b!.id, Math.floor((head + 1) / LOG_ENTRIES_PER_BUCKET), head + 1, conv.id, Buffer.from(stale)], { prepare: true });
    expect((await store.readLog(b!.id, 0, 100)).events.map((e) => e.pos)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    expect((await historySeqs(store, a!.id, conv.id)).map((m) => m.clientMsgId)).toEqual(["dz1"]);
    await store.append([{ conversationId: conv.id, baseSeq: 1, memberIds: [a!.id, b!.id], messages: [msg(a!, "dz2")] }]);
    expect((await historySeqs(store, a!.id, conv.id)).map((m) => m.clientMsgId)).toEqual(["dz1", "dz2"]);
    const log = await readAll(store, b!.id);
    expectGapless(log);
    expect(log[log.length - 1]!.kind).toMatchObject({ $case: "message", value: { clientMsgId: "dz2", seq: 2 } });
  });

  it("an edit, a deletion for everyone or for oneself that a deposed leader wrote but never committed is put back by the next leader", async () => {
    const [a, b] = await users(store, "cp-a", "cp-b");
    const conv = (await group(store, [a!, b!])).conversation;
    await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "cp1", "one"), msg(a!, "cp2", "two"), msg(a!, "cp3", "three")] }]);
    const change = { conversationId: conv.id, actorId: a!.id, atMs: Date.now(), edit: false, text: "", editWindowMs: 10 ** 15, maxEdits: 5, forEveryone: false, deleteWindowMs: 10 ** 15 };
    await store.changeMessage({ ...change, seq: 1, edit: true, text: "one, edited" });
    const committed = await historySeqs(store, b!.id, conv.id);
    const logs = await Promise.all([a!.id, b!.id].map((u) => readAll(store, u)));
    const cells = async () => (await raw.execute(`SELECT seq, body, edited_at, edit_count, deleted_at FROM ${KEYSPACE}.messages WHERE conversation_id = ? AND bucket = 0`, [conv.id], { prepare: true })).rows
      .map((r) => [Number(r["seq"]), r["body"], r["edited_at"]?.toString() ?? null, r["edit_count"], r["deleted_at"]?.toString() ?? null]);
    const rowsOf = async (table: string, where: string, params: unknown[]) => (await raw.execute(`SELECT seq FROM ${KEYSPACE}.${table} WHERE ${where}`, params, { prepare: true })).rows.map((r) => Number(r["seq"]));
    const before = await cells();
    const phantoms = [
      { req: { ...change, seq: 1, edit: true, text: "never acknowledged" }, written: async () => (await cells())[0]![1] === "never acknowledged" },
      { req: { ...change, seq: 2, forEveryone: true }, written: async () => (await rowsOf("deleted_messages", "conversation_id = ?", [conv.id])).includes(2) },
      { req: { ...change, seq: 3, actorId: b!.id }, written: async () => (await rowsOf("hidden_messages", "user_id = ? AND conversation_id = ?", [b!.id, conv.id])).includes(3) },
    ];
    const taken: CassandraStore[] = [];
    try {
      for (const phantom of phantoms) {
        // The leader is cut off between a tick's rows and its intent: the rows are written, the
        // tick never commits, and a second instance takes the log meanwhile.
        let release!: () => void;
        const held = new Promise<void>((resolve) => { release = resolve; });
        let stalled = false;
        const client = cassClient();
        const execute = client.execute.bind(client) as (...args: unknown[]) => Promise<unknown>;
        (client as unknown as { execute: unknown }).execute = async (query: string, ...rest: unknown[]) => {
          if (query.includes(".log_intents (epoch, tick, heads")) { stalled = true; await held; }
          return execute(query, ...rest);
        };
        const first = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
        taken.push(first);
        const answer = first.changeMessage(phantom.req).then(() => "acknowledged", (err: unknown) => err);
        await waitFor("the cut-off leader's tick to reach its intent", () => stalled);
        expect(await phantom.written()).toBe(true);
        store = await open();
        taken.push(store);
        release();
        expect(await answer).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
      }
      expect(await cells()).toEqual(before);
      expect(await rowsOf("deleted_messages", "conversation_id = ?", [conv.id])).toEqual([]);
      expect(await rowsOf("hidden_messages", "user_id = ? AND conversation_id = ?", [b!.id, conv.id])).toEqual([]);
      expect(await historySeqs(store, b!.id, conv.id)).toEqual(committed);
      expect(await Promise.all([a!.id, b!.id].map((u) => readAll(store, u)))).toEqual(logs);
      // The next change of the message starts from what was committed: one edit, so a second is
      // within a cap of two (the deposed leader's count would have refused it).
      await store.changeMessage({ ...change, seq: 1, edit: true, text: "one, edited twice", maxEdits: 2 });
      expect((await historySeqs(store, b!.id, conv.id))[0]).toMatchObject({ text: "one, edited twice" });
      // No record is left holding a replaced text: a committed tick's goes before its answer, a
      // closed epoch's once applied.
      expect((await raw.execute(`SELECT writes FROM ${KEYSPACE}.log_restore`)).rows).toEqual([]);
    } finally {
      for (const s of taken) await s.close();
    }
  }, 120_000);

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
    // Seq 1: the store before the log's leader (it edited by compare-and-set, recording the outbox id in
    // `changes`) took the edit, then died before logging it; its write is the message row's latest.
    const applied = await outbox(1, "one, edited");
    const written = await raw.execute(`SELECT WRITETIME(body) AS t FROM ${KEYSPACE}.messages WHERE conversation_id = ? AND bucket = 0 AND seq = 1`, [conv.id], { prepare: true });
    const after = (written.first()!["t"] as cassandra.types.Long).add(1);
    await raw.execute(`UPDATE ${KEYSPACE}.messages USING TIMESTAMP ? SET body = ?, edited_at = ?, edit_count = ?, changes = changes + ? WHERE conversation_id = ? AND bucket = 0 AND seq = 1`,
      [after, applied.text, 2_000, 1, [applied.id], conv.id], { prepare: true });
    // Seq 2: the process died before the compare-and-set: nothing happened, nothing may be logged.
    await outbox(2, "never applied");
    store = (await backend.open()) as CassandraStore; // takes the log, and drains the outbox
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
    // The group's creation (an event), then the two messages (references: an empty event, never a null).
    expect(res.rows.map((r) => [Number(r["seq"]) > 0, (r["event"] as Buffer).length === 0])).toEqual([[false, false], [true, true], [true, true]]);
    // getTrace waits until the trace is complete (Cassandra writes it asynchronously).
    const trace = (await raw.metadata.getTrace((res.info as { traceId: cassandra.types.Uuid }).traceId)) as { events: Array<{ activity: string }> };
    const counts = trace.events.map((e) => /Read (\d+) live rows and (\d+) tombstone cells/.exec(e.activity)).filter((m) => m !== null);
    expect(counts.length).toBeGreaterThan(0);
    expect(counts.map((m) => [Number(m![1]), Number(m![2])])).toEqual(counts.map(() => [3, 0]));
  });

  it("compacts the expiring log index and sync log by time windows", async () => {
    for (const table of ["log_index", "sync_log"]) {
      const { rows } = await raw.execute(`SELECT compaction, gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?`, [KEYSPACE, table], { prepare: true });
      expect((rows[0]!["compaction"] as Record<string, string>)["class"]).toMatch(/TimeWindowCompactionStrategy$/);
      expect(rows[0]!["gc_grace_seconds"]).toBe(10800);
    }
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
      // The later instance took the log: it reads what it wrote where this keyspace put it.
      for (const s of [later]) {
        const page = await s.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 10 });
        expect(page.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(messageSeqs(await readAll(s, b!.id), conv.id)).toEqual([1, 2, 3, 4, 5, 6]);
      }
    } finally {
      await later.close();
    }
  });

  /** A store whose Cassandra client records the text of every statement it sends ("batch" for a batch). */
  const recordingStore = async () => {
    const asked: string[] = [];
    class Recorder extends RequestTrackerBase {
      override onSuccess(_host: unknown, query: string | Array<{ query: string }>): void { asked.push(typeof query === "string" ? query : "batch"); }
    }
    const client = new cassandra.Client({ contactPoints: env("CASSANDRA_CONTACT_POINTS").split(","), localDataCenter: DC, requestTracker: new Recorder(),
      queryOptions: { prepare: true, consistency: cassandra.types.consistencies.localQuorum, serialConsistency: cassandra.types.consistencies.localSerial } });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    return { asked, s };
  };

  it("lists a user's conversations with no Cassandra read for one whose members' pointers it holds and that has nothing unread", async () => {
    const { asked, s } = await recordingStore();
    try {
      const [a, b] = await users(s, "lc-a", "lc-b");
      const read = (await group(s, [a!, b!])).conversation;
      const unread = (await group(s, [a!, b!])).conversation;
      await s.append([{ conversationId: read.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "lc1")] }]);
      await s.append([{ conversationId: unread.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "lc2"), msg(a!, "lc3")] }]);
      await s.updatePointers(read.id, b!.id, 1, 1);
      await s.updatePointers(unread.id, b!.id, 1, 0);
      asked.length = 0;
      const list = await s.listConversations(b!.id);
      expect(list.find((c) => c.id === read.id)).toMatchObject({ lastSeq: 1, readSeq: 1, unread: 0 });
      expect(list.find((c) => c.id === unread.id)).toMatchObject({ lastSeq: 2, readSeq: 0, unread: 2 });
      // Both conversations' pointers are in the leader's memory (it wrote them); only the one with
      // something unread needs its deletions counted.
      expect(asked.filter((q) => /\.pointers\b/.test(q))).toEqual([]);
      expect(asked.filter((q) => q.includes("deleted_messages"))).toHaveLength(1);
      // Deleted for everyone, an unread message no longer counts.
      await s.changeMessage({ conversationId: unread.id, seq: 2, actorId: a!.id, atMs: Date.now(), edit: false, text: "", editWindowMs: 0, maxEdits: 0, forEveryone: true, deleteWindowMs: 3_600_000 });
      expect((await s.listConversations(b!.id)).find((c) => c.id === unread.id)).toMatchObject({ unread: 1 });
    } finally {
      await s.close();
    }
  });

  it("answers a head check from the leader's memory, with one read of a mark for a user it has not seen", async () => {
    const { asked, s } = await recordingStore();
    try {
      const [a, b] = await users(s, "hc-a", "hc-b");
      const conv = (await group(s, [a!, b!])).conversation;
      // Past a bucket of 5 positions, so the exact head would read two buckets.
      const sent = Array.from({ length: 7 }, (_, i) => msg(a!, `hc${i}`));
      await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: sent }]);
      const exact = (await s.readLog(b!.id, 0, 100)).head;
      asked.length = 0;
      expect(await s.logHeads([a!.id, b!.id])).toEqual([exact, exact]);
      expect(asked).toEqual([]);
      expect(await s.logHeads([id("nobody")])).toEqual([0]);
      expect(asked.filter((q) => q.includes("log_marks"))).toHaveLength(1);
    } finally {
      await s.close();
    }
  });

  it("a tick's writes go in batches on a one-node cluster, and the later of two writes of one cell in a tick wins though its value sorts first", async () => {
    // Its own keyspace: taking its log directly must not depose the stores of the other tests.
    const ks = `${KEYSPACE}_batches`;
    const schema = await CassandraStore.open(new PostgresSqlClient(backend.url()), cassClient(), { keyspace: ks, localDc: DC });
    await schema.close();
    const client = cassClient();
    const batch = client.batch.bind(client) as (queries: Array<{ query: string; params: unknown[] }>, options?: unknown) => Promise<cassandra.types.ResultSet>;
    const batches: number[] = [];
    client.batch = (async (queries: Array<{ query: string; params: unknown[] }>, options?: unknown) => {
      batches.push(queries.length);
      return batch(queries, options);
    }) as never;
    const leader = await LogLeader.takeOver(client, ks, { legacyHead: async () => 0, onFailed: () => {} });
    if (!(leader instanceof LogLeader)) throw new Error("the keyspace's log is held by another leader");
    try {
      // Same timestamp for both (one batch-wide timestamp) would let the larger value win: 9.
      const write = (v: number) => ({ query: `INSERT INTO ${ks}.store_settings (name, value) VALUES (?, ?)`, params: ["batch-order", v] });
      await leader.submit([write(9), write(1)], new Map());
      const row = (await client.execute(`SELECT value FROM ${ks}.store_settings WHERE name = 'batch-order'`)).first();
      expect(Number(row?.["value"])).toBe(1);
      expect(batches.length).toBeGreaterThan(0);
    } finally {
      leader.stop();
      await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
      await client.shutdown();
    }
  });

  it("a pointer never moves back when the leader's pointer cache fills while a tick still carries the pointer's write", async () => {
    const signal = () => {
      let fire = () => {};
      const fired = new Promise<void>((resolve) => { fire = resolve; });
      return { fired, fire };
    };
    // The leader's client, with a hand on two statements: the write of b's read pointer at 10 waits
    // until released (its tick stays uncommitted), and the reads of pointer rows are counted per user.
    const client = cassClient();
    const execute = client.execute.bind(client) as (query: string, params?: unknown, options?: unknown) => Promise<cassandra.types.ResultSet>;
    let b = "";
    const [gate, reached, rereadB] = [signal(), signal(), signal()];
    const reads = new Map<string, number>();
    // b's read pointer written at 10, as a request of its own or in a batch, with or without its
    // timestamp in the statement (UPDATE ... USING TIMESTAMP ? SET: the timestamp comes first).
    const isHeldWrite = (query: string, params?: unknown[]) => {
      if (!/\.pointers (USING TIMESTAMP \? )?SET/.test(query)) return false;
      const p = query.includes("USING TIMESTAMP") ? params?.slice(1) : params;
      return p?.[3] === b && p?.[1] === 10;
    };
    const batch = client.batch.bind(client) as (queries: Array<{ query: string; params: unknown[] }>, options?: unknown) => Promise<cassandra.types.ResultSet>;
    client.batch = (async (queries: Array<{ query: string; params: unknown[] }>, options?: unknown) => {
      if (queries.some((q) => isHeldWrite(q.query, q.params))) {
        reached.fire();
        await gate.fired;
      }
      return batch(queries, options);
    }) as never;
    client.execute = (async (query: string, params?: unknown[], options?: unknown) => {
      if (isHeldWrite(query, params)) {
        reached.fire();
        await gate.fired;
      }
      const r = await execute(query, params, options);
      if (/^SELECT delivered_seq, read_seq FROM \S+\.pointers /.test(query)) {
        const user = params![1] as string;
        reads.set(user, (reads.get(user) ?? 0) + 1);
        if (user === b && reads.get(b) === 2) rereadB.fire();
      }
      return r;
    }) as never;
    // A bound of 4 pointers: loading a few others while the write is in flight fills the cache.
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), client, {
      keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET, maxPointers: 4,
    });
    let next: CassandraStore | undefined;
    try {
      const [sender, reader, ...others] = await users(s, "pe-a", "pe-b", ...Array.from({ length: 8 }, (_, i) => `pe-o${i}`));
      b = reader!.id;
      const conv = (await group(s, [sender!, reader!, ...others])).conversation;
      const memberIds = conv.members.map((m) => m.userId);
      await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: Array.from({ length: 10 }, (_, i) => msg(sender!, `pe${i}`)) }]);
      // b reads up to 10: staged, its tick held in flight by the gate.
      const up = s.updatePointers(conv.id, b, 10, 10);
      await reached.fired;
      // Meanwhile other members' pointers are loaded (moves that change nothing: no tick), past the bound.
      for (const o of others) await s.updatePointers(conv.id, o.id, 0, 0);
      // Then a late, lower report of b's (a device behind). It must see 10 and change nothing. Had b's
      // entry been dropped, it would read b's row again (the write not made yet) and move from there.
      // Either it answers, or that reread has returned and its move is staged.
      const down = s.updatePointers(conv.id, b, 5, 5);
      await Promise.race([down, rereadB.fired]);
      await new Promise((resolve) => setImmediate(resolve));
      gate.fire();
      const [upped, downed] = await Promise.all([up, down]);
      expect(upped).toMatchObject({ deliveredSeq: 10, readSeq: 10, changed: true });
      // The cache did evict (its oldest idle entries): the first other member's pointer is read again.
      await s.updatePointers(conv.id, others[0]!.id, 0, 0);
      expect(reads.get(others[0]!.id)).toBe(2);
      const readOf = (c: { members: Array<{ userId: string; readSeq: number }> } | undefined) => c?.members.find((m) => m.userId === b)?.readSeq;
      const cached = readOf((await s.getConversation(conv.id))?.conversation);
      // A new leader knows only what is in Cassandra.
      next = await open();
      const stored = readOf((await next.getConversation(conv.id))?.conversation);
      const listed = (await next.listConversations(b)).find((c) => c.id === conv.id)?.readSeq;
      expect({ answered: downed.readSeq, changed: downed.changed, cached, stored, listed }).toEqual({ answered: 10, changed: false, cached: 10, stored: 10, listed: 10 });
    } finally {
      gate.fire();
      await s.close();
      await next?.close();
    }
  });

  it("a batch of pointer moves whose loads fill the pointer cache moves each pointer from the value it loaded", async () => {
    const s = await open({ maxPointers: 4 });
    let next: CassandraStore | undefined;
    try {
      const [sender, reader, ...others] = await users(s, "pb-a", "pb-b", ...Array.from({ length: 8 }, (_, i) => `pb-o${i}`));
      const conv = (await group(s, [sender!, reader!, ...others])).conversation;
      const memberIds = conv.members.map((m) => m.userId);
      await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: Array.from({ length: 10 }, (_, i) => msg(sender!, `pb${i}`)) }]);
      await s.updatePointers(conv.id, reader!.id, 10, 10);
      // The reader's entry is found first; the others' loads then pass the bound before any move is decided.
      const [moved] = await s.updatePointersBatch([
        { conversationId: conv.id, userId: reader!.id, deliveredSeq: 7, readSeq: 7 },
        ...others.map((o) => ({ conversationId: conv.id, userId: o.id, deliveredSeq: 0, readSeq: 0 })),
      ]);
      next = await open();
      const stored = (await next.getConversation(conv.id))?.conversation.members.find((m) => m.userId === reader!.id)?.readSeq;
      expect({ answered: moved!.pointers?.readSeq, changed: moved!.pointers?.changed, stored }).toEqual({ answered: 10, changed: false, stored: 10 });
    } finally {
      await s.close();
      await next?.close();
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

  it("Cassandra going away under load and coming back: sends are refused UNAVAILABLE meanwhile, the leader takes its log back, and every acknowledged message is there once, in every member's log", async () => {
    const [host, port] = env("CASSANDRA_CONTACT_POINTS").split(",")[0]!.split(":");
    const sockets = new Set<net.Socket>();
    // While `down`, the proxy drops every connection it is offered: Cassandra is gone for the driver.
    let down = false;
    const proxy = net.createServer((inbound) => {
      if (down) { inbound.destroy(); return; }
      const outbound = net.connect(Number(port ?? 9042), host);
      for (const sk of [inbound, outbound]) { sockets.add(sk); sk.on("error", () => {}); sk.on("close", () => sockets.delete(sk)); }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((res) => proxy.listen(0, "127.0.0.1", res));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    type Translator = cassandra.policies.addressResolution.AddressTranslator;
    const Base = (cassandra.policies.addressResolution as unknown as { AddressTranslator: new () => Translator }).AddressTranslator;
    class ViaProxy extends Base {
      override translate(_address: string, _port: number, callback: (endpoint: string) => void): void { callback(`127.0.0.1:${proxyPort}`); }
    }
    const viaProxy = new cassandra.Client({
      contactPoints: [`127.0.0.1:${proxyPort}`], localDataCenter: DC,
      queryOptions: { prepare: true, consistency: cassandra.types.consistencies.localQuorum, serialConsistency: cassandra.types.consistencies.localSerial },
      socketOptions: { connectTimeout: 1000, readTimeout: 2000 },
      policies: { addressResolution: new ViaProxy(), reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(200) },
    });
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), viaProxy, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    const [a, b] = await users(s, "cr-a", "cr-b");
    const conv = (await group(s, [a!, b!])).conversation;
    const memberIds = [a!.id, b!.id];
    const acked = new Map<string, number>();
    let refusals = 0;
    // A chat owner: one send at a time, resent with its client_msg_id until acknowledged.
    const owner = (async () => {
      for (let i = 0; i < 40; i++) {
        const clientMsgId = `cr${i}`;
        // The outcome waited for is the send acknowledged, not the store answering some other call:
        // lastSeq answers from the leader's heads in memory while append's dedupe read fails at once
        // with NoHostAvailable, and a loop on those two alone never let a timer fire, the driver's
        // reconnection among them (docs/testing.md, "When a test run hangs"). waitFor polls on a timer.
        await waitFor(`${clientMsgId} acknowledged`, async () => {
          try {
            const base = await s.lastSeq(conv.id);
            const [r] = await s.append([{ conversationId: conv.id, baseSeq: base, memberIds, messages: [msg(a!, clientMsgId)] }]);
            if (r!.error === ErrorCode.ERROR_CODE_CONFLICT) return false;
            acked.set(clientMsgId, r!.messages[0]!.message!.seq);
            return true;
          } catch (err) {
            expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
            refusals++;
            return false;
          }
        });
      }
    })();
    await waitFor("acknowledged sends before the outage", () => acked.size >= 10);
    down = true;
    for (const sk of sockets) sk.destroy();
    await waitFor("sends refused while Cassandra is away", () => refusals >= 3);
    const during = acked.size;
    down = false;
    await owner;
    expect(acked.size).toBeGreaterThan(during);
    const hist = await historySeqs(s, a!.id, conv.id);
    expect(hist.map((m) => m.seq)).toEqual(hist.map((_, i) => i + 1));
    expect(hist.map((m) => m.clientMsgId)).toEqual(Array.from({ length: 40 }, (_, i) => `cr${i}`));
    for (const [clientMsgId, seq] of acked) expect(hist[seq - 1]!.clientMsgId).toBe(clientMsgId);
    for (const u of memberIds) {
      const log = await readAll(s, u);
      expectGapless(log);
      expect(messageSeqs(log, conv.id)).toEqual(hist.map((m) => m.seq));
    }
    await s.close();
    proxy.close();
    for (const sk of sockets) sk.destroy();
  }, 120_000);

  it("Cassandra unreachable at start surfaces as a retryable UNAVAILABLE (going away later: the test above)", async () => {
    // Nothing listens there: open fails with NoHostAvailableError.
    const dead = new cassandra.Client({ contactPoints: ["127.0.0.1:1"], localDataCenter: env("CASSANDRA_LOCAL_DC"), socketOptions: { connectTimeout: 1000 } });
    const err = await CassandraStore.open(new PostgresSqlClient(backend.url()), dead, { keyspace: KEYSPACE, localDc: DC, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect(err).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE, retryable: true });
    await dead.shutdown();
  });
});
