import http from "node:http";
import { credentials, makeGenericClientConstructor, Metadata } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { device, newUser, startCluster, TEST_CERTS, waitFor, type TestCluster } from "./harness.js";

interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; service: string }

/** A real OTLP/HTTP receiver: collects every span the five processes export. */
const spans: OtlpSpan[] = [];
let receiver: http.Server;
let c: TestCluster;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      if (req.url === "/v1/traces") {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: Array<Omit<OtlpSpan, "service">> }> }> };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "";
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, service });
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  const port = (receiver.address() as { port: number }).port;
  c = await startCluster({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: "0", METRICS_PORT: "" });
});
afterAll(async () => {
  await c?.stop();
  await new Promise((r) => receiver.close(r));
});

const hex = (n: number) => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join("");

describe("OpenTelemetry (§7)", () => {
  it("puts every hop of one message in one trace, with the right parents", async () => {
    const [alice, bob, carol] = [await newUser(c, "alice"), await newUser(c, "bob"), await newUser(c, "carol")];
    const a = await device(c, alice);
    const b = await device(c, bob);
    const group = await a.client.createGroup("traced", [bob.username, carol.username]);
    // The client starts the trace; carol is offline so the notifier is asked too.
    const traceId = hex(32);
    const clientSpan = hex(16);
    await a.client.request({ $case: "send", value: { conversationId: group.id, clientMsgId: "traced-1", text: "follow me" } }, `00-${traceId}-${clientSpan}-01`);
    await waitFor("bob got it", () => b.in(group.id).length === 1);
    const inTrace = () => spans.filter((s) => s.traceId === Buffer.from(traceId, "hex").toString("base64") || s.traceId === traceId);
    const need = ["edge:ws send", "edge:chat.internal.v1.ChatService/Send", "chat:chat.internal.v1.ChatService/Send", "chat:chat.append_batch", "chat:chat.internal.v1.MessageStoreService/Append", "message-store:chat.internal.v1.MessageStoreService/Append", "chat:chat.internal.v1.EdgeDeliveryService/Deliver", "edge:chat.internal.v1.EdgeDeliveryService/Deliver", "chat:chat.internal.v1.NotifierService/Notify", "notifier:chat.internal.v1.NotifierService/Notify"];
    await waitFor("all hops exported", () => need.every((n) => inTrace().some((s) => `${s.service}:${s.name}` === n)), 20_000);
    const t = inTrace();
    const byId = new Map(t.map((s) => [s.spanId, s]));
    const find = (service: string, name: string, kind: number) => t.find((s) => s.service === service && s.name === name && s.kind === kind)!;
    const parentOf = (s: OtlpSpan) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);
    const SERVER = 2, CLIENT = 3;
    const root = find("edge", "ws send", SERVER);
    // The edge's span joins the client's own trace as its child.
    const rootParent = root.parentSpanId ?? "";
    expect([clientSpan, Buffer.from(clientSpan, "hex").toString("base64")]).toContain(rootParent);
    // Each server span's parent is the caller's client span, in the caller's process.
    for (const [svc, method, callerSvc] of [["chat", "ChatService/Send", "edge"], ["message-store", "MessageStoreService/Append", "chat"], ["edge", "EdgeDeliveryService/Deliver", "chat"], ["notifier", "NotifierService/Notify", "chat"]] as const) {
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
});
