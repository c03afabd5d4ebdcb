import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebhookProvider, webhookSignature } from "./provider-webhook.js";
import type { PushMessage } from "./provider.js";
import { FakeWebhookServer, waitFor } from "../../test/support/notifier-fakes.js";

const msg: PushMessage = { token: "relay-token-1", title: "alice", body: "hi ✨", collapseKey: "d:a:b", data: { conversation_id: "d:a:b", seq: "3", count: "1" } };

let server: FakeWebhookServer;
const open: WebhookProvider[] = [];

function provider(extra: { timeoutMs?: number; secret?: string } = {}): WebhookProvider {
  const p = new WebhookProvider({ url: server.url, secret: extra.secret ?? server.secret, timeoutMs: extra.timeoutMs ?? 2_000 });
  open.push(p);
  return p;
}

beforeAll(async () => {
  server = await FakeWebhookServer.start();
});
afterEach(async () => {
  server.answers.length = 0;
  for (const p of open.splice(0)) await p.close();
  await waitFor("webhook connections closed", () => server.openConnections === 0);
});
afterAll(async () => {
  await server.close();
});

describe("webhook provider", () => {
  it("POSTs the documented JSON signed with X-Meshchat-Signature", async () => {
    expect(await provider().send(msg)).toEqual({ kind: "ok" });
    const r = server.requests.at(-1)!;
    expect(r.signatureOk).toBe(true);
    expect(r.method).toBe("POST");
    expect(r.contentType).toMatch(/^application\/json/);
    expect(r.body).toEqual({ token: "relay-token-1", title: "alice", body: "hi ✨", collapse_key: "d:a:b", data: { conversation_id: "d:a:b", seq: "3", count: "1" } });
    // The RFC-style test vector of HMAC-SHA256, so receivers in any language can check their side.
    expect(webhookSignature("key", "The quick brown fox jumps over the lazy dog")).toBe("sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  });

  it("marks a background update so the relay sends it without an alert", async () => {
    const data = { event: "read", reads: '[{"conversation_id":"d:a:b","read_seq":3,"unread":0}]' };
    expect(await provider().send({ token: "relay-token-1", title: "", body: "", collapseKey: "", data, background: true })).toEqual({ kind: "ok" });
    expect(server.requests.at(-1)!.body).toEqual({ token: "relay-token-1", title: "", body: "", collapse_key: "", data, background: true });
  });

  it("a receiver with another secret refuses it: a permanent failure", async () => {
    expect(await provider({ secret: "wrong" }).send(msg)).toMatchObject({ kind: "failed", reason: "webhook 401" });
    expect(server.requests.at(-1)!.signatureOk).toBe(false);
  });

  it("maps 2xx to ok, 404/410 to dead-token, 429/5xx to retry with Retry-After, other 4xx to failed", async () => {
    const p = provider();
    server.answers.push({ status: 202 }, { status: 204 }, { status: 404 }, { status: 410 }, { status: 429, headers: { "retry-after": "2" } }, { status: 500 }, { status: 503 }, { status: 400 }, { status: 403 });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: "webhook 404" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: "webhook 410" });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", retryAfterMs: 2_000 });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: "webhook 500" });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: "webhook 503" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: "webhook 400" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: "webhook 403" });
  });

  it("times out a receiver that does not answer (retry)", async () => {
    server.answers.push("hang");
    const t0 = Date.now();
    expect(await provider({ timeoutMs: 100 }).send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("timeout") });
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it("refuses a missing secret or a bad URL at construction", () => {
    expect(() => new WebhookProvider({ url: server.url, secret: "" })).toThrow(/secret/);
    expect(() => new WebhookProvider({ url: "not a url", secret: "x" })).toThrow(/URL/);
  });
});
