import { randomBytes } from "node:crypto";
import net from "node:net";
import cassandra from "cassandra-driver";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppendGroup, type User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, type Event, HistoryDirection, Member, MembershipAction } from "../../gen/chat/v1/client.js";
import { ChatError } from "../../internal/errors/chat-error.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import { CassandraStore, createCassandraClient } from "../../internal/store/store-cassandra.js";
import { SqlStore } from "../../internal/store/store-sql.js";
import type { Store } from "../../internal/store/store.js";
import { pageBoundsContract } from "../support/page-bounds-contract.js";
import { sessionStoreContract } from "../support/session-store-contract.js";

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
const id = (p: string) => `${p}-${RUN}-${++uniq}`;

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

interface Backend {
  name: string;
  /** The throwaway PostgreSQL database of this backend. */
  url(): string;
  /** Opens another store instance over the same data (a second "owner"). */
  open(): Promise<Store>;
  setup(): Promise<void>;
  teardown(): Promise<void>;
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
function cassandraBackend(): Backend {
  let db: { url: string; drop: () => Promise<void> };
  const opened: Store[] = [];
  return {
    name: "cassandra",
    url: () => db.url,
    async setup() { db = await createDatabase(); },
    async open() {
      const s = await CassandraStore.open(new PostgresSqlClient(db.url), cassClient(), {
        keyspace: KEYSPACE, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET,
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

async function users(store: Store, ...names: string[]): Promise<User[]> {
  const out: User[] = [];
  for (const n of names) {
    const u: User = { id: id(`u-${n}`), username: id(n), passwordHash: "h", createdAtMs: Date.now() };
    await store.createUser(u);
    out.push(u);
  }
  return out;
}

async function group(store: Store, members: User[]) {
  const conv = Conversation.create({ id: id("c"), kind: ConversationKind.CONVERSATION_KIND_GROUP, title: "g", members: members.map((m) => Member.create({ userId: m.id })) });
  return store.createConversation(conv, members[0]!.id, 100);
}

const msg = (sender: User, clientMsgId: string, text = clientMsgId) => ({ senderId: sender.id, senderDeviceId: "d1", clientMsgId, text, sentAtMs: 1_000 });

async function readAll(store: Store, userId: string): Promise<Event[]> {
  const out: Event[] = [];
  for (let after = 0; ; ) {
    const r = await store.readLog(userId, after, 3);
    if (r.events.length === 0) return out;
    out.push(...r.events);
    after = r.events[r.events.length - 1]!.pos;
  }
}

const messageSeqs = (events: Event[], conversationId: string) =>
  events.flatMap((e) => (e.kind?.$case === "message" && e.kind.value.conversationId === conversationId ? [e.kind.value.seq] : []));

function expectGapless(events: Event[]) {
  expect(events.map((e) => e.pos)).toEqual(events.map((_, i) => i + 1));
}

for (const backend of [sqlBackend(), cassandraBackend()]) {
  describe(`message store contract: ${backend.name}`, () => {
    let store: Store;
    beforeAll(async () => {
      await backend.setup();
      store = await backend.open();
    }, 120_000);
    afterAll(() => backend.teardown(), 60_000);

    // The backend's store is closed by its teardown.
    pageBoundsContract(backend.name, async () => store, async () => {});
    sessionStoreContract(backend.name, async () => store, async () => {});

    it("creates users and conversations; membership events land in every member's log", async () => {
      const [a, b, c] = await users(store, "a", "b", "c");
      await expect(store.createUser({ ...a!, id: id("other") })).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_ALREADY_EXISTS });
      expect((await store.getUserByName(a!.username))?.id).toBe(a!.id);
      expect((await store.getUsers([a!.id, b!.id])).map((u) => u.id).sort()).toEqual([a!.id, b!.id].sort());
      const created = await group(store, [a!, b!]);
      expect(created.created).toBe(true);
      expect(created.events.map((e) => [e.userId, e.event!.pos])).toEqual([[a!.id, 1], [b!.id, 1]]);
      const conv = created.conversation;
      const log = await store.readLog(b!.id, 0, 10);
      expect(log.head).toBe(1);
      expect(log.events[0]!.kind).toMatchObject({ $case: "membership", value: { action: MembershipAction.MEMBERSHIP_ACTION_CREATED, conversationId: conv.id } });

      const added = await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: c!.id, action: MembershipAction.MEMBERSHIP_ACTION_ADDED, maxMembers: 10 });
      expect(added.events.map((e) => [e.userId, e.event!.pos])).toEqual([[a!.id, 2], [b!.id, 2], [c!.id, 1]]);
      expect(added.conversation.members.map((m) => m.userId)).toEqual([a!.id, b!.id, c!.id]);
      const removed = await store.changeMembership({ conversationId: conv.id, actorId: a!.id, subjectId: b!.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 10 });
      expect(removed.events.map((e) => e.userId)).toEqual([a!.id, b!.id, c!.id]);
      const cLog = await readAll(store, c!.id);
      expect(cLog.map((e) => e.kind?.$case === "membership" && e.kind.value.action)).toEqual([MembershipAction.MEMBERSHIP_ACTION_ADDED, MembershipAction.MEMBERSHIP_ACTION_REMOVED]);
      expectGapless(cLog);
      await expect(store.changeMembership({ conversationId: conv.id, actorId: b!.id, subjectId: c!.id, action: MembershipAction.MEMBERSHIP_ACTION_REMOVED, maxMembers: 10 }))
        .rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
      const got = await store.getConversation(conv.id);
      expect(got?.conversation.members.map((m) => m.userId)).toEqual([a!.id, c!.id]);
      expect((await store.listConversations(c!.id)).map((x) => x.id)).toEqual([conv.id]);
    });

    it("append: seqs 1..n, gapless per-member positions, duplicates return the original, a stale base_seq is refused alone", async () => {
      const [a, b, c] = await users(store, "a", "b", "c");
      const conv = (await group(store, [a!, b!, c!])).conversation;
      const memberIds = [a!.id, b!.id, c!.id];
      const [r1] = await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds, messages: [1, 2, 3, 4, 5].map((i) => msg(a!, `m${i}`)) }]);
      expect(r1!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
      expect(r1!.lastSeq).toBe(5);
      expect(r1!.messages.map((m) => m.message!.seq)).toEqual([1, 2, 3, 4, 5]);
      // Each member's log: the membership event at 1, then the messages at 2..6.
      expect(r1!.messages.map((m) => m.positions)).toEqual([2, 3, 4, 5, 6].map((p) => [p, p, p]));
      expect(await store.lastSeq(conv.id)).toBe(5);
      for (const u of memberIds) {
        const log = await readAll(store, u);
        expectGapless(log);
        expect(messageSeqs(log, conv.id)).toEqual([1, 2, 3, 4, 5]);
      }
      // The sender has read what they sent.
      const snap = (await store.getConversation(conv.id))!.conversation;
      expect(snap.lastSeq).toBe(5);
      expect(snap.members.map((m) => [m.deliveredSeq, m.readSeq])).toEqual([[5, 5], [0, 0], [0, 0]]);

      // Duplicate (m2) and a new one in one group; a duplicate within the group too.
      const [r2] = await store.append([{ conversationId: conv.id, baseSeq: 5, memberIds, messages: [msg(a!, "m2", "again"), msg(b!, "n1"), msg(b!, "n1")] }]);
      expect(r2!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
      expect(r2!.messages.map((m) => [m.message!.seq, m.duplicate, m.message!.text, m.positions])).toEqual([
        [2, true, "m2", []], [6, false, "n1", [7, 7, 7]], [6, true, "n1", []],
      ]);
      expect(r2!.lastSeq).toBe(6);
      // Only duplicates: nothing written.
      const [r3] = await store.append([{ conversationId: conv.id, baseSeq: 6, memberIds, messages: [msg(a!, "m1")] }]);
      expect(r3).toMatchObject({ error: ErrorCode.ERROR_CODE_UNSPECIFIED, lastSeq: 6 });
      expect(r3!.messages[0]).toMatchObject({ duplicate: true, positions: [], message: { seq: 1, clientMsgId: "m1" } });

      // A stale base_seq is refused; another conversation's group in the same batch is not.
      const other = (await group(store, [a!, b!])).conversation;
      const [stale, ok, missing] = await store.append([
        { conversationId: conv.id, baseSeq: 3, memberIds, messages: [msg(a!, "late")] },
        { conversationId: other.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [msg(a!, "o1")] },
        { conversationId: id("nope"), baseSeq: 0, memberIds, messages: [msg(a!, "x")] },
      ]);
      expect(stale).toMatchObject({ error: ErrorCode.ERROR_CODE_CONFLICT, lastSeq: 6, messages: [] });
      expect(ok).toMatchObject({ error: ErrorCode.ERROR_CODE_UNSPECIFIED, lastSeq: 1 });
      expect(missing!.error).toBe(ErrorCode.ERROR_CODE_NOT_FOUND);
      expect(await store.lastSeq(conv.id)).toBe(6);
      const cLog = await readAll(store, c!.id);
      expect(messageSeqs(cLog, conv.id)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(cLog.some((e) => e.kind?.$case === "message" && e.kind.value.clientMsgId === "late")).toBe(false);
      await expect(store.lastSeq(id("nope"))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_NOT_FOUND });
    });

    it("two owners racing appends never write a seq twice; every member logs each accepted message once, in seq order", async () => {
      const owner2 = await backend.open();
      const [a, b, c] = await users(store, "a", "b", "c");
      const conv = (await group(store, [a!, b!, c!])).conversation;
      const memberIds = [a!.id, b!.id, c!.id];
      const accepted = new Map<string, number>();
      const owners = [store, owner2, store, owner2];
      let conflicts = 0;
      for (let round = 0; round < 12; round++) {
        await Promise.all(owners.map(async (owner, o) => {
          const clientMsgId = `r${round}-o${o}`;
          for (;;) {
            const base = await owner.lastSeq(conv.id);
            const [r] = await owner.append([{ conversationId: conv.id, baseSeq: base, memberIds, messages: [msg(o % 2 ? b! : a!, clientMsgId)] }]);
            if (r!.error === ErrorCode.ERROR_CODE_CONFLICT) { conflicts++; continue; }
            expect(r!.error).toBe(ErrorCode.ERROR_CODE_UNSPECIFIED);
            accepted.set(clientMsgId, r!.messages[0]!.message!.seq);
            return;
          }
        }));
      }
      expect(accepted.size).toBe(48);
      expect([...accepted.values()].sort((x, y) => x - y)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
      expect(conflicts).toBeGreaterThan(0);
      const page = await store.history(a!.id, { conversationId: conv.id, direction: HistoryDirection.HISTORY_DIRECTION_FORWARD, fromSeq: 0, limit: 200 });
      expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
      for (const m of page.messages) expect(accepted.get(m.clientMsgId)).toBe(m.seq);
      for (const u of memberIds) {
        const log = await readAll(owner2, u);
        expectGapless(log);
        expect(messageSeqs(log, conv.id)).toEqual(Array.from({ length: 48 }, (_, i) => i + 1));
      }
    }, 120_000);

    it("readLog pages across bucket boundaries", async () => {
      const [a, b] = await users(store, "a", "b");
      const conv = (await group(store, [a!, b!])).conversation;
      for (let i = 0; i < 4; i++) {
        await store.append([{ conversationId: conv.id, baseSeq: i * 3, memberIds: [a!.id, b!.id], messages: [0, 1, 2].map((k) => msg(a!, `p${i}-${k}`)) }]);
      }
      const whole = await store.readLog(b!.id, 0, 100);
      expect(whole.head).toBe(13);
      expectGapless(whole.events);
      const paged = await readAll(store, b!.id);
      expect(paged).toEqual(whole.events);
      for (const after of [3, 4, 5, 9, 10]) {
        const r = await store.readLog(b!.id, after, 2);
        expect(r.events.map((e) => e.pos)).toEqual([after + 1, after + 2]);
        expect(r.head).toBe(13);
      }
      expect((await store.readLog(b!.id, 13, 10)).events).toEqual([]);
      expect((await store.readLog(id("nobody"), 0, 10))).toEqual({ events: [], head: 0 });
      // The heads edges check their sessions against, in order, 0 for an empty log.
      expect(await store.logHeads([b!.id, id("nobody"), a!.id])).toEqual([13, 0, 13]);
    });

    it("history pages forward and backward across buckets; a non-member is denied", async () => {
      const [a, b, x] = await users(store, "a", "b", "x");
      const conv = (await group(store, [a!, b!])).conversation;
      await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: Array.from({ length: 11 }, (_, i) => msg(a!, `h${i + 1}`)) }]);
      const page = (direction: HistoryDirection, fromSeq: number, limit: number) => store.history(b!.id, { conversationId: conv.id, direction, fromSeq, limit });
      const F = HistoryDirection.HISTORY_DIRECTION_FORWARD;
      const B = HistoryDirection.HISTORY_DIRECTION_BACKWARD;
      const seqs = async (d: HistoryDirection, from: number, limit: number) => {
        const p = await page(d, from, limit);
        return [p.messages.map((m) => m.seq), p.hasMore, p.nextFromSeq];
      };
      expect(await seqs(F, 0, 3)).toEqual([[1, 2, 3], true, 3]);
      expect(await seqs(F, 3, 5)).toEqual([[4, 5, 6, 7, 8], true, 8]);
      expect(await seqs(F, 8, 3)).toEqual([[9, 10, 11], false, 11]);
      expect(await seqs(F, 11, 3)).toEqual([[], false, 11]);
      expect(await seqs(B, 0, 3)).toEqual([[11, 10, 9], true, 9]);
      expect(await seqs(B, 9, 5)).toEqual([[8, 7, 6, 5, 4], true, 4]);
      expect(await seqs(B, 4, 3)).toEqual([[3, 2, 1], false, 1]);
      expect(await seqs(B, 1, 3)).toEqual([[], false, 1]);
      expect(await seqs(B, 0, 0)).toEqual([[11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1], false, 1]);
      expect((await page(F, 0, 1)).messages[0]).toMatchObject({ seq: 1, clientMsgId: "h1", text: "h1", senderId: a!.id, senderDeviceId: "d1", sentAtMs: 1000 });
      await expect(store.history(x!.id, { conversationId: conv.id, direction: F, fromSeq: 0, limit: 3 })).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
    });

    it("updatePointers never moves back nor past the last seq, reading implies delivery, a read marker is logged", async () => {
      const [a, b, x] = await users(store, "a", "b", "x");
      const conv = (await group(store, [a!, b!])).conversation;
      await store.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id, b!.id], messages: [1, 2, 3, 4, 5, 6].map((i) => msg(a!, `q${i}`)) }]);
      expect(await store.updatePointers(conv.id, b!.id, 2, 0)).toMatchObject({ deliveredSeq: 2, readSeq: 0, changed: true, readEvent: undefined });
      const r = await store.updatePointers(conv.id, b!.id, 0, 4);
      expect(r).toMatchObject({ deliveredSeq: 4, readSeq: 4, changed: true });
      expect(r.readEvent).toMatchObject({ pos: 8, kind: { $case: "read", value: { conversationId: conv.id, readSeq: 4 } } });
      expect(await store.updatePointers(conv.id, b!.id, 1, 1)).toMatchObject({ deliveredSeq: 4, readSeq: 4, changed: false });
      expect(await store.updatePointers(conv.id, b!.id, 99, 0)).toMatchObject({ deliveredSeq: 6, readSeq: 4, changed: true });
      const last = await store.updatePointers(conv.id, b!.id, 0, 99);
      expect(last).toMatchObject({ deliveredSeq: 6, readSeq: 6, changed: true, readEvent: { pos: 9 } });
      const log = await store.readLog(b!.id, 7, 10);
      expect(log.events.map((e) => [e.pos, e.kind?.$case === "read" ? e.kind.value.readSeq : null])).toEqual([[8, 4], [9, 6]]);
      await expect(store.updatePointers(conv.id, x!.id, 1, 1)).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
      // Concurrent updates: the pointer ends at the max, never below.
      await Promise.all([3, 6, 1, 5].map((s) => store.updatePointers(conv.id, a!.id, s, s)));
      const [mine] = await store.listConversations(b!.id);
      expect(mine).toMatchObject({ id: conv.id, lastSeq: 6, readSeq: 6, unread: 0 });
      const [theirs] = await store.listConversations(a!.id);
      expect(theirs).toMatchObject({ lastSeq: 6, readSeq: 6 });
      expect((await store.getConversation(conv.id))!.conversation.members.map((m) => [m.deliveredSeq, m.readSeq])).toEqual([[6, 6], [6, 6]]);
      await store.append([{ conversationId: conv.id, baseSeq: 6, memberIds: [a!.id, b!.id], messages: [msg(a!, "q7")] }]);
      const [later] = await store.listConversations(b!.id);
      expect(later).toMatchObject({ lastSeq: 7, readSeq: 6, unread: 1 });
    });
  });
}

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

  it("refuses to open a keyspace with different bucket sizes", async () => {
    const other = cassClient();
    await expect(CassandraStore.open(new PostgresSqlClient(backend.url()), other, { keyspace: KEYSPACE, messagesPerBucket: 7, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET }))
      .rejects.toThrow(/messages_per_bucket/);
    await other.shutdown();
  });

  it("Cassandra unreachable or going away surfaces as a retryable UNAVAILABLE", async () => {
    // Nothing listens there: open fails with NoHostAvailableError.
    const dead = new cassandra.Client({ contactPoints: ["127.0.0.1:1"], localDataCenter: env("CASSANDRA_LOCAL_DC"), socketOptions: { connectTimeout: 1000 } });
    const err = await CassandraStore.open(new PostgresSqlClient(backend.url()), dead, { keyspace: KEYSPACE, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET }).catch((e: unknown) => e);
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
    const s = await CassandraStore.open(new PostgresSqlClient(backend.url()), viaProxy, { keyspace: KEYSPACE, messagesPerBucket: MESSAGES_PER_BUCKET, logEntriesPerBucket: LOG_ENTRIES_PER_BUCKET });
    const [a] = await users(s, "a");
    const conv = (await group(s, [a!])).conversation;
    expect(await s.lastSeq(conv.id)).toBe(0);
    proxy.close();
    for (const sock of sockets) sock.destroy();
    await new Promise((res) => setTimeout(res, 200));
    const e1 = await s.append([{ conversationId: conv.id, baseSeq: 0, memberIds: [a!.id], messages: [msg(a!, "z")] }]).catch((e: unknown) => e);
    expect(e1).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    const e2 = await s.readLog(a!.id, 0, 10).catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: ErrorCode.ERROR_CODE_UNAVAILABLE });
    await s.close();
  }, 60_000);
});
