import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import type { Instance } from "../../internal/discovery/discovery.js";
import { ownerOf } from "../../internal/discovery/rendezvous.js";
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { Cluster, clusterEnv, freePort, type ProcessSpec } from "../../internal/launcher/cluster.js";
import { device, expectExactlyOnce, newUser, steadySender, TEST_CERTS, waitFor, type Device } from "./harness.js";
import { forwardToLoopback, GATEWAY, setLink, setupHosts, teardownHosts, unsupported, type Forwarder, type Host } from "./netns.js";

/**
 * The production profile across hosts: three network namespaces, each running one edge and
 * one chat instance on its own address, and the root namespace as the servers host (presence,
 * message-store, notifier, etcd, Redis, PostgreSQL). A host is cut off by setting its link
 * down while its processes keep running, a partition rather than a crash: nothing closes its
 * connections, its lease has to expire, and its clients have to notice silence.
 *
 * PostgreSQL, not Cassandra: the Cassandra driver learns the node's address from the node
 * (its rpc_address, 127.0.0.1 for the test server) and reconnects there, which no namespace
 * reaches through the forwarder.
 */
const production = process.env.E2E_PROFILE === "production";
const why = production ? unsupported() : undefined;
if (why) process.stderr.write(`netns.test.ts skipped: ${why}\n`);

const HOSTS = 3;
/** Each host has its own port space, so every host uses the same ports, as real hosts would. */
const HOST_PORTS = { edgeHttp: 8080, edge: 7101, chat: 7201 };
/**
 * Devices on the host that is cut off, for the reconnect-storm figure: 10 users of 10 devices
 * in `make test`; NETNS_STORM_USERS=100 gives the 1,000-device figure of docs/scaling.md.
 */
const STORM_USERS = Number(process.env.NETNS_STORM_USERS ?? 10);
const STORM_DEVICES_PER_USER = 10;

let hosts: Host[] = [];
let cluster: Cluster | undefined;
let forwarder: Forwarder | undefined;
let etcdPort = 0;
let etcd: Etcd3;
let dataDir = "";
let etcdPrefix = "";
const problems: string[] = [];
/** Writes the store refused for a stale base_seq (the chat instances log each): the fence at work. */
let fenced = 0;
/** Every device the test opens, closed in afterAll whether or not the test got that far. */
const opened: Device[] = [];
const track = (d: Device) => { opened.push(d); return d; };

const wsUrl = (h: Host) => `ws://${h.address}:${HOST_PORTS.edgeHttp}/v1/ws`;
const chatOf = (h: Host) => `chat-${h.name}`;
const edgeOf = (h: Host) => `edge-${h.name}`;

/** The live instances of a service and the lease each is registered under. */
async function live(service: string): Promise<Array<Instance & { lease: string }>> {
  const res = await etcd.getAll().prefix(`${etcdPrefix}services/${service}/`).exec();
  return res.kvs.map((kv) => ({ ...(JSON.parse(kv.value.toString()) as Instance), lease: kv.lease.toString() }));
}

const ids = async (service: string) => (await live(service)).map((i) => i.id).sort();

function serverPort(url: string): number {
  return Number(new URL(url).port);
}

/** The same server URL as reached from a namespace: through the forwarder on the gateway. */
function viaGateway(url: string): string {
  const u = new URL(url);
  u.hostname = GATEWAY;
  return u.toString().replace(/\/$/, "");
}

describe.skipIf(!production || why !== undefined)("production profile across network namespaces: one host cut off", () => {
  beforeAll(async () => {
    const { ETCD_ENDPOINTS, REDIS_URL, POSTGRES_URL } = process.env;
    if (!ETCD_ENDPOINTS || !REDIS_URL || !POSTGRES_URL) throw new Error("source scripts/servers/env.sh first (ETCD_ENDPOINTS, REDIS_URL, POSTGRES_URL)");
    hosts = setupHosts(HOSTS);
    etcdPort = serverPort(ETCD_ENDPOINTS.split(",")[0]!);
    forwarder = await forwardToLoopback([ETCD_ENDPOINTS, REDIS_URL, POSTGRES_URL].map(serverPort));
    dataDir = path.resolve("var", "test", randomUUID());
    fs.mkdirSync(dataDir, { recursive: true });
    ensureDevCerts(TEST_CERTS);
    const clusterId = path.basename(dataDir);
    etcdPrefix = `/meshchat-test/${clusterId}/`;
    const ports = { edgeHttp: HOST_PORTS.edgeHttp, edge: HOST_PORTS.edge, chat: HOST_PORTS.chat, presence: await freePort(GATEWAY), store: await freePort(GATEWAY), notifier: await freePort(GATEWAY) };
    const base = clusterEnv(dataDir, ports, {
      PROFILE: "production",
      STORE_BACKEND: "postgres",
      METRICS_PORT: "0",
      CERTS_DIR: TEST_CERTS,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? "info",
      ETCD_PREFIX: etcdPrefix,
      REDIS_PREFIX: `meshchat-test:${clusterId}:`,
      // Short leases and heartbeats, as in cluster.test.ts: a cut host leaves the live set in seconds.
      DISCOVERY_LEASE_TTL_S: "2",
      HEARTBEAT_INTERVAL_MS: "1000",
      PRESENCE_GRACE_MS: "1000",
      PRESENCE_TIMEOUT_MS: "5000",
      HEAD_CHECK_INTERVAL_MS: "1000",
      SEND_RATE: "1000",
      SEND_BURST: "1000",
      // One sender device drives two conversations flat out, and four after the heal.
      FRAME_RATE: "5000",
      FRAME_BURST: "5000",
      SIGNUP_ADDRESS_PER_MINUTE: "100000",
      SIGNUP_ADDRESS_BURST: "100000",
      LOGIN_ADDRESS_PER_MINUTE: "100000",
      LOGIN_ADDRESS_BURST: "100000",
      MAX_CONNECTIONS_PER_ADDRESS: "0",
      MAX_DEVICES_PER_USER: String(STORM_DEVICES_PER_USER + 2),
      CHAT_ADDRS: hosts.map((h) => `${h.address}:${HOST_PORTS.chat}`).join(","),
      STORE_ADDRS: `${GATEWAY}:${ports.store}`,
      PRESENCE_ADDRS: `${GATEWAY}:${ports.presence}`,
      NOTIFIER_ADDRS: `${GATEWAY}:${ports.notifier}`,
    });
    const serversHost = { ...base, BIND_HOST: GATEWAY, ADVERTISE_HOST: GATEWAY };
    const onHost = (h: Host) => ({
      ...base,
      BIND_HOST: h.address,
      ADVERTISE_HOST: h.address,
      ETCD_ENDPOINTS: ETCD_ENDPOINTS.split(",").map(viaGateway).join(","),
      REDIS_URL: viaGateway(REDIS_URL),
      POSTGRES_URL: viaGateway(POSTGRES_URL),
    });
    const specs: ProcessSpec[] = [
      ...(["message-store", "presence", "notifier"] as const).map((service) => ({ name: service, service, env: serversHost })),
      ...hosts.map((h): ProcessSpec => ({ name: chatOf(h), service: "chat", env: { ...onHost(h), INSTANCE_ID: chatOf(h) }, wrapper: h.wrapper })),
      ...hosts.map((h): ProcessSpec => ({ name: edgeOf(h), service: "edge", env: { ...onHost(h), INSTANCE_ID: edgeOf(h) }, wrapper: h.wrapper })),
    ];
    const log = fs.createWriteStream(path.join(dataDir, "cluster.log"));
    cluster = new Cluster((name, line) => {
      log.write(`${name} ${line}\n`);
      if (line.includes("another chat instance appended first")) fenced++;
      if (/"level":"(warn|error)"/.test(line)) { problems.push(`${name} ${line.slice(0, 600)}`); if (problems.length > 200) problems.shift(); }
      if (process.env.E2E_VERBOSE) process.stderr.write(`${name} ${line}\n`);
    });
    await cluster.startAll(specs);
    etcd = new Etcd3({ hosts: ETCD_ENDPOINTS.split(",") });
  }, 180_000);

  afterAll(async () => {
    await Promise.all(opened.map((d) => d.close()));
    // Processes first (a cut host's are killed: they would wait for a network that is gone), then the network.
    await cluster?.stopAll("SIGKILL");
    await forwarder?.close();
    etcd?.close();
    teardownHosts();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  // Each test starts from every host connected and registered, whatever an earlier test cut.
  beforeEach(async () => {
    for (const h of hosts) { setLink(h, "up"); forwarder!.block(h.address, etcdPort, false); }
    await waitFor("every instance registered", async () => (await live("chat")).length === HOSTS && (await live("edge")).length === HOSTS, { timeoutMs: 120_000, everyMs: 200 });
    onTestFailed(() => { process.stderr.write(`--- last ${problems.length} service warnings/errors ---\n${problems.join("\n")}\n`); });
  });

  it("keeps every acknowledged message exactly once when a host's link drops under load, and takes the host back with new leases", { timeout: 600_000 }, async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const site = { httpUrl: `http://${h2.address}:${HOST_PORTS.edgeHttp}`, wsUrl: wsUrl(h2) };
    const before = { chat: await live("chat"), edge: await live("edge") };

    // Alice sends from h2's edge; each peer has a phone on h1's edge (the one cut off) and a laptop on h3's.
    const alice = await newUser(site, "alice");
    const a = track(await device(site, alice, "sender", { url: wsUrl(h2), fallbackUrls: [wsUrl(h3)], requestTimeoutMs: 5_000 }));
    const owned = new Map<"victim" | "other", { id: string; phone: Device; laptop: Device }>();
    for (let i = 0; owned.size < 2 && i < 40; i++) {
      const bob = await newUser(site, "bob");
      const conv = await a.client.openDirect(bob.username);
      const role = ownerOf(conv.id, before.chat)!.id === chatOf(h1) ? "victim" : "other";
      if (owned.has(role)) continue;
      const phone = track(await device(site, bob, "phone", { url: wsUrl(h1), fallbackUrls: [wsUrl(h2), wsUrl(h3)] }));
      const laptop = track(await device(site, bob, "laptop", { url: wsUrl(h3), fallbackUrls: [wsUrl(h2)] }));
      owned.set(role, { id: conv.id, phone, laptop });
    }
    expect([...owned.keys()].sort()).toEqual(["other", "victim"]);
    const victim = owned.get("victim")!;
    const other = owned.get("other")!;

    // The storm: devices on h1's edge, half falling back to h2 first, half to h3.
    const storm: Array<{ d: Device; closedAt?: number; reopenedAt?: number }> = [];
    for (let u = 0; u < STORM_USERS; u++) {
      const user = await newUser(site, "storm");
      const fallbackUrls = u % 2 === 0 ? [wsUrl(h2), wsUrl(h3)] : [wsUrl(h3), wsUrl(h2)];
      const batch = await Promise.all(Array.from({ length: STORM_DEVICES_PER_USER }, (_, k) => device(site, user, `storm-${k}`, { url: wsUrl(h1), fallbackUrls }).then(track)));
      storm.push(...batch.map((d) => ({ d })));
    }

    const s1 = steadySender(a, victim.id, (i) => `v${i}`);
    const s2 = steadySender(a, other.id, (i) => `o${i}`);
    const counts = () => `${s1.acked.length} acknowledged on ${chatOf(h1)}'s conversation, ${s2.acked.length} on the other`;
    await waitFor("20 acknowledged sends on each owner", () => s1.acked.length >= 20 && s2.acked.length >= 20, { timeoutMs: 120_000, seen: counts });

    // The cut. h1's processes keep running; nothing tells anyone they are gone.
    const cutAt = Date.now();
    const phones: typeof storm = [{ d: victim.phone }, { d: other.phone }];
    for (const s of [...storm, ...phones]) {
      s.d.client.on("state", (state) => {
        if (state === "closed") s.closedAt ??= Date.now();
        if (state === "open") s.reopenedAt ??= Date.now();
      });
    }
    setLink(h1, "down");
    const during = { s1: s1.acked.length, s2: s2.acked.length };

    await waitFor("h1's chat and edge out of etcd's live set (lease expiry)", async () => !(await ids("chat")).includes(chatOf(h1)) && !(await ids("edge")).includes(edgeOf(h1)), { timeoutMs: 30_000, everyMs: 100 });
    const leftAfterMs = Date.now() - cutAt;
    expect(ownerOf(victim.id, await live("chat"))!.id).not.toBe(chatOf(h1));
    await waitFor("20 more acknowledged sends on each conversation, the moved one included", () => s1.acked.length >= during.s1 + 20 && s2.acked.length >= during.s2 + 20, { timeoutMs: 180_000, seen: counts });
    await waitFor("every storm device back on another edge", () => storm.every((s) => s.reopenedAt !== undefined), { timeoutMs: 180_000, seen: () => `${storm.filter((s) => s.reopenedAt !== undefined).length}/${storm.length}` });
    const pct = (values: number[], q: number) => values.sort((x, y) => x - y)[Math.min(values.length - 1, Math.floor(q * values.length))]!;
    const noticed = storm.map((s) => s.closedAt! - cutAt);
    const back = storm.map((s) => s.reopenedAt! - cutAt);
    await waitFor("the peers' phones back on another edge", () => phones.every((s) => s.reopenedAt !== undefined));
    process.stderr.write(`netns: h1 left the live set ${leftAfterMs} ms after its link went down; its ${storm.length} devices noticed the silence after ${pct(noticed, 0.5)} ms (p50) / ${pct(noticed, 1)} ms (max) and were back on h2/h3 after ${pct(back, 0.5)} ms (p50) / ${pct(back, 0.9)} ms (p90) / ${pct(back, 1)} ms (max)\n`);

    // P1-P5 with h1 still cut: h1's chat reached no client and no server, so it acknowledged
    // nothing; every acknowledged send is stored once, in order, and in both devices' streams.
    await Promise.all([s1.stop(), s2.stop()]);
    await expectExactlyOnce(s1.acked, victim.id, a, [victim.phone, victim.laptop]);
    await expectExactlyOnce(s2.acked, other.id, a, [other.phone, other.laptop]);

    // The heal: h1's instances find their leases expired and register under new ones.
    setLink(h1, "up");
    await waitFor("h1's chat and edge back in the live set", async () => (await ids("chat")).includes(chatOf(h1)) && (await ids("edge")).includes(edgeOf(h1)), { timeoutMs: 120_000, everyMs: 200 });
    const after = { chat: await live("chat"), edge: await live("edge") };
    const leaseOf = (list: Array<Instance & { lease: string }>, id: string) => list.find((i) => i.id === id)!.lease;
    expect(leaseOf(after.chat, chatOf(h1))).not.toBe(leaseOf(before.chat, chatOf(h1)));
    expect(leaseOf(after.edge, edgeOf(h1))).not.toBe(leaseOf(before.edge, edgeOf(h1)));
    // The conversation goes back to h1's chat, which dropped its heads when it lost its lease
    // and reads the one the others advanced (had it kept a stale one, the store would refuse
    // its base_seq: the next test shows that fence at work).
    expect(ownerOf(victim.id, after.chat)!.id).toBe(chatOf(h1));
    const t1 = steadySender(a, victim.id, (i) => `w${i}`);
    const t2 = steadySender(a, other.id, (i) => `x${i}`);
    await waitFor("20 acknowledged sends on each after the heal", () => t1.acked.length >= 20 && t2.acked.length >= 20, { timeoutMs: 120_000 });
    await Promise.all([t1.stop(), t2.stop()]);
    await expectExactlyOnce([...s1.acked, ...t1.acked], victim.id, a, [victim.phone, victim.laptop]);
    await expectExactlyOnce([...s2.acked, ...t2.acked], other.id, a, [other.phone, other.laptop]);

  });
  it("keeps every acknowledged message exactly once when a host loses etcd but not the store: two chat instances write one conversation, the store's base_seq fence orders them", { timeout: 600_000 }, async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const site = { httpUrl: `http://${h2.address}:${HOST_PORTS.edgeHttp}`, wsUrl: wsUrl(h2) };
    const chats = await live("chat");
    const alice = await newUser(site, "alice");
    // Alice sends from two devices: one on h1's edge, one on h2's.
    const onH2 = track(await device(site, alice, "on-h2", { url: wsUrl(h2), fallbackUrls: [wsUrl(h3)], requestTimeoutMs: 5_000 }));
    let conv: { id: string; phone: Device; laptop: Device } | undefined;
    for (let i = 0; !conv && i < 40; i++) {
      const bob = await newUser(site, "bob");
      const c = await onH2.client.openDirect(bob.username);
      if (ownerOf(c.id, chats)!.id !== chatOf(h1)) continue;
      conv = { id: c.id, phone: track(await device(site, bob, "phone", { url: wsUrl(h1), fallbackUrls: [wsUrl(h2)] })), laptop: track(await device(site, bob, "laptop", { url: wsUrl(h3), fallbackUrls: [wsUrl(h2)] })) };
    }
    expect(conv).toBeDefined();
    const onH1 = track(await device(site, alice, "on-h1", { url: wsUrl(h1), requestTimeoutMs: 5_000 }));
    const s1 = steadySender(onH1, conv!.id, (i) => `h1-${i}`);
    const s2 = steadySender(onH2, conv!.id, (i) => `h2-${i}`);
    const counts = () => `${s1.acked.length} acknowledged through h1's edge, ${s2.acked.length} through h2's`;
    await waitFor("10 acknowledged sends from each device", () => s1.acked.length >= 10 && s2.acked.length >= 10, { timeoutMs: 120_000, seen: counts });

    // h1 can no longer reach etcd, and everything else as before: its leases expire, the
    // others move its conversation, while h1's edge, with the live set it last saw, keeps
    // sending it to h1's chat. Two owners append to one conversation.
    const fencedBefore = fenced;
    forwarder!.block(h1.address, etcdPort, true);
    await waitFor("h1's chat and edge out of etcd's live set", async () => !(await ids("chat")).includes(chatOf(h1)) && !(await ids("edge")).includes(edgeOf(h1)), { timeoutMs: 30_000, everyMs: 100 });
    expect(ownerOf(conv!.id, await live("chat"))!.id).not.toBe(chatOf(h1));
    const during = { s1: s1.acked.length, s2: s2.acked.length };
    await waitFor("20 more acknowledged sends from each device, both owners writing", () => s1.acked.length >= during.s1 + 20 && s2.acked.length >= during.s2 + 20, { timeoutMs: 180_000, seen: counts });
    await Promise.all([s1.stop(), s2.stop()]);
    process.stderr.write(`netns: while h1 was cut from etcd, ${s1.acked.length - during.s1} sends were acknowledged through h1's edge and ${s2.acked.length - during.s2} through h2's, on one conversation; the store refused ${fenced - fencedBefore} writes for a stale base_seq\n`);
    // Both owners did write: each found the other had appended since it read the head.
    expect(fenced).toBeGreaterThan(fencedBefore);
    // Acknowledged by either owner: each once, no position written twice, every device the same order.
    await expectExactlyOnce([...s1.acked, ...s2.acked], conv!.id, onH2, [conv!.phone, conv!.laptop, onH1, onH2]);

    forwarder!.block(h1.address, etcdPort, false);
    await waitFor("h1's chat and edge back in the live set", async () => (await ids("chat")).includes(chatOf(h1)) && (await ids("edge")).includes(edgeOf(h1)), { timeoutMs: 120_000, everyMs: 200 });
  });
});
