import { randomUUID } from "node:crypto";
import { expect, onTestFailed } from "vitest";
import fs from "node:fs";
import path from "node:path";
import WebSocket from "ws";
import { ClientFrame, PresenceStatus, ServerFrame } from "../../gen/chat/v1/client.js";
import { authenticate, ChatClient, type ClientOptions, type Message, type Sent } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";
import { waitFor } from "../support/wait.js";
export { waitFor };
import { ensureDevCerts } from "../../internal/grpc/dev-certs.js";
import { Cluster, clusterEnv, embeddedSpecs, freePort, layoutSpecs, type Layout, type Ports } from "../../internal/launcher/cluster.js";

export interface TestCluster {
  cluster: Cluster;
  ports: Ports;
  httpUrl: string;
  wsUrl: string;
  /** WebSocket URL of each edge (one unless the cluster was started with more). */
  wsUrls: string[];
  dataDir: string;
  env: Record<string, string>;
  /** The services' last warn/error log lines. */
  problems: string[];
  /** Starts again every process of this cluster that a test stopped or killed. */
  restoreStopped(): Promise<void>;
  stop(): Promise<void>;
}

const ROOT = path.resolve(import.meta.dirname, "../..");
/** One development PKI for all test clusters (made once). */
export const TEST_CERTS = path.join(ROOT, "var", "test-certs");

/**
 * Starts the five real service processes on free loopback ports with a fresh
 * data directory. E2E_PROFILE selects the profile (embedded by default).
 */
export async function startCluster(extraEnv: Record<string, string> = {}, scale: { edges: number; chats: number } = { edges: 1, chats: 1 }): Promise<TestCluster> {
  const dataDir = path.join(ROOT, "var", "test", randomUUID());
  fs.mkdirSync(dataDir, { recursive: true });
  ensureDevCerts(TEST_CERTS);
  const ports: Ports = { edgeHttp: await freePort(), edge: await freePort(), chat: await freePort(), presence: await freePort(), store: await freePort(), notifier: await freePort() };
  const layout: Layout | undefined = scale.edges === 1 && scale.chats === 1 ? undefined : {
    edges: [{ http: ports.edgeHttp, grpc: ports.edge }, ...(await Promise.all(Array.from({ length: scale.edges - 1 }, async () => ({ http: await freePort(), grpc: await freePort() }))))],
    chats: [ports.chat, ...(await Promise.all(Array.from({ length: scale.chats - 1 }, () => freePort())))],
  };
  const clusterId = path.basename(dataDir);
  const env = clusterEnv(dataDir, ports, {
    PROFILE: process.env.E2E_PROFILE ?? "embedded",
    METRICS_PORT: "0",
    CERTS_DIR: TEST_CERTS,
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? "info",
    // Production profile: each test cluster has its own etcd and Redis namespace on the shared servers.
    ETCD_PREFIX: `/meshchat-test/${clusterId}/`,
    REDIS_PREFIX: `meshchat-test:${clusterId}:`,
    // Every test client comes from 127.0.0.1: per-address limits stay out of the way of tests
    // that are not about them (abuse.test.ts sets its own).
    SIGNUP_ADDRESS_PER_MINUTE: "100000",
    SIGNUP_ADDRESS_BURST: "100000",
    LOGIN_ADDRESS_PER_MINUTE: "100000",
    LOGIN_ADDRESS_BURST: "100000",
    MAX_CONNECTIONS_PER_ADDRESS: "0",
    ...extraEnv,
  });
  const logFile = fs.createWriteStream(path.join(dataDir, "cluster.log"));
  // The last warnings and errors of the services, printed by a test that fails (see warnOnFailure).
  const problems: string[] = [];
  const cluster = new Cluster((name, line) => {
    logFile.write(`${name} ${line}\n`);
    if (/"level":"(warn|error)"/.test(line)) { problems.push(`${name} ${line.slice(0, 600)}`); if (problems.length > 200) problems.shift(); }
    if (process.env.E2E_VERBOSE) process.stderr.write(`${name} ${line}\n`);
  });
  const specs = layout ? layoutSpecs(env, layout) : embeddedSpecs(env);
  try {
    await cluster.startAll(specs);
  } catch (err) {
    await cluster.stopAll("SIGKILL");
    throw err;
  }
  return {
    cluster,
    ports,
    env,
    dataDir,
    problems,
    httpUrl: `http://127.0.0.1:${ports.edgeHttp}`,
    wsUrl: `ws://127.0.0.1:${ports.edgeHttp}/v1/ws`,
    wsUrls: (layout?.edges ?? [{ http: ports.edgeHttp }]).map((e) => `ws://127.0.0.1:${e.http}/v1/ws`),
    async restoreStopped() {
      for (const spec of specs) if (!cluster.processes.has(spec.name)) await cluster.start(spec);
    },
    async stop() {
      await cluster.stopAll("SIGTERM");
      logFile.end();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestUser {
  userId: string;
  username: string;
  token: string;
}

let counter = 0;
export async function newUser(c: Pick<TestCluster, "httpUrl">, prefix = "user"): Promise<TestUser> {
  const username = `${prefix}${process.pid % 1000}x${++counter}${randomUUID().slice(0, 6)}`.toLowerCase();
  const r = await authenticate(c.httpUrl, "signup", username, "correct horse battery");
  return { userId: r.userId, username: r.username, token: r.token };
}

/** A connected device that records every message it applies, per conversation. */
export class Device {
  readonly client: ChatClient;
  readonly messages = new Map<string, Message[]>();
  readonly all: Message[] = [];

  constructor(c: Pick<TestCluster, "wsUrl">, readonly user: TestUser, readonly deviceId = `dev-${randomUUID().slice(0, 8)}`, opts: Partial<ClientOptions> = {}) {
    this.client = new ChatClient({ url: c.wsUrl, token: user.token, deviceId: this.deviceId, socket: nodeSocket, ...opts });
    this.client.on("message", (m) => {
      let list = this.messages.get(m.conversationId);
      if (!list) this.messages.set(m.conversationId, (list = []));
      list.push(m);
      this.all.push(m);
    });
  }

  async connect(): Promise<this> {
    await this.client.connect();
    await this.client.waitSynced();
    return this;
  }

  in(conversationId: string): Message[] {
    return this.messages.get(conversationId) ?? [];
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

export async function device(c: Pick<TestCluster, "wsUrl">, user: TestUser, deviceId?: string, opts: Partial<ClientOptions> = {}): Promise<Device> {
  return new Device(c, user, deviceId, opts).connect();
}


/**
 * A steady stream of sends from one device: each send retries (same client_msg_id)
 * until acknowledged, so `acked` holds exactly what the server acknowledged.
 */
export function steadySender(d: Device, conversationId: string, textOf: (i: number) => string = (i) => `m${i}`): { acked: Sent[]; stop(): Promise<void> } {
  const acked: Sent[] = [];
  let stopping = false;
  const loop = (async () => {
    for (let i = 0; !stopping; i++) acked.push(await d.client.send(conversationId, textOf(i)));
  })();
  return { acked, stop: async () => { stopping = true; await loop; } };
}

/** Every page of a conversation's history, oldest first. */
export async function allSeqs(d: Device, conversationId: string): Promise<Array<{ seq: number; clientMsgId: string }>> {
  const out: Array<{ seq: number; clientMsgId: string }> = [];
  for (let from = 0; ;) {
    const page = await d.client.history(conversationId, { direction: 2, fromSeq: from, limit: 200 });
    out.push(...page.messages.map((m) => ({ seq: m.seq, clientMsgId: m.clientMsgId })));
    if (!page.hasMore) return out;
    from = page.nextFromSeq;
  }
}

/** Stored exactly once each, gapless, and every listed device applied the same order. */
export async function expectExactlyOnce(acked: Sent[], conversationId: string, reader: Device, devices: Device[]): Promise<void> {
  const seqs = acked.map((s) => s.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  const stored = await allSeqs(reader, conversationId);
  expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: stored.length }, (_, k) => k + 1));
  expect(new Set(stored.map((m) => m.clientMsgId)).size).toBe(stored.length);
  expect(stored.length).toBe(acked.length);
  for (const d of devices) {
    await waitFor(`${d.deviceId} has every message`, () => d.in(conversationId).length >= stored.length);
    expect(d.in(conversationId).map((m) => m.seq)).toEqual(stored.map((m) => m.seq));
  }
}

/**
 * Returns once presence has handled everything that happened before the call,
 * grace periods that started by then included: a fresh user connects and leaves,
 * and `observer` sees it go offline. A change of another user that was due by
 * then (a wrong OFFLINE after a flap, say) would have been published first, so
 * a test can assert that nothing changed without sleeping for a fixed window.
 */
export async function presenceSettled(c: TestCluster, observer: Device, url?: string): Promise<void> {
  const marker = await newUser(c, "marker");
  await observer.client.openDirect(marker.username);
  const seen: PresenceStatus[] = [];
  const off = observer.client.on("presence", (p) => { if (p.userId === marker.userId) seen.push(p.status); });
  try {
    await observer.client.presenceSubscribe([marker.userId]);
    const m = await device(c, marker, undefined, url ? { url } : {});
    await waitFor("the marker user online", () => seen.includes(PresenceStatus.PRESENCE_STATUS_ONLINE));
    m.close();
    await waitFor("the marker user offline", () => seen.includes(PresenceStatus.PRESENCE_STATUS_OFFLINE), { seen: () => seen.join(",") });
  } finally {
    off();
  }
}

/** Two new users, one connected device each, and their direct conversation. */
export async function directPair(c: TestCluster): Promise<{ a: Device; b: Device; conversationId: string }> {
  const alice = await newUser(c, "alice");
  const bob = await newUser(c, "bob");
  const a = await device(c, alice);
  const b = await device(c, bob);
  const conv = await a.client.openDirect(bob.username);
  return { a, b, conversationId: conv.id };
}

/** Prints the services' last warnings and errors when the current test fails. */
export function warnOnFailure(c: () => TestCluster | undefined): void {
  onTestFailed(() => {
    const p = c()?.problems ?? [];
    process.stderr.write(`--- last ${p.length} service warnings/errors ---\n${p.join("\n")}\n`);
  });
}

/**
 * A bare WebSocket (binary subprotocol) that says Hello with `token` and records
 * every frame that comes back and how it closes: for tests that fire frames
 * without waiting for replies, as an attacker would. Resolves once the first
 * reply (Welcome or a refusal) is in.
 */
export async function rawSession(url: string, token: string, deviceId: string) {
  const ws = new WebSocket(url, ["meshchat.v1.proto"]);
  const frames: ServerFrame[] = [];
  let closed: number | undefined;
  ws.on("message", (data) => frames.push(ServerFrame.decode(data as Buffer)));
  ws.on("close", (code) => { closed = code; });
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  const send = (f: Partial<ClientFrame>) => ws.send(ClientFrame.encode(ClientFrame.create(f)).finish());
  send({ ref: 1, kind: { $case: "hello", value: { token, deviceId, cursor: 0, takeover: false } } });
  await waitFor("Welcome or a refusal", () => frames.length > 0);
  return { ws, frames, send, closed: () => closed, reply: (ref: number) => frames.find((f) => f.ref === ref) };
}
