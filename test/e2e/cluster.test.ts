import { execFileSync } from "node:child_process";
import { Etcd3 } from "etcd3";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import type { Instance } from "../../internal/discovery/discovery.js";
import { ownerOf } from "../../internal/discovery/rendezvous.js";
import { presenceShard, shardKeyBase } from "../../internal/presence/presence-shard.js";
import { freePort } from "../../internal/launcher/cluster.js";
import { allSeqs, device, expectExactlyOnce, newUser, presenceSettled, startCluster, steadySender, waitFor, type Device, type TestCluster } from "./harness.js";
import { sleep } from "../../internal/run/sleep.js";

/**
 * The production profile as a real cluster: two edges, two chat instances, one
 * of each other service, on etcd, Redis, PostgreSQL and Cassandra. Only runs
 * with E2E_PROFILE=production (the servers are started by `make test`).
 */
const production = process.env.E2E_PROFILE === "production";
const LEASE_TTL_S = 2;

let c: TestCluster;
let etcd: Etcd3;
const prefix = () => c.env.ETCD_PREFIX!;

async function live(service: string): Promise<Instance[]> {
  const kvs = await etcd.getAll().prefix(`${prefix()}services/${service}/`).strings();
  return Object.values(kvs).map((v) => JSON.parse(v) as Instance);
}

let redis: Redis;

/** Presence's keys of a user's devices (presence-redis-scripts.ts): `dev:<len>:<user>:<device>` in the user's shard. */
function deviceKeyPattern(userId: string): string {
  return `${shardKeyBase(c.env.REDIS_PREFIX!, presenceShard(userId))}dev:${userId.length}:${userId}:*`;
}

/** The user's routes as presence holds them (what chat's route lookups read). */
async function routesOf(userId: string): Promise<Route[]> {
  const keys = await redis.keys(deviceKeyPattern(userId));
  const values = keys.length === 0 ? [] : await redis.mget(keys);
  return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as Route);
}

function servers(cmd: "stop" | "start", name: string): void {
  execFileSync("bash", ["scripts/servers/servers.sh", cmd, name], { stdio: "ignore" });
}

describe.skipIf(!production)("production cluster: two edges, two chat instances", () => {
  beforeAll(async () => {
    c = await startCluster({ DISCOVERY_LEASE_TTL_S: String(LEASE_TTL_S), HEARTBEAT_INTERVAL_MS: "1000", PRESENCE_GRACE_MS: "1000", PRESENCE_TIMEOUT_MS: "5000", HEAD_CHECK_INTERVAL_MS: "1000", SEND_RATE: "1000", SEND_BURST: "1000" }, { edges: 2, chats: 2 });
    etcd = new Etcd3({ hosts: process.env.ETCD_ENDPOINTS!.split(",") });
    redis = new Redis(process.env.REDIS_URL!);
  });
  afterAll(async () => {
    await c?.stop();
    etcd?.close();
    redis?.disconnect();
  });
  // Each test starts from the whole cluster, whatever an earlier test killed: no test depends on running after another.
  beforeEach(async () => {
    await c.restoreStopped();
    await waitFor("every instance registered", async () => (await live("chat")).length === 2 && (await live("edge")).length === 2);
  });

  it("registers every instance in etcd and lets two users on different edges chat both ways", async () => {
    expect((await live("chat")).map((i) => i.id).sort()).toEqual(["chat-1", "chat-2"]);
    expect((await live("edge")).map((i) => i.id).sort()).toEqual(["edge-1", "edge-2"]);
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]! });
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    expect((await routesOf(alice.userId)).map((r) => r.edgeId)).toEqual(["edge-1"]);
    expect((await routesOf(bob.userId)).map((r) => r.edgeId)).toEqual(["edge-2"]);
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "hi from edge-1");
    await waitFor("bob gets it", () => b.in(conv.id).length === 1);
    await b.client.send(conv.id, "hi from edge-2");
    await waitFor("alice gets it", () => a.in(conv.id).length === 2);
    await waitFor("bob's device shows his own send", () => b.in(conv.id).length === 2);
    expect(a.in(conv.id).map((m) => m.text)).toEqual(["hi from edge-1", "hi from edge-2"]);
    expect(b.in(conv.id).map((m) => m.text)).toEqual(["hi from edge-1", "hi from edge-2"]);
    a.close();
    b.close();
  });

  it("delivers an event whose live delivery was lost (its route went stale) within one head-check interval", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]! });
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "live");
    await waitFor("bob gets the first one live", () => b.in(conv.id).length === 1);
    // The route goes wrong behind the edge's back: presence points bob's device at edge-1, which
    // holds no session of his, so live delivery reaches nobody. Rewritten in place rather than
    // deleted: a missing route is re-created by the next heartbeat (presenceHeartbeat's recovery),
    // which raced the send and let it go out live; a present one is only kept alive.
    const [aliceRoute] = await routesOf(alice.userId);
    const keys = await redis.keys(deviceKeyPattern(bob.userId));
    expect(keys.length).toBe(1);
    const stale: Route = { ...(await routesOf(bob.userId))[0]!, edgeId: aliceRoute!.edgeId, edgeAddress: aliceRoute!.edgeAddress };
    expect(await redis.set(keys[0]!, JSON.stringify(stale), "KEEPTTL", "XX")).toBe("OK");
    expect((await routesOf(bob.userId)).map((r) => r.edgeId)).toEqual(["edge-1"]);
    await a.client.send(conv.id, "not sent live");
    // No later event shows bob's session the gap; only the edge's head check can.
    await waitFor("bob gets the second one anyway", () => b.in(conv.id).length === 2);
    expect(b.in(conv.id).map((m) => m.text)).toEqual(["live", "not sent live"]);
    a.close();
    b.close();
  });

  it("keeps every acknowledged message exactly once when a chat instance is killed under load: ownership moves", async () => {
    const alice = await newUser(c, "alice");
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]!, requestTimeoutMs: 5_000 });
    // Conversations until each chat instance owns at least one.
    const chats = await live("chat");
    const owned = new Map<string, { id: string; peer: Device; peer2: Device }>();
    for (let i = 0; owned.size < 2 && i < 40; i++) {
      const bob = await newUser(c, "bob");
      const conv = await a.client.openDirect(bob.username);
      const owner = ownerOf(conv.id, chats)!.id;
      if (owned.has(owner)) continue;
      const peer = await device(c, bob, "phone", { url: c.wsUrls[1]! });
      const peer2 = await device(c, bob, "laptop", { url: c.wsUrls[0]! });
      owned.set(owner, { id: conv.id, peer, peer2 });
    }
    expect([...owned.keys()].sort()).toEqual(["chat-1", "chat-2"]);
    const victim = owned.get("chat-1")!;
    const other = owned.get("chat-2")!;
    const s1 = steadySender(a, victim.id, (i) => `v${i}`);
    const s2 = steadySender(a, other.id, (i) => `o${i}`);
    const counts = () => `${s1.acked.length} acknowledged on chat-1's conversation, ${s2.acked.length} on chat-2's`;
    await waitFor("20 acknowledged sends on each owner", () => s1.acked.length >= 20 && s2.acked.length >= 20, { timeoutMs: 180_000, seen: counts });
    await c.cluster.stop("chat-1", "SIGKILL");
    const during = s1.acked.length;
    // The dead instance leaves the live set when its lease expires; its conversations move to chat-2.
    const deadline = Date.now() + 20_000;
    while ((await live("chat")).some((i) => i.id === "chat-1")) {
      if (Date.now() > deadline) throw new Error("chat-1 still registered");
      await sleep(100);
    }
    expect(ownerOf(victim.id, await live("chat"))!.id).toBe("chat-2");
    await waitFor("20 more acknowledged sends on the moved conversation", () => s1.acked.length >= during + 20, { timeoutMs: 180_000, seen: counts });
    await Promise.all([s1.stop(), s2.stop()]);
    await expectExactlyOnce(s1.acked, victim.id, a, [victim.peer, victim.peer2]);
    await expectExactlyOnce(s2.acked, other.id, a, [other.peer, other.peer2]);
    for (const d of [a, victim.peer, victim.peer2, other.peer, other.peer2]) d.close();
  });

  it("drops a killed edge's routes when its heartbeats stop and its lease expires, and its clients resync on the other edge", async () => {
    const [alice, bob, carol] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol")];
    const b = await device(c, bob, undefined, { url: c.wsUrls[0]! });
    const conv = await b.client.openDirect(alice.username);
    await b.client.send(conv.id, "m1");
    // Alice is on edge-2 and knows edge-1 as a fallback; carol is on edge-2 and does not reconnect.
    const a = await device(c, alice, "phone", { url: c.wsUrls[1]!, fallbackUrls: [c.wsUrls[0]!] });
    await waitFor("alice has m1", () => a.in(conv.id).length === 1);
    const carolDev = await device(c, carol, "tablet", { url: c.wsUrls[1]!, reconnect: false });
    expect((await routesOf(carol.userId)).map((r) => r.edgeId)).toEqual(["edge-2"]);
    await c.cluster.stop("edge-2", "SIGKILL");
    // Messages sent while alice is between edges reach her after she resyncs on edge-1.
    for (let i = 2; i <= 5; i++) await b.client.send(conv.id, `m${i}`);
    const deadline = Date.now() + 20_000;
    while ((await routesOf(carol.userId)).length > 0 || (await live("edge")).some((i) => i.id === "edge-2")) {
      if (Date.now() > deadline) throw new Error("edge-2's routes or registration outlived its heartbeats and lease");
      await sleep(100);
    }
    await waitFor("alice back on edge-1 with every message", () => a.in(conv.id).length === 5);
    expect(a.in(conv.id).map((m) => m.text)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    expect((await routesOf(alice.userId)).map((r) => r.edgeId)).toEqual(["edge-1"]);
    // Live delivery to her new route.
    await b.client.send(conv.id, "m6");
    await waitFor("alice gets m6 live", () => a.in(conv.id).length === 6);
    for (const d of [a, b, carolDev]) d.close();
  });

  it("keeps presence across edges: online while a device on either edge is, one offline change to subscribers on the other edge", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    await b.client.openDirect(alice.username);
    const updates: PresenceStatus[] = [];
    b.client.on("presence", (p) => { if (p.userId === alice.userId) updates.push(p.status); });
    await b.client.presenceSubscribe([alice.userId]);
    const phone = await device(c, alice, "phone", { url: c.wsUrls[0]! });
    const laptop = await device(c, alice, "laptop", { url: c.wsUrls[1]! });
    await waitFor("online pushed across edges", () => updates.includes(PresenceStatus.PRESENCE_STATUS_ONLINE));
    phone.close();
    await presenceSettled(c, b, c.wsUrls[0]!);
    expect((await b.client.presenceQuery([alice.userId]))[0]!.status).toBe(PresenceStatus.PRESENCE_STATUS_ONLINE);
    laptop.close();
    await waitFor("offline pushed", () => updates.includes(PresenceStatus.PRESENCE_STATUS_OFFLINE));
    expect(updates).toEqual([PresenceStatus.PRESENCE_STATUS_ONLINE, PresenceStatus.PRESENCE_STATUS_OFFLINE]);
    b.close();
  });

  it("recovers presence after Redis restarts with its data gone", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]! });
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    await b.client.openDirect(alice.username);
    const [before] = await b.client.presenceQuery([alice.userId]);
    expect(before!.status).toBe(PresenceStatus.PRESENCE_STATUS_ONLINE);
    // Data loss and a restart: this cluster's keys are wiped, then the server goes down and comes back.
    const r = new Redis(process.env.REDIS_URL!);
    const keys = await r.keys(`${c.env.REDIS_PREFIX}*`);
    expect(keys.length).toBeGreaterThan(0);
    await r.del(...keys);
    r.disconnect();
    servers("stop", "redis");
    servers("start", "redis");
    // Edges heartbeat every second; each heartbeat carries the full route and restores it.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await b.client.presenceQuery([alice.userId]).catch(() => []);
      if (res[0]?.status === PresenceStatus.PRESENCE_STATUS_ONLINE) break;
      if (Date.now() > deadline) throw new Error("alice not back online after the Redis restart");
      await sleep(200);
    }
    a.close();
    b.close();
  });

  it("gives senders a retryable error while the message store's server is stopped, and writes nothing half-way", async () => {
    const backing = (c.env.STORE_BACKEND ?? process.env.STORE_BACKEND ?? "cassandra") === "postgres" ? "postgres" : "cassandra";
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]!, requestTimeoutMs: 25_000 });
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    const conv = await a.client.openDirect(bob.username);
    await a.client.send(conv.id, "before");
    servers("stop", backing);
    try {
      const err = await a.client.request({ $case: "send", value: { conversationId: conv.id, clientMsgId: "during-outage", text: "during", firstSend: false } }).catch((e) => e);
      // A typed error from the service, not the client giving up on a silent server.
      expect(err.retryable).toBe(true);
      expect(err.message).not.toBe("request timed out");
    } finally {
      servers("start", backing);
    }
    // The resend of the refused message (same client_msg_id) and a new one: each stored once.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await a.client.send(conv.id, "during", "during-outage").then(() => true, (e) => { if (Date.now() > deadline || !e.retryable) throw e; return false; });
      if (ok) break;
    }
    await a.client.send(conv.id, "after");
    const stored = await allSeqs(a, conv.id);
    expect(stored.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(stored.filter((m) => m.clientMsgId === "during-outage")).toHaveLength(1);
    await waitFor("bob has all three", () => b.in(conv.id).length === 3);
    expect(b.in(conv.id).map((m) => m.text)).toEqual(["before", "during", "after"]);
    a.close();
    b.close();
  });
  it("a standby message-store takes the log when the leader is cut off with work in flight: nothing acknowledged is lost or numbered twice, and the old leader steps down", async () => {
    const [alice, bob] = [await newUser(c, "alice"), await newUser(c, "bob")];
    const a = await device(c, alice, undefined, { url: c.wsUrls[0]! });
    const b = await device(c, bob, undefined, { url: c.wsUrls[1]! });
    const conv = await a.client.openDirect(bob.username);
    const { acked, stop } = steadySender(a, conv.id);
    await waitFor("traffic through the first leader", () => acked.length >= 20);
    // A second instance waits for the election, out of discovery.
    const standby = c.cluster.start({ name: "message-store-2", service: "message-store", env: { ...c.env, STORE_GRPC_PORT: String(await freePort()), INSTANCE_ID: "message-store-2" } }, 120_000);
    await waitFor("the standby campaigning", async () => Object.keys(await etcd.getAll().prefix(`${prefix()}election/message-log/`).strings()).length === 2);
    expect((await live("message-store")).map((i) => i.id)).not.toContain("message-store-2");
    // Cut off: no keep-alive reaches etcd any more, and what it was doing stays in flight.
    const leader = c.cluster.processes.get("message-store")!;
    leader.child.kill("SIGSTOP");
    await standby;
    const during = acked.length;
    await waitFor("traffic through the new leader", () => acked.length >= during + 20);
    leader.child.kill("SIGCONT");
    // Back, it finds its lease gone (or its next tick fenced off) and leaves.
    expect(await leader.exited).toBe(75);
    c.cluster.processes.delete("message-store");
    await stop();
    await expectExactlyOnce(acked, conv.id, b, [a, b]);
    a.close();
    b.close();
    await c.cluster.stop("message-store-2");
  }, 180_000);
});
