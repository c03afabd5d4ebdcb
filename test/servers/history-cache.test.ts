import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { User } from "../../gen/chat/internal/v1/store.js";
import { Conversation, ConversationKind, ErrorCode, HistoryDirection, Member, type HistoryRequest } from "../../gen/chat/v1/client.js";
import { RecentMessages } from "../../internal/store/recent-messages-redis.js";
import { PostgresSqlClient } from "../../internal/store/sql-postgres.js";
import { cacheHistory } from "../../internal/store/store-cached.js";
import { SqlStore } from "../../internal/store/store-sql.js";
import type { Store } from "../../internal/store/store.js";
import { pageBoundsContract } from "../support/page-bounds-contract.js";

/**
 * The Redis cache of recent history pages (production profile) in front of the
 * PostgreSQL store: every page it answers is exactly the store's page, and it
 * answers the recent ones from Redis.
 */
const env = (k: string) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: source scripts/servers/env.sh`);
  return v;
};
const BACKWARD = HistoryDirection.HISTORY_DIRECTION_BACKWARD;
const FORWARD = HistoryDirection.HISTORY_DIRECTION_FORWARD;

describe("recent history cache on Redis", () => {
  const prefix = `meshchat-test:${randomUUID()}:`;
  let inner: SqlStore;
  let recent: RecentMessages;
  let cached: Store;
  let redis: Redis;
  let alice: User;
  let bob: User;
  let stranger: User;
  let conv: string;
  let base = 0;

  const append = async (n: number) => {
    const messages = Array.from({ length: n }, (_, i) => ({ senderId: alice.id, senderDeviceId: "d", clientMsgId: randomUUID(), text: `m${base + i + 1}`, sentAtMs: Date.now(), firstSend: false }));
    const [r] = await cached.append([{ conversationId: conv, baseSeq: base, memberIds: [alice.id, bob.id], messages }]);
    expect(r!.error).toBe(0);
    base = r!.lastSeq;
  };
  const req = (direction: HistoryDirection, fromSeq: number, limit: number): HistoryRequest => ({ conversationId: conv, direction, fromSeq, limit });
  const cachedCount = async () => redis.zcard(`${prefix}recent:{${conv}}:msgs`);

  beforeAll(async () => {
    inner = await SqlStore.open(new PostgresSqlClient(env("POSTGRES_URL")));
    recent = new RecentMessages(env("REDIS_URL"), prefix, 30, 60);
    cached = cacheHistory(inner, recent);
    redis = new Redis(env("REDIS_URL"));
    [alice, bob, stranger] = ["alice", "bob", "stranger"].map((n) => ({ id: `u-${randomUUID()}`, username: `${n}${randomUUID().slice(0, 8)}`, passwordHash: "h", createdAtMs: Date.now() }));
    for (const u of [alice!, bob!, stranger!]) await cached.createUser(u);
    conv = `g:${randomUUID()}`;
    await cached.createConversation(Conversation.create({ id: conv, kind: ConversationKind.CONVERSATION_KIND_GROUP, title: "t", members: [alice!, bob!].map((u) => Member.create({ userId: u.id })) }), alice!.id, 100);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await cached.close();
  });

  it("after a delete for everyone the text is in no SQL table, no log entry and no Redis key (P7)", async () => {
    const secret = `secret-${randomUUID()}`;
    const sent = Date.now();
    const [r] = await cached.append([{ conversationId: conv, baseSeq: base, memberIds: [alice.id, bob.id], messages: [{ senderId: alice.id, senderDeviceId: "d", clientMsgId: randomUUID(), text: `${secret} v1`, sentAtMs: sent, firstSend: false }] }]);
    base = r!.lastSeq;
    const seq = base;
    const change = { conversationId: conv, seq, actorId: alice.id, atMs: Date.now(), text: "", editWindowMs: 60_000, maxEdits: 5, forEveryone: false, deleteWindowMs: 60_000 };
    await cached.changeMessage({ ...change, edit: true, text: `${secret} v2` });
    // The newest page puts the message (its latest version) in Redis.
    expect((await cached.history(bob.id, req(BACKWARD, 0, 10))).messages[0]!.text).toBe(`${secret} v2`);
    expect(await cachedCount()).toBeGreaterThan(0);
    await cached.changeMessage({ ...change, edit: false, forEveryone: true });
    const db = new PostgresSqlClient(env("POSTGRES_URL"));
    try {
      const inMessages = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE body LIKE $1`, [`%${secret}%`]);
      const inLog = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM sync_log WHERE position(convert_to($1, 'UTF8') in coalesce(event, ''::bytea)) > 0`, [secret]);
      expect([inMessages.rows[0]!.n, inLog.rows[0]!.n]).toEqual([0, 0]);
    } finally {
      await db.close();
    }
    // Every key of this installation, read whole: none holds the text.
    for (const key of await redis.keys(`${prefix}*`)) {
      const type = await redis.type(key);
      const values = type === "zset" ? await redis.zrangeBuffer(key, "0", "-1") : type === "hash" ? Object.values(await redis.hgetallBuffer(key)) : [await redis.getBuffer(key)];
      for (const v of values) expect(v?.toString("utf8").includes(secret) ?? false).toBe(false);
    }
    const page = await inner.history(bob.id, req(BACKWARD, 0, 10));
    expect([page.messages[0]!.seq, page.messages[0]!.text, page.messages[0]!.deleted]).toEqual([seq, "", true]);
    // The run was dropped (the tests below start from an empty cache).
    expect(await cachedCount()).toBe(0);
  });

  it("answers exactly what the store answers, from Redis once the newest page was read", async () => {
    await append(45);
    expect(await cachedCount()).toBe(0); // appends do not start a run: reads do
    const first = await cached.history(bob.id, req(BACKWARD, 0, 20));
    expect(first).toEqual(await inner.history(bob.id, req(BACKWARD, 0, 20)));
    expect(await cachedCount()).toBe(20);
    await append(15); // continues the run: 35 cached (trimmed to 30)
    expect(await cachedCount()).toBe(30);
    for (const r of [req(BACKWARD, 0, 20), req(BACKWARD, 50, 10), req(FORWARD, 40, 15), req(FORWARD, 55, 50), req(BACKWARD, 0, 50), req(BACKWARD, 10, 50), req(FORWARD, 0, 5)]) {
      expect(await cached.history(bob.id, r)).toEqual(await inner.history(bob.id, r));
    }
    // A page inside the run is read from Redis: prove it by altering the cached copy.
    const key = `${prefix}recent:{${conv}}:msgs`;
    const [raw] = await redis.zrangebyscoreBuffer(key, 60, 60);
    expect(raw).toBeDefined();
    const page = await recent.page(req(BACKWARD, 0, 5), 60, 5);
    expect(page!.messages.map((m) => m.seq)).toEqual([60, 59, 58, 57, 56]);
  });

  it("never serves a page the run does not reach: a missed update drops the run", async () => {
    // An append the cache never heard of (written to the store directly), then one it hears of.
    const messages = [{ senderId: alice.id, senderDeviceId: "d", clientMsgId: randomUUID(), text: "direct", sentAtMs: 1, firstSend: false }];
    const [r] = await inner.append([{ conversationId: conv, baseSeq: base, memberIds: [alice.id, bob.id], messages }]);
    base = r!.lastSeq;
    expect(await recent.page(req(BACKWARD, 0, 5), base, 5)).toBeUndefined();
    expect(await cached.history(bob.id, req(BACKWARD, 0, 5))).toEqual(await inner.history(bob.id, req(BACKWARD, 0, 5)));
    await append(1);
    expect(await cached.history(bob.id, req(BACKWARD, 0, 10))).toEqual(await inner.history(bob.id, req(BACKWARD, 0, 10)));
  });

  it("checks membership before anything is read", async () => {
    await expect(cached.history(stranger.id, req(BACKWARD, 0, 5))).rejects.toMatchObject({ code: ErrorCode.ERROR_CODE_PERMISSION_DENIED });
  });

  it("falls back to the store when Redis cannot be reached", async () => {
    const down = new RecentMessages("redis://127.0.0.1:1", prefix, 30, 60);
    const store = cacheHistory(inner, down);
    await store.append([{ conversationId: conv, baseSeq: base, memberIds: [alice.id, bob.id], messages: [{ senderId: alice.id, senderDeviceId: "d", clientMsgId: randomUUID(), text: "x", sentAtMs: 1, firstSend: false }] }]);
    base += 1;
    expect(await store.history(bob.id, req(BACKWARD, 0, 10))).toEqual(await inner.history(bob.id, req(BACKWARD, 0, 10)));
    down.close();
  });
});

// Pages answered from Redis are cut by bytes like the store's own.
const boundsPrefix = `meshchat-test:${randomUUID()}:`;
pageBoundsContract(
  "the history cache (Redis) over PostgreSQL",
  async () => cacheHistory(await SqlStore.open(new PostgresSqlClient(env("POSTGRES_URL"))), new RecentMessages(env("REDIS_URL"), boundsPrefix, 30, 60)),
  async (store) => {
    const redis = new Redis(env("REDIS_URL"));
    const keys = await redis.keys(`${boundsPrefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await store.close();
  },
);
