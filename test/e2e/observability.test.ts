import http from "node:http";
import { credentials, makeGenericClientConstructor, Metadata } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import YAML from "yaml";
import { ErrorCode, PushProvider } from "../../internal/client/client.js";
import { PresenceStatus } from "../../gen/chat/v1/client.js";
import { device, newUser, startCluster, TEST_CERTS, waitFor, type TestCluster } from "./harness.js";

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  service: string;
  attrs: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string }>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  status?: { code?: number };
}
type RawSpan = Omit<OtlpSpan, "service" | "attrs" | "links"> & { attributes?: Array<{ key: string; value: OtlpValue }>; links?: Array<{ traceId: string; spanId: string }> };

/** OTLP/JSON ids are hex; older encoders sent base64: one form for comparisons. */
const hexId = (id: string | undefined) => (!id ? "" : /^[0-9a-f]+$/i.test(id) && (id.length === 32 || id.length === 16) ? id.toLowerCase() : Buffer.from(id, "base64").toString("hex"));
const valueOf = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue ?? "");

/** A real OTLP/HTTP receiver: collects every span the five processes export, and counts metric pushes. */
const spans: OtlpSpan[] = [];
let metricPushes = 0;
let receiver: http.Server;
/** A real webhook receiver standing in for a push relay: what each POST carried. */
const pushes: Array<{ traceparent: string | undefined; token: string }> = [];
let hook: http.Server;
let c: TestCluster;

const listen = async (server: http.Server) => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
};
const readBody = (req: http.IncomingMessage) => new Promise<string>((resolve) => {
  const chunks: Buffer[] = [];
  req.on("data", (d: Buffer) => chunks.push(d));
  req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
});

beforeAll(async () => {
  receiver = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    if (req.url === "/v1/traces") {
      const body = JSON.parse(raw) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: OtlpValue }> }; scopeSpans: Array<{ spans: RawSpan[] }> }> };
      for (const rs of body.resourceSpans) {
        const service = String(valueOf(rs.resource.attributes.find((a) => a.key === "service.name")?.value ?? {}));
        for (const ss of rs.scopeSpans) for (const s of ss.spans) {
          spans.push({
            ...s,
            traceId: hexId(s.traceId),
            spanId: hexId(s.spanId),
            parentSpanId: hexId(s.parentSpanId) || undefined,
            service,
            attrs: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, valueOf(a.value)])),
            links: (s.links ?? []).map((l) => ({ traceId: hexId(l.traceId), spanId: hexId(l.spanId) })),
          });
        }
      }
    } else if (req.url === "/v1/metrics") metricPushes++;
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
  hook = http.createServer(async (req, res) => {
    const body = JSON.parse(await readBody(req)) as { token: string };
    pushes.push({ traceparent: req.headers.traceparent as string | undefined, token: body.token });
    res.writeHead(200).end();
  });
  const port = await listen(receiver);
  const hookPort = await listen(hook);
  c = await startCluster({
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_BSP_SCHEDULE_DELAY: "0",
    OTEL_METRIC_EXPORT_INTERVAL: "1000",
    // Default METRICS_PORT: each service's gRPC port + 2000.
    METRICS_PORT: "",
    PUSH_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/push`,
    PUSH_WEBHOOK_SECRET: "observability-secret",
    // Heartbeats every second, so the test sees them (and that they make no traces).
    HEARTBEAT_INTERVAL_MS: "1000",
    // Carol goes offline (and gets a push) soon after she closes, not after the default 5 s grace.
    PRESENCE_GRACE_MS: "200",
  });
  await everyKindOfTraffic();
});

/**
 * What makes every series of the dashboard and the alerting rules exist, whichever
 * test runs: a group message to an online user on two devices and to an offline one
 * with a push token, a read receipt, a refused send and a catch-up.
 */
async function everyKindOfTraffic(): Promise<void> {
  const [p, q, r, z] = [await newUser(c, "pia"), await newUser(c, "quin"), await newUser(c, "rio"), await newUser(c, "zed")];
  const pd = await device(c, p);
  const qd = [await device(c, q, "q-phone"), await device(c, q, "q-laptop")];
  const rd = await device(c, r, "r-phone");
  await rd.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "rio-token");
  await rd.close();
  const group = await pd.client.createGroup("traffic", [q.username, r.username]);
  // A conversation list: where directory reads ran (meshchat_directory_reads_total).
  expect((await qd[0]!.client.listConversations()).map((x) => x.id)).toContain(group.id);
  await waitFor("rio offline", async () => (await pd.client.presenceQuery([r.userId]))[0]?.status === PresenceStatus.PRESENCE_STATUS_OFFLINE);
  await pd.client.send(group.id, "hello all");
  for (const d of qd) await waitFor(`${d.deviceId} has it`, () => d.in(group.id).length === 1);
  await qd[0]!.client.markRead(group.id, 1);
  await waitFor("rio's push", () => pushes.some((x) => x.token === "rio-token"));
  const zd = await device(c, z);
  await zd.client.send(group.id, "let me in").catch(() => undefined);
  // A catch-up that sends events: zed connects after a message was sent to him.
  const conv = await pd.client.openDirect(z.username);
  await zd.close();
  await pd.client.send(conv.id, "while you were away");
  const again = await device(c, z);
  await waitFor("the missed message", () => again.in(conv.id).length === 1);
  for (const d of [pd, ...qd, again]) d.close();
}
afterAll(async () => {
  await c?.stop();
  await new Promise((r) => receiver.close(r));
  await new Promise((r) => hook.close(r));
});

/** On failure, what arrived: the spans of the traces the test looked at. */
function reportSpans(traceIds: () => string[]): void {
  onTestFailed(() => {
    const ids = new Set(traceIds());
    const lines = spans.filter((s) => ids.has(s.traceId)).map((s) => `${s.traceId.slice(0, 8)} ${s.spanId} <- ${s.parentSpanId ?? "root"} ${s.service}:${s.name} kind=${s.kind} ${JSON.stringify(s.attrs)} links=${JSON.stringify(s.links)}`);
    console.error(`spans of the traces under test (${lines.length} of ${spans.length}):\n${lines.join("\n")}`);
    console.error(`pushes: ${JSON.stringify(pushes)}\nservice problems:\n${c.problems.join("\n")}`);
  });
}


const SERVER = 2, CLIENT = 3, PRODUCER = 4, CONSUMER = 5;
const STATUS_ERROR = 2;

/** Function names and keywords of PromQL: what is left of an expression after them is metric names. */
const PROMQL_WORDS = new Set(["sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right", "rate", "irate", "increase", "histogram_quantile", "and", "or", "unless", "bool", "offset", "topk", "bottomk", "abs", "clamp_min", "clamp_max"]);

/** The metric names and label names one PromQL expression uses (enough PromQL for ours). */
function promqlUsage(expr: string): { metrics: string[]; labels: string[] } {
  const labels: string[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  rest = rest.replace(/\{([^}]*)\}/g, (_, body: string) => {
    for (const m of body.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)/g)) labels.push(m[1]!);
    return " ";
  });
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_, _k, body: string) => {
    labels.push(...body.split(",").map((l) => l.trim()).filter(Boolean));
    return " ";
  });
  rest = rest.replace(/\[[^\]]*\]/g, " ");
  const metrics = [...rest.matchAll(/[a-zA-Z_:][\w:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
  return { metrics, labels };
}

/** Metric name -> label names seen, over the Prometheus exposition of every service. */
async function scrapeAll(ports: number[]): Promise<Map<string, Set<string>>> {
  const seen = new Map<string, Set<string>>();
  for (const port of ports) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const line of text.split("\n")) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
      if (!m) continue;
      let set = seen.get(m[1]!);
      if (!set) seen.set(m[1]!, (set = new Set()));
      for (const l of (m[2] ?? "").matchAll(/(\w+)="/g)) set.add(l[1]!);
    }
  }
  return seen;
}

const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");

describe("OpenTelemetry", () => {
  it("puts every hop of one message in one trace, with the right parents", async () => {
    const [alice, bob, carol] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol")];
    const a = await device(c, alice);
    const b = await device(c, bob);
    const group = await a.client.createGroup("traced", [bob.username, carol.username]);
    // The client starts the trace; carol is offline so the notifier is asked too.
    const traceId = hex(32);
    const clientSpan = hex(16);
    await a.client.request({ $case: "send", value: { conversationId: group.id, clientMsgId: "traced-1", text: "follow me", firstSend: false } }, `00-${traceId}-${clientSpan}-01`);
    await waitFor("bob got it", () => b.in(group.id).length === 1);
    const inTrace = () => spans.filter((s) => s.traceId === traceId);
    const need = ["edge:ws send", "edge:chat.internal.v1.ChatService/Send", "chat:chat.internal.v1.ChatService/Send", "chat:chat.append_batch", "chat:chat.internal.v1.MessageStoreService/Append", "message-store:chat.internal.v1.MessageStoreService/Append", "chat:chat.internal.v1.EdgeDeliveryService/Deliver", "edge:chat.internal.v1.EdgeDeliveryService/Deliver", "chat:chat.internal.v1.NotifierService/NotifyBatch", "notifier:chat.internal.v1.NotifierService/NotifyBatch"];
    await waitFor("all hops exported", () => need.every((n) => inTrace().some((s) => `${s.service}:${s.name}` === n)));
    const t = inTrace();
    const byId = new Map(t.map((s) => [s.spanId, s]));
    const find = (service: string, name: string, kind: number) => t.find((s) => s.service === service && s.name === name && s.kind === kind)!;
    const parentOf = (s: OtlpSpan) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);
    const SERVER = 2, CLIENT = 3;
    const root = find("edge", "ws send", SERVER);
    // The edge's span joins the client's own trace as its child.
    const rootParent = root.parentSpanId ?? "";
    expect(rootParent).toBe(clientSpan);
    // Each server span's parent is the caller's client span, in the caller's process.
    for (const [svc, method, callerSvc] of [["chat", "ChatService/Send", "edge"], ["message-store", "MessageStoreService/Append", "chat"], ["edge", "EdgeDeliveryService/Deliver", "chat"], ["notifier", "NotifierService/NotifyBatch", "chat"]] as const) {
      const server = find(svc, `chat.internal.v1.${method}`, SERVER);
      const client = parentOf(server)!;
      expect(client, method).toBeDefined();
      expect(client.kind).toBe(CLIENT);
      expect(client.service).toBe(callerSvc);
      expect(client.name).toBe(`chat.internal.v1.${method}`);
    }
    expect(parentOf(find("edge", "chat.internal.v1.ChatService/Send", CLIENT))).toBe(root);
    expect(parentOf(find("chat", "chat.append_batch", 1))!.name).toBe("send");
    a.close();
    b.close();
  });

  it("follows a message to each device's frame and to the push request; the receipt's trace links the message's", async () => {
    const [alice, bob, carol] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol")];
    const a = await device(c, alice, "alice-laptop");
    const bobDevices = [await device(c, bob, "bob-phone"), await device(c, bob, "bob-laptop")];
    // Carol is offline with a push token: the message reaches her as a webhook push.
    const carolPhone = await device(c, carol, "carol-phone");
    await carolPhone.client.registerPushToken(PushProvider.PUSH_PROVIDER_WEBHOOK, "carol-token");
    carolPhone.close();
    const group = await a.client.createGroup("done-means", [bob.username, carol.username]);
    await waitFor("carol offline", async () => (await a.client.presenceQuery([carol.userId]))[0]?.status === PresenceStatus.PRESENCE_STATUS_OFFLINE);

    const traceId = hex(32);
    const clientSpan = hex(16);
    const ackTraces: string[] = [];
    reportSpans(() => [traceId, ...ackTraces]);
    const sent = await a.client.request({ $case: "send", value: { conversationId: group.id, clientMsgId: "done-1", text: "to every device", firstSend: false } }, `00-${traceId}-${clientSpan}-01`);
    const seq = sent.kind?.$case === "sent" ? sent.kind.value.seq : 0;
    expect(seq).toBeGreaterThan(0);
    const messageId = `${group.id}/${seq}`;
    for (const d of bobDevices) await waitFor(`${d.deviceId} got it`, () => d.in(group.id).length === 1);

    const inTrace = () => spans.filter((s) => s.traceId === traceId);
    const byId = () => new Map(inTrace().map((s) => [s.spanId, s]));
    /** Parent names up to the root, each "service:name". */
    const ancestry = (s: OtlpSpan) => {
      const ids = byId();
      const out: string[] = [];
      for (let p = s.parentSpanId ? ids.get(s.parentSpanId) : undefined; p; p = p.parentSpanId ? ids.get(p.parentSpanId) : undefined) out.push(`${p.service}:${p.name}`);
      return out;
    };
    const root = () => inTrace().find((s) => s.service === "edge" && s.name === "ws send");

    // One CONSUMER span per write of the message to each of bob's devices, under the edge's Deliver.
    const deviceSpan = (deviceId: string) => inTrace().find((s) => s.name === "process" && s.attrs["meshchat.device.id"] === deviceId);
    // Each service exports on its own schedule: wait until every span up to the sender's frame is in.
    await waitFor("a process span per bob device, with its ancestry", () => root() !== undefined && bobDevices.every((d) => {
      const span = deviceSpan(d.deviceId);
      return span !== undefined && ancestry(span).at(-1) === "edge:ws send";
    }));
    for (const d of bobDevices) {
      const span = deviceSpan(d.deviceId)!;
      expect(span.service).toBe("edge");
      expect(span.kind).toBe(CONSUMER);
      expect(span.attrs).toMatchObject({ "messaging.system": "meshchat", "messaging.destination.name": group.id, "messaging.message.id": messageId, "meshchat.message.seq": seq, "messaging.operation.type": "process", "enduser.id": bob.userId, "meshchat.recipient": "other" });
      const up = ancestry(span);
      expect(up[0]).toBe("edge:chat.internal.v1.EdgeDeliveryService/Deliver");
      // Unbroken up to the sender's frame, through chat's PRODUCER span of the message.
      expect(up).toContain("chat:send");
      expect(up.at(-1)).toBe("edge:ws send");
    }
    expect(root()!.parentSpanId).toBe(clientSpan);
    expect(root()!.attrs).toMatchObject({ "messaging.destination.name": group.id, "messaging.message.id": messageId, "meshchat.message.seq": seq });
    const producer = inTrace().find((s) => s.service === "chat" && s.name === "send")!;
    expect(producer.kind).toBe(PRODUCER);
    expect(producer.attrs).toMatchObject({ "messaging.system": "meshchat", "messaging.destination.name": group.id, "messaging.message.id": messageId });

    // The push request carries the trace: its traceparent names a span of the message's trace.
    await waitFor("carol's push", () => pushes.some((p) => p.token === "carol-token"));
    const push = pushes.find((p) => p.token === "carol-token")!;
    const [, pushTrace, pushParent] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(push.traceparent ?? "") ?? [];
    expect(pushTrace, push.traceparent).toBe(traceId);
    await waitFor("the push span", () => byId().has(pushParent!));
    expect(byId().get(pushParent!)!.name).toBe("push.send");
    // Chat exports on its own schedule: its NotifyBatch span may come after the notifier's.
    await waitFor("the push span's ancestry up to the sender's frame", () => ancestry(byId().get(pushParent!)!).at(-1) === "edge:ws send", {
      timeoutMs: 30_000,
      seen: () => ancestry(byId().get(pushParent!)!).join(" < "),
    });

    // A read receipt: its own trace, linked to the message's.
    await bobDevices[0]!.client.markRead(group.id, seq);
    const readAck = () => spans.find((s) => s.service === "chat" && s.name === "chat.internal.v1.ChatService/Ack" && s.kind === SERVER && s.attrs["meshchat.ack.kind"] === "ACK_KIND_READ" && s.attrs["messaging.message.id"] === messageId);
    await waitFor("the read ack's span", () => readAck() !== undefined);
    const ack = readAck()!;
    ackTraces.push(ack.traceId);
    expect(ack.traceId).not.toBe(traceId);
    expect(ack.links.map((l) => l.traceId)).toContain(traceId);
    expect(ack.links.find((l) => l.traceId === traceId)!.spanId).toBe(producer.spanId);
    // The coalesced delivery of receipts links the message (and each ack) too.
    const receiptDelivery = () => spans.find((s) => s.name === "chat.deliver_receipts" && s.links.some((l) => l.spanId === ack.spanId));
    await waitFor("the receipts delivery", () => receiptDelivery() !== undefined);
    expect(receiptDelivery()!.links.map((l) => l.traceId)).toContain(traceId);

    for (const d of [a, ...bobDevices]) d.close();
  });

  it("follows the HTTP, RPC and sampling conventions", async () => {
    const eve = await newUser(c, "eve");
    const mallory = await newUser(c, "mallory");
    const e = await device(c, eve);
    const m = await device(c, mallory);
    const group = await e.client.createGroup("private", []);
    // A client error: PERMISSION_DENIED is the caller's mistake, not the server's failure.
    const traceId = hex(32);
    reportSpans(() => [traceId]);
    const refused = await m.client.request({ $case: "send", value: { conversationId: group.id, clientMsgId: "nope", text: "let me in", firstSend: false } }, `00-${traceId}-${hex(16)}-01`).catch((err: unknown) => err);
    expect((refused as { code?: number }).code).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    const serverSend = () => spans.find((s) => s.traceId === traceId && s.service === "chat" && s.name === "chat.internal.v1.ChatService/Send" && s.kind === SERVER);
    const clientSend = () => spans.find((s) => s.traceId === traceId && s.service === "edge" && s.name === "chat.internal.v1.ChatService/Send" && s.kind === CLIENT);
    await waitFor("the refused send's spans", () => serverSend() !== undefined && clientSend() !== undefined);
    expect(serverSend()!.attrs["rpc.grpc.status_code"]).toBe(7);
    expect(serverSend()!.status?.code ?? 0).not.toBe(STATUS_ERROR);
    expect(serverSend()!.attrs["network.peer.address"]).toBe("127.0.0.1");
    expect(clientSend()!.attrs).toMatchObject({ "rpc.grpc.status_code": 7, "server.address": "127.0.0.1" });
    expect(clientSend()!.status?.code).toBe(STATUS_ERROR);
    // Successful calls carry the status code too.
    expect(spans.some((s) => s.kind === SERVER && s.attrs["rpc.system"] === "grpc" && s.attrs["rpc.grpc.status_code"] === 0)).toBe(true);

    // HTTP server spans for signup and the WebSocket upgrade.
    const http = (route: string, status: number) => spans.find((s) => s.service === "edge" && s.kind === SERVER && s.attrs["http.route"] === route && s.attrs["http.response.status_code"] === status);
    await waitFor("signup and upgrade spans", () => http("/v1/signup", 201) !== undefined && http("/v1/ws", 101) !== undefined);
    expect(http("/v1/signup", 201)!.attrs["http.request.method"]).toBe("POST");
    expect(http("/v1/ws", 101)!.attrs["http.request.method"]).toBe("GET");

    // Heartbeats happen (the edge records their round trip) but make no spans.
    const edgeMetrics = () => fetch(`http://127.0.0.1:${c.ports.edge + 2000}/metrics`).then((r) => r.text());
    await waitFor("a heartbeat round trip", async () => /meshchat_edge_heartbeat_duration_count [1-9]/.test(await edgeMetrics()));
    expect(spans.filter((s) => /heartbeat/i.test(s.name)).map((s) => `${s.service}:${s.name}`)).toEqual([]);
    // Metrics are pushed over OTLP too.
    await waitFor("an OTLP metrics push", () => metricPushes > 0);
    e.close();
    m.close();
  });

  it("serves grpc.health.v1 and Prometheus metrics on every service", async () => {
    const Health = makeGenericClientConstructor(healthService, "Health");
    const f = (n: string) => fs.readFileSync(path.join(TEST_CERTS, n));
    for (const [name, port] of [["edge", c.ports.edge], ["chat", c.ports.chat], ["presence", c.ports.presence], ["message-store", c.ports.store], ["notifier", c.ports.notifier]] as const) {
      // Health is open to any mesh identity allowed by the handshake (the kubelet-style prober uses edge's here).
      const client = new Health(`127.0.0.1:${port}`, credentials.createSsl(f("ca.pem"), f("edge-key.pem"), f("edge.pem")), { "grpc.ssl_target_name_override": name });
      const res = await new Promise<{ status: string }>((resolve, reject) => (client as unknown as { check: (r: object, m: Metadata, cb: (e: Error | null, r: { status: string }) => void) => void }).check({ service: "" }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r))));
      client.close();
      expect(res.status, name).toBe("SERVING");
      const metrics = await (await fetch(`http://127.0.0.1:${port + 2000}/metrics`)).text();
      expect(metrics, name).toContain("rpc_server_call_duration");
    }
    const edgeMetrics = await (await fetch(`http://127.0.0.1:${c.ports.edge + 2000}/metrics`)).text();
    expect(edgeMetrics).toMatch(/meshchat_edge_frames_in_total\{[^}]*kind="send"/);
    expect(edgeMetrics).toMatch(/meshchat_delivery_latency_bucket\{[^}]*le="\+Inf"\} [1-9]/);
    expect(edgeMetrics).toMatch(/meshchat_messages_delivered_total\{[^}]*meshchat_recipient="other"[^}]*\} [1-9]/);
  });
  it("exports every metric and label the dashboard and the alerting rules use", async () => {
    const ROOT = path.resolve(import.meta.dirname, "../..");
    const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, "mesh/dashboards/meshchat.json"), "utf8")) as { panels: Array<{ title: string; targets: Array<{ expr: string; legendFormat?: string }> }> };
    const rules = YAML.parse(fs.readFileSync(path.join(ROOT, "mesh/rules/meshchat.rules.yaml"), "utf8")) as { groups: Array<{ rules: Array<{ alert: string; expr: string; annotations?: Record<string, string> }> }> };
    const uses: Array<{ where: string; expr: string; extraLabels: string[] }> = [];
    const templated = (s = "") => [...s.matchAll(/\{\{\s*(?:\$labels\.)?(\w+)\s*\}\}/g)].map((m) => m[1]!);
    for (const p of dashboard.panels) for (const t of p.targets) uses.push({ where: `panel "${p.title}"`, expr: t.expr, extraLabels: templated(t.legendFormat) });
    for (const g of rules.groups) for (const r of g.rules) uses.push({ where: `rule ${r.alert}`, expr: r.expr, extraLabels: Object.values(r.annotations ?? {}).flatMap((a) => templated(a)) });
    expect(uses.length).toBeGreaterThan(20);
    expect(rules.groups.flatMap((g) => g.rules.map((r) => r.alert))).toEqual(expect.arrayContaining(["MeshchatDeliveryLatencyHigh", "MeshchatErrorRatioHigh", "MeshchatCatchupSlow", "MeshchatPushFailureRatioHigh"]));

    // instance and job are added by Prometheus when it scrapes; le is the histogram bucket label.
    const ADDED_BY_PROMETHEUS = new Set(["instance", "job"]);
    const ports = [c.ports.edge, c.ports.chat, c.ports.presence, c.ports.store, c.ports.notifier].map((p) => p + 2000);
    const problems = (seen: Map<string, Set<string>>) => uses.flatMap(({ where, expr, extraLabels }) => {
      const { metrics, labels } = promqlUsage(expr);
      const out = metrics.filter((m) => !seen.has(m)).map((m) => `${where}: no metric ${m}`);
      const have = new Set(metrics.flatMap((m) => [...(seen.get(m) ?? [])]));
      for (const l of [...labels, ...extraLabels]) if (!ADDED_BY_PROMETHEUS.has(l) && !have.has(l)) out.push(`${where}: no label ${l} on ${metrics.join(", ")}`);
      return out;
    });
    // everyKindOfTraffic() made every series exist; exports can lag a moment behind it.
    let last: string[] = [];
    await waitFor("every dashboard and rule series in the scrape", async () => (last = problems(await scrapeAll(ports))).length === 0).catch((err: Error) => {
      throw new Error(`${err.message}:\n${last.join("\n")}`);
    });
  });
});
