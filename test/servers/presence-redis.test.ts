import { randomUUID } from "node:crypto";
import net from "node:net";
import { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "../../internal/errors/chat-error.js";
import { OFFLINE, ONLINE, Recorder, TEST_CONFIG, presenceContract, presenceWithEdge, route, waitFor } from "../support/presence-contract.js";
import type { PresenceConfig, PublishFn } from "../../internal/presence/presence.js";
import { RedisPresence } from "../../internal/presence/presence-redis.js";
import { shardKeys } from "../../internal/presence/presence-redis-scripts.js";
import { presenceShard, shardKeyBase } from "../../internal/presence/presence-shard.js";
import { parseClusterUrl } from "../../internal/redis/client.js";

/**
 * RedisPresence on the real servers of scripts/servers, under a random REDIS_PREFIX (other work
 * shares them): once on one Redis (REDIS_URL), once on a Redis Cluster of three masters
 * (REDIS_CLUSTER_URL), where a script touching keys of two slots, or not declaring the keys that
 * route it, fails.
 */
const targets = [
  { name: "Redis", url: process.env.REDIS_URL },
  { name: "Redis Cluster", url: process.env.REDIS_CLUSTER_URL },
];
for (const t of targets) if (!t.url) throw new Error(`${t.name}: REDIS_URL / REDIS_CLUSTER_URL is not set: source scripts/servers/env.sh`);

for (const target of targets) describe(`on ${target.name}`, () => redisPresenceSuite(target.name, target.url!));

function redisPresenceSuite(name: string, url: string): void {
  const cluster = parseClusterUrl(url);
  const prefix = `meshchat-test-${randomUUID().slice(0, 8)}:`;
  const open = (config: PresenceConfig, publish: PublishFn, p = prefix, u = url) => RedisPresence.open(config, publish, { url: u, prefix: p });

  let admin: Redis | Cluster;
  beforeAll(async () => {
    admin = cluster ? new Cluster(cluster.nodes) : new Redis(url);
    await admin.ping(); // a cluster client knows its masters once it has answered
  });
  afterAll(async () => {
    await deletePrefix(prefix);
    admin.disconnect();
  });

  /** This test's keys, per node (one node for a single Redis). */
  async function keysByNode(p: string): Promise<string[][]> {
    const out: string[][] = [];
    for (const node of admin instanceof Cluster ? admin.nodes("master") : [admin]) {
      const keys: string[] = [];
      let cursor = "0";
      do {
        const [next, found] = await node.scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== "0");
      out.push(keys);
    }
    return out;
  }

  /** Deletes this test's keys only (never FLUSHDB/FLUSHALL: the servers are shared), on every master of a cluster. */
  async function deletePrefix(p: string): Promise<number> {
    let n = 0;
    // One DEL per key: a DEL of keys in several slots is refused by a cluster node.
    for (const k of (await keysByNode(p)).flat()) n += await admin.del(k);
    return n;
  }

  presenceContract(`RedisPresence on ${name}`, (config, publish) => open(config, publish));

  describe(`RedisPresence on a shared ${name}`, () => {
    const cleanups: (() => Promise<void> | void)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });
    const instance = (config: PresenceConfig = TEST_CONFIG) => presenceWithEdge((c, publish) => open(c, publish), config, cleanups);
    /** Whether presence still holds a future transition for the user: a lapse to detect (beats) or a grace to end (due). */
    const pending = async (userId: string) => {
      const [beats, due] = shardKeys(shardKeyBase(prefix, presenceShard(userId)));
      const lapses = (await admin.zrange(beats, "0", "-1")).filter((m) => m.startsWith(`${userId.length}:${userId}:`));
      return lapses.length > 0 || (await admin.zscore(due, userId)) !== null;
    };
    /**
     * Nothing more can happen for the user: no transition left to mature, then a whole sweep round
     * by each instance. A second publish of a change would have been made by then.
     */
    const settled = async (userId: string, ...instances: Array<{ presence: RedisPresence }>) => {
      await waitFor(`nothing pending for ${userId}`, async () => !(await pending(userId)));
      await Promise.all(instances.map((i) => i.presence.sweepAll()));
    };

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
      await settled(alice, a, b);
      expect(both().map((p) => p.update.status)).toEqual([ONLINE, OFFLINE]);
      expect((await a.presence.query([alice]))[0]!.status).toBe(OFFLINE);
      // A device dropped for lack of heartbeats is detected by whichever instance sweeps first: once.
      const bob = randomUUID();
      await b.presence.subscribe(watcher, [bob]);
      await a.presence.connect(route(bob), false);
      await waitFor("bob online then offline", () => [...a.rec.of(bob), ...b.rec.of(bob)].length === 2);
      await settled(bob, a, b);
      expect([...a.rec.of(bob), ...b.rec.of(bob)].map((p) => p.update.status)).toEqual([ONLINE, OFFLINE]);
    });

    it("keeps every key of a user and of the user's sessions in the user's shard, and spreads users over every node", async () => {
      const p = `meshchat-test-${randomUUID().slice(0, 8)}:`;
      const rec = new Recorder();
      const presence = await open(TEST_CONFIG, rec.publish, p);
      cleanups.push(async () => { await presence.close(); await deletePrefix(p); });
      const users = Array.from({ length: 60 }, () => randomUUID());
      const sessions = new Map<string, string>(); // session id -> user id
      for (const [i, u] of users.entries()) {
        const r = route(u);
        sessions.set(r.sessionId, u);
        await presence.connect(r, false);
        await presence.subscribe(r, [users[(i + 1) % users.length]!]);
        if (i % 2 === 0) await presence.disconnect(r); // leaves gone:<s> and a due entry
      }
      const byNode = await keysByNode(p);
      const keys = byNode.flat();
      expect(keys.length).toBeGreaterThan(users.length * 3);
      for (const key of keys) {
        const m = /^[^{]*\{(\d+)\}(dev:\d+:|devs:|st:|subs:|watch:|gone:|beats$|due$)(.*)$/.exec(key);
        expect(m, key).not.toBeNull();
        const [, shard, kind, rest] = m!;
        const owner = kind === "watch:" || kind === "gone:" ? sessions.get(rest!) : kind.startsWith("dev:") ? rest!.slice(0, 36) : rest;
        if (owner) expect(Number(shard), key).toBe(presenceShard(owner));
      }
      // 60 users over 256 shards over three masters: every master holds some.
      if (cluster) expect(byNode.filter((k) => k.length > 0).length).toBe(3);
    });

    it("a watcher in another shard whose session ended without the follow-up is skipped and its subscription dropped", async () => {
      const { rec, presence, edge } = await instance();
      const alice = randomUUID();
      let watcherId = randomUUID();
      while (presenceShard(watcherId) === presenceShard(alice)) watcherId = randomUUID();
      const [gone, stays] = [route(watcherId, "phone", "edge-w"), route(watcherId, "laptop", "edge-w")];
      for (const w of [gone, stays]) {
        await edge.connect(w);
        await presence.subscribe(w, [alice]);
      }
      // What an instance that crashed between the two shards' halves of a disconnect leaves: the
      // session's watch set gone (its own shard), its entry in alice's subscriptions still there.
      const subs = `${prefix}{${presenceShard(alice)}}subs:${alice}`;
      expect(await admin.hexists(subs, gone.sessionId)).toBe(1);
      expect(await admin.del(`${prefix}{${presenceShard(watcherId)}}watch:${gone.sessionId}`)).toBe(1);
      await edge.connect(route(alice));
      await waitFor("online published", () => rec.of(alice).length === 1);
      expect(rec.of(alice)[0]!.subscribers).toEqual([stays]);
      expect(await admin.hexists(subs, gone.sessionId)).toBe(0);
      expect(await admin.hexists(subs, stays.sessionId)).toBe(1);
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

    // A proxy in front of one node of a cluster is bypassed: the client learns the nodes' own addresses from it.
    it.skipIf(cluster)("fails fast with a retryable UNAVAILABLE while Redis is unreachable, and reconnects by itself", async () => {
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
      const err = (await open(TEST_CONFIG, () => {}, prefix, cluster ? "redis+cluster://127.0.0.1:1" : "redis://127.0.0.1:1").catch((e: unknown) => e)) as ChatError;
      expect(err).toBeInstanceOf(ChatError);
      expect(err.code).toBe(ErrorCode.ERROR_CODE_UNAVAILABLE);
    });
  });
}
