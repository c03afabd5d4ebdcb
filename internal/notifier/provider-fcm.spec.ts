import { generateKeyPairSync } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FcmProvider, type FcmConfig } from "./provider-fcm.js";
import type { PushMessage } from "./provider.js";
import { FakeFcmServer, FCM, selfSignedCert, waitFor } from "../../test/support/notifier-fakes.js";

const msg: PushMessage = { token: "fcm-device-token-1", title: "alice", body: "hello 👋", collapseKey: "d:alice:bob", data: { conversation_id: "d:alice:bob", seq: "7", count: "1" } };

let server: FakeFcmServer;
let tls: { key: string; cert: string };
const open: FcmProvider[] = [];

function provider(extra: Partial<FcmConfig> = {}): FcmProvider {
  const p = new FcmProvider({ serviceAccount: server.serviceAccount, endpoint: server.url, timeoutMs: 2_000, ca: tls.cert, ...extra });
  open.push(p);
  return p;
}

beforeAll(async () => {
  tls = selfSignedCert();
  server = await FakeFcmServer.start(tls);
});
afterEach(async () => {
  server.sendAnswers.length = 0;
  server.tokenAnswers.length = 0;
  const problems = server.problems.splice(0);
  for (const p of open.splice(0)) await p.close();
  // close() really closes: the server sees no connection left.
  await waitFor("FCM connections closed", () => server.openConnections === 0);
  // Everything the fake Google checks (assertion signature, claims, form, path) held.
  expect(problems).toEqual([]);
});
afterAll(async () => {
  await server.close();
});

describe("FCM HTTP v1 provider", () => {
  it("exchanges a signed JWT assertion for an access token and sends the documented v1 message", async () => {
    const p = provider();
    const tokensBefore = server.tokenRequests.length;
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(await p.send({ ...msg, body: "second" })).toEqual({ kind: "ok" });

    // One token exchange for both sends (cached), with the documented assertion.
    expect(server.tokenRequests.length - tokensBefore).toBe(1);
    const t = server.tokenRequests.at(-1)!;
    expect(t.header).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(t.claims).toMatchObject({
      iss: server.serviceAccount.client_email,
      aud: server.serviceAccount.token_uri,
      scope: "https://www.googleapis.com/auth/firebase.messaging",
    });
    expect(t.claims.exp! - t.claims.iat!).toBe(3600);

    const sent = server.sends.at(-2)!;
    expect(sent.method).toBe("POST");
    expect(sent.path).toBe("/v1/projects/meshchat-test/messages:send");
    expect(sent.auth).toBe(`Bearer ${server.issued.at(-1)}`);
    expect(sent.contentType).toMatch(/^application\/json/);
    expect(sent.body).toEqual({
      message: {
        token: "fcm-device-token-1",
        notification: { title: "alice", body: "hello 👋" },
        data: { conversation_id: "d:alice:bob", seq: "7", count: "1" },
        android: { collapse_key: "d:alice:bob", priority: "high" },
        apns: { headers: { "apns-collapse-id": "d:alice:bob" } },
      },
    });
  });

  it("sends a background update as a data-only message: no notification, normal priority, an APNs background push", async () => {
    const p = provider();
    const data = { event: "read", reads: '[{"conversation_id":"d:alice:bob","read_seq":7,"unread":0}]' };
    expect(await p.send({ token: "fcm-device-token-1", title: "", body: "", collapseKey: "", data, background: true })).toEqual({ kind: "ok" });
    // FCM refuses a data message to an Apple device with a priority other than 5 (INVALID_ARGUMENT).
    expect(server.sends.at(-1)!.body).toEqual({
      message: {
        token: "fcm-device-token-1",
        data,
        android: { priority: "normal" },
        apns: { headers: { "apns-push-type": "background", "apns-priority": "5" }, payload: { aps: { "content-available": 1 } } },
      },
    });
  });

  it("maps 429 and 5xx to retry, honouring Retry-After in seconds and as an HTTP date", async () => {
    const p = provider();
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    server.sendAnswers.push(FCM.throttled("7"), FCM.internal, FCM.unavailable(inTenSeconds));
    expect(await p.send(msg)).toMatchObject({ kind: "retry", retryAfterMs: 7_000, reason: expect.stringContaining("QUOTA_EXCEEDED") });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("500") });
    const r = await p.send(msg);
    expect(r.kind).toBe("retry");
    expect(r.kind === "retry" && r.retryAfterMs).toBeGreaterThan(8_000);
  });

  it("maps 404 UNREGISTERED and an invalid registration token to dead-token, other INVALID_ARGUMENT and 403 to failed", async () => {
    const p = provider();
    server.sendAnswers.push(FCM.unregistered, FCM.invalidToken, FCM.invalidTokenField, FCM.invalidPayload, FCM.senderMismatch);
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: expect.stringContaining("UNREGISTERED") });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("INVALID_ARGUMENT") });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("SENDER_ID_MISMATCH") });
  });

  it("on 401 fetches a new access token once and retries inline", async () => {
    const p = provider();
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    const first = server.issued.at(-1)!;
    server.revoked.add(first);
    const sendsBefore = server.sends.length;
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(server.sends.length - sendsBefore).toBe(2); // the 401, then the retry
    expect(server.sends.at(-2)!.auth).toBe(`Bearer ${first}`);
    expect(server.sends.at(-1)!.auth).toBe(`Bearer ${server.issued.at(-1)}`);
    expect(server.issued.at(-1)).not.toBe(first);
  });

  it("a second 401 in a row is a failure, not a loop", async () => {
    const p = provider();
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    server.sendAnswers.push({ status: 401, body: { error: { code: 401, status: "UNAUTHENTICATED", message: "no" } } }, { status: 401, body: { error: { code: 401, status: "UNAUTHENTICATED", message: "still no" } } });
    const before = server.sends.length;
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("401") });
    expect(server.sends.length - before).toBe(2);
  });

  it("refreshes the access token shortly before it expires", async () => {
    let now = Date.now();
    server.now = () => now;
    try {
      const p = provider({ now: () => now });
      const before = server.tokenRequests.length;
      expect(await p.send(msg)).toEqual({ kind: "ok" });
      now += 50 * 60_000; // 50 minutes: still valid
      expect(await p.send(msg)).toEqual({ kind: "ok" });
      expect(server.tokenRequests.length - before).toBe(1);
      now += 6 * 60_000; // 56 minutes: within the refresh margin of a one-hour token
      expect(await p.send(msg)).toEqual({ kind: "ok" });
      expect(server.tokenRequests.length - before).toBe(2);
    } finally {
      server.now = Date.now;
    }
  });

  it("concurrent sends share one token exchange", async () => {
    const p = provider();
    const before = server.tokenRequests.length;
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => p.send({ ...msg, token: `t-${i}` })));
    expect(results.every((r) => r.kind === "ok")).toBe(true);
    expect(server.tokenRequests.length - before).toBe(1);
  });

  it("a refused assertion is a failure; an unavailable token endpoint is a retry", async () => {
    const p = provider();
    server.tokenAnswers.push({ status: 400, body: { error: "invalid_grant", error_description: "Invalid JWT Signature." } });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("invalid_grant") });
    server.tokenAnswers.push({ status: 503, body: { error: "unavailable" }, headers: { "retry-after": "3" } });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", retryAfterMs: 3_000 });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
  });

  it("times out a request that gets no answer (retry), and reports a refused connection as retry", async () => {
    const p = provider({ timeoutMs: 100 });
    expect(await p.send(msg)).toEqual({ kind: "ok" }); // token cached
    server.sendAnswers.push("hang");
    const t0 = Date.now();
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("timeout") });
    expect(Date.now() - t0).toBeLessThan(1_500);

    const nowhere = new FcmProvider({ serviceAccount: { ...server.serviceAccount, token_uri: "http://127.0.0.1:1/token" }, endpoint: "http://127.0.0.1:1", timeoutMs: 1_000 });
    open.push(nowhere);
    expect(await nowhere.send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("ECONNREFUSED") });
  });

  it("an untrusted certificate is a configuration failure, not a retry", async () => {
    const p = new FcmProvider({ serviceAccount: server.serviceAccount, endpoint: server.url, timeoutMs: 2_000 });
    open.push(p);
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("tls") });
  });

  it("hashes a collapse key longer than APNs' 64 bytes in the apns-collapse-id header", async () => {
    const p = provider();
    const long = `d:${"a".repeat(36)}:${"b".repeat(36)}`;
    expect(await p.send({ ...msg, collapseKey: long })).toEqual({ kind: "ok" });
    const body = server.sends.at(-1)!.body;
    expect(body.message.android.collapse_key).toBe(long);
    expect(Buffer.byteLength(body.message.apns.headers["apns-collapse-id"])).toBeLessThanOrEqual(64);
  });

  it("refuses a bad configuration at construction", () => {
    const sa = server.serviceAccount;
    expect(() => new FcmProvider({ serviceAccount: { ...sa, project_id: "" } })).toThrow(/project_id/);
    expect(() => new FcmProvider({ serviceAccount: { ...sa, private_key: "not a key" } })).toThrow(/private_key/);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(() => new FcmProvider({ serviceAccount: { ...sa, private_key: ec } })).toThrow(/RSA/);
    expect(() => new FcmProvider({ serviceAccount: sa, endpoint: "ftp://x" })).toThrow(/http/);
  });
});
