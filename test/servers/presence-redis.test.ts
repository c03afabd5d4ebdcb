import { randomUUID } from "node:crypto";
import net from "node:net";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "../../internal/errors/chat-error.js";
import { Edge, OFFLINE, ONLINE, Recorder, TEST_CONFIG, presenceContract, route, sleep, waitFor } from "../support/presence-contract.js";
import type { PresenceConfig, PublishFn } from "../../internal/presence/presence.js";
import { RedisPresence } from "../../internal/presence/presence-redis.js";

/** RedisPresence on the real Redis of scripts/servers, under a random REDIS_PREFIX (other work shares this Redis). */
const url = process.env.REDIS_URL;
if (!url) throw new Error("REDIS_URL is not set: source scripts/servers/env.sh");
const prefix = `meshchat-test-${randomUUID().slice(0, 8)}:`;
const open = (config: PresenceConfig, publish: PublishFn, p = prefix, u = url) => RedisPresence.open(config, publish, { url: u, prefix: p });

let admin: Redis;
beforeAll(() => {
  admin = new Redis(url);
});
afterAll(async () => {
  await deletePrefix(prefix);
  admin.disconnect();
});

/** Deletes this test's keys only (never FLUSHDB/FLUSHALL: the Redis is shared). */
async function deletePrefix(p: string): Promise<number> {
  let n = 0;
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) n += await admin.del(...keys);
  } while (cursor !== "0");
  return n;
}

presenceContract("RedisPresence", (config, publish) => open(config, publish));

describe("RedisPresence on a shared Redis", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function instance(config: PresenceConfig = TEST_CONFIG) {
    const rec = new Recorder();
    const presence = await open(config, rec.publish);
    const edge = new Edge(presence);
    cleanups.push(() => presence.close(), () => edge.stop());
    return { rec, presence, edge };
  }

  it("two instances agree, and each change is published exactly once across them", async () => {
    const a = await instance();
    const b = await instance();
    const alice = randomUUID();
    const watcher = route(randomUUID(), "watcher", "edge-w");
    await a.edge.connect(watcher);
    expect((await b.presence.subscribe(watcher, [alice]))[0]!.status).toBe(OFFLINE);
    const phone = route(alice);
    await a.edge.connect(phone);
    expect(await b.presence.routes([alice])).toEqual([phone]);
    expect((await b.presence.query([alice]))[0]!.status).toBe(ONLINE);
    const both = () => [...a.rec.of(alice), ...b.rec.of(alice)];
    await waitFor("online published", () => both().length === 1);
    expect(a.rec.statuses(alice)).toEqual([ONLINE]); // the instance that decided it
    // B takes the device over from another edge, then disconnects it: both instances sweep,
    // only one turns alice offline.
    const tablet = route(alice, "phone", "edge-2");
    expect(await b.edge.connect(tablet, true)).toEqual(phone);
    a.edge.routes.delete(phone);
    expect(await a.presence.routes([alice])).toEqual([tablet]);
    await b.edge.disconnect(tablet);
    await waitFor("offline published", () => both().length === 2);
    await sleep(TEST_CONFIG.graceMs + TEST_CONFIG.timeoutMs);
    expect(both().map((p) => p.update.status)).toEqual([ONLINE, OFFLINE]);
    expect((await a.presence.query([alice]))[0]!.status).toBe(OFFLINE);
    // A device dropped for lack of heartbeats is detected by whichever instance sweeps first: once.
    const bob = randomUUID();
    await b.presence.subscribe(watcher, [bob]);
    await a.presence.connect(route(bob), false);
    await waitFor("bob online then offline", () => [...a.rec.of(bob), ...b.rec.of(bob)].length === 2);
    await sleep(TEST_CONFIG.graceMs + TEST_CONFIG.timeoutMs);
    expect([...a.rec.of(bob), ...b.rec.of(bob)].map((p) => p.update.status)).toEqual([ONLINE, OFFLINE]);
  });

  it("recovers routes and statuses from heartbeats after the Redis data is wiped", async () => {
    const { rec, presence } = await instance();
    const alice = randomUUID();
    const phone = route(alice);
    const laptop = route(alice, "laptop", "edge-2");
    // Heartbeats by hand here, so none lands between the wipe and the checks.
    await presence.connect(phone, false);
    await presence.connect(laptop, false);
    expect(await deletePrefix(prefix)).toBeGreaterThan(0);
    expect(await presence.routes([alice])).toEqual([]);
    expect((await presence.query([alice]))[0]!.status).toBe(OFFLINE);
    const before = Date.now();
    await presence.heartbeat([phone, laptop]);
    expect(new Set((await presence.routes([alice])).map((r) => r.sessionId))).toEqual(new Set([phone.sessionId, laptop.sessionId]));
    const [status] = await presence.query([alice]);
    expect(status!.status).toBe(ONLINE);
    expect(status!.lastActiveAtMs).toBeGreaterThanOrEqual(before - 50);
    // A disconnected session stays gone: a heartbeat still in flight does not bring it back.
    await presence.disconnect(phone);
    await presence.heartbeat([phone, laptop]);
    expect((await presence.routes([alice])).map((r) => r.sessionId)).toEqual([laptop.sessionId]);
    expect(rec.statuses(alice)).toEqual([]); // nobody subscribed
  });

  it("fails fast with a retryable UNAVAILABLE while Redis is unreachable, and reconnects by itself", async () => {
    // A TCP proxy in front of Redis that the test can cut.
    const target = new URL(url);
    const sockets = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const port = (proxy.address() as net.AddressInfo).port;
    const presence = await open(TEST_CONFIG, () => {}, prefix, `redis://127.0.0.1:${port}`);
    cleanups.push(() => new Promise<void>((r) => { proxy.close(() => r()); for (const s of sockets) s.destroy(); }), () => presence.close());
    const alice = randomUUID();
    await presence.connect(route(alice), false);
    expect((await presence.query([alice]))[0]!.status).toBe(ONLINE);

    // Cut: stop accepting, drop the live connections.
    await new Promise<void>((r) => { proxy.close(() => r()); for (const s of sockets) s.destroy(); });
    // Once the client has noticed the cut, a call fails at once instead of waiting for a reconnect.
    await waitFor("the client to notice the cut", async () => (await presence.query([alice]).catch((e: unknown) => e)) instanceof ChatError);
    const t0 = Date.now();
    const err = (await presence.query([alice]).catch((e: unknown) => e)) as ChatError;
    expect(err).toBeInstanceOf(ChatError);
    expect(err.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    expect(err.retryable).toBe(true);
    expect(Date.now() - t0).toBeLessThan(4_000);

    // Back: the client reconnects without help.
    await new Promise<void>((r) => proxy.listen(port, "127.0.0.1", r));
    await waitFor("reconnected", async () => (await presence.query([alice]).catch(() => undefined))?.[0]?.status === ONLINE, 10_000);
  });

  it("refuses to open against an unreachable Redis with UNAVAILABLE", async () => {
    const err = (await open(TEST_CONFIG, () => {}, prefix, "redis://127.0.0.1:1").catch((e: unknown) => e)) as ChatError;
    expect(err).toBeInstanceOf(ChatError);
    expect(err.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
  });
});
