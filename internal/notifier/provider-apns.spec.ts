import { generateKeyPairSync } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ApnsProvider, type ApnsConfig } from "./provider-apns.js";
import type { PushMessage } from "./provider.js";
import { APNS, FakeApnsServer, selfSignedCert, waitFor } from "../../test/support/notifier-fakes.js";

const msg: PushMessage = { token: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90", title: "team", body: "bob: lunch? 🍜", collapseKey: "g:team", data: { conversation_id: "g:team", seq: "42", count: "1" } };

let server: FakeApnsServer;
const open: ApnsProvider[] = [];

function provider(extra: Partial<ApnsConfig> = {}): ApnsProvider {
  const p = new ApnsProvider({ teamId: server.teamId, keyId: server.keyId, privateKey: server.privateKey, bundleId: server.bundleId, endpoint: server.url, ca: server.ca, timeoutMs: 2_000, ...extra });
  open.push(p);
  return p;
}

beforeAll(async () => {
  server = await FakeApnsServer.start(selfSignedCert());
});
afterEach(async () => {
  server.answers.length = 0;
  server.expireTokensIssuedBefore = 0;
  const problems = server.problems.splice(0);
  for (const p of open.splice(0)) await p.close();
  // close() really closes the HTTP/2 session.
  await waitFor("APNs sessions closed", () => server.sessions.size === 0);
  // Everything the fake APNs checks (ES256 token, kid, iss, iat, path, apns-* headers) held.
  expect(problems).toEqual([]);
});
afterAll(async () => {
  await server.close();
});

describe("APNs provider (HTTP/2, token-based auth)", () => {
  it("sends with an ES256 provider token and the documented headers and payload", async () => {
    const p = provider();
    const before = Date.now();
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    const r = server.requests.at(-1)!;
    expect(r.path).toBe(`/3/device/${msg.token}`);
    expect(r.kid).toBe(server.keyId);
    expect(r.claims.iss).toBe(server.teamId);
    expect(Math.abs(r.claims.iat! - before / 1000)).toBeLessThan(5);
    expect(r.headers["apns-topic"]).toBe("chat.meshchat.app");
    expect(r.headers["apns-push-type"]).toBe("alert");
    expect(r.headers["apns-priority"]).toBe("10");
    expect(r.headers["apns-collapse-id"]).toBe("g:team");
    const expiration = Number(r.headers["apns-expiration"]);
    expect(expiration).toBeGreaterThan(before / 1000 + 86_000);
    expect(r.body).toEqual({
      aps: { alert: { title: "team", body: "bob: lunch? 🍜" }, sound: "default", "thread-id": "g:team" },
      conversation_id: "g:team",
      seq: "42",
      count: "1",
    });
  });

  it("sends a background update as a background push: priority 5, content-available, no alert, no collapse id", async () => {
    const p = provider();
    const data = { event: "read", reads: '[{"conversation_id":"g:team","read_seq":42,"unread":0}]' };
    expect(await p.send({ token: msg.token, title: "", body: "", collapseKey: "", data, background: true })).toEqual({ kind: "ok" });
    const r = server.requests.at(-1)!;
    expect(r.headers["apns-push-type"]).toBe("background");
    expect(r.headers["apns-priority"]).toBe("5");
    expect(r.headers["apns-collapse-id"]).toBeUndefined();
    expect(r.body).toEqual({ aps: { "content-available": 1 }, ...data });
  });

  it("reuses one HTTP/2 session and one provider token, and reconnects when the session dies", async () => {
    const p = provider();
    const first = server.requests.length;
    for (let i = 0; i < 3; i++) expect(await p.send(msg)).toEqual({ kind: "ok" });
    await Promise.all([p.send(msg), p.send(msg)]);
    const mine = server.requests.slice(first);
    expect(new Set(mine.map((r) => r.session)).size).toBe(1);
    expect(new Set(mine.map((r) => r.jwt)).size).toBe(1);

    server.dropSessions();
    await waitFor("session gone", () => server.sessions.size === 0);
    // The first send may see the dying session (retry); within two tries it is back on a new one.
    let r = await p.send(msg);
    if (r.kind === "retry") r = await p.send(msg);
    expect(r).toEqual({ kind: "ok" });
    expect(server.requests.at(-1)!.session).not.toBe(mine[0]!.session);
  });

  it("signs a new provider token after 50 minutes, not before", async () => {
    let now = Date.now();
    server.now = () => now;
    try {
      const p = provider({ now: () => now });
      await p.send(msg);
      const jwt1 = server.requests.at(-1)!.jwt;
      now += 49 * 60_000;
      await p.send(msg);
      expect(server.requests.at(-1)!.jwt).toBe(jwt1);
      now += 2 * 60_000;
      await p.send(msg);
      const r = server.requests.at(-1)!;
      expect(r.jwt).not.toBe(jwt1);
      expect(r.claims.iat).toBe(Math.floor(now / 1000));
    } finally {
      server.now = Date.now;
    }
  });

  it("on 403 ExpiredProviderToken signs a new token and retries once", async () => {
    let now = Date.now();
    const p = provider({ now: () => now });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    const old = server.requests.at(-1)!;
    // APNs now considers that token expired; our clock moved on by a second.
    server.expireTokensIssuedBefore = old.claims.iat! + 1;
    now += 1_000;
    const before = server.requests.length;
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(server.requests.length - before).toBe(2);
    expect(server.requests.at(-1)!.jwt).not.toBe(old.jwt);

    // Still refused after a fresh token: a failure, no loop.
    server.expireTokensIssuedBefore = Number.MAX_SAFE_INTEGER;
    const before2 = server.requests.length;
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: expect.stringContaining("ExpiredProviderToken") });
    expect(server.requests.length - before2).toBe(2);
  });

  it("maps 410 and 400 BadDeviceToken / DeviceTokenNotForTopic to dead-token, 429/500/503 to retry, other 4xx to failed", async () => {
    const p = provider();
    server.answers.push(APNS.unregistered, APNS.badDeviceToken, APNS.notForTopic, APNS.tooManyRequests("5"), APNS.internal, APNS.unavailable, APNS.badCollapseId, APNS.payloadTooLarge, APNS.invalidProviderToken);
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: "apns 410 Unregistered" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: "apns 400 BadDeviceToken" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token", reason: "apns 400 DeviceTokenNotForTopic" });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", retryAfterMs: 5_000 });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: "apns 500 InternalServerError" });
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: "apns 503 ServiceUnavailable" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: "apns 400 BadCollapseId" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: "apns 413 PayloadTooLarge" });
    expect(await p.send(msg)).toMatchObject({ kind: "failed", reason: "apns 403 InvalidProviderToken" });
  });

  it("times out an unanswered request as retry and then works on a new session", async () => {
    const p = provider({ timeoutMs: 100 });
    server.answers.push("hang");
    expect(await p.send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("timeout") });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
  });

  it("keeps apns-collapse-id within 64 bytes and custom data from replacing aps", async () => {
    const p = provider();
    const long = `d:${"0f8fad5b-d9cb-469f-a165-70867728950e"}:${"7c9e6679-7425-40de-944b-e07fc1f90ae7"}`;
    const other = `d:${"0f8fad5b-d9cb-469f-a165-70867728950e"}:${"7c9e6679-7425-40de-944b-e07fc1f90ae8"}`;
    expect(await p.send({ ...msg, collapseKey: long, data: { ...msg.data, aps: "evil" } })).toEqual({ kind: "ok" });
    const a = server.requests.at(-1)!;
    expect(await p.send({ ...msg, collapseKey: other })).toEqual({ kind: "ok" });
    const b = server.requests.at(-1)!;
    expect(Buffer.byteLength(String(a.headers["apns-collapse-id"]))).toBeLessThanOrEqual(64);
    // Two conversations sharing a long prefix still get different collapse ids.
    expect(a.headers["apns-collapse-id"]).not.toBe(b.headers["apns-collapse-id"]);
    expect(a.body.aps.alert.title).toBe("team");
    expect(a.body.aps["thread-id"]).toBe(long);
  });

  it("reports a refused connection as retry, and refuses a bad configuration at construction", async () => {
    const nowhere = provider({ endpoint: "https://127.0.0.1:1" });
    expect(await nowhere.send(msg)).toMatchObject({ kind: "retry", reason: expect.stringContaining("ECONNREFUSED") });

    const base = { teamId: "T", keyId: "K", bundleId: "b", privateKey: server.privateKey };
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(() => new ApnsProvider({ ...base, privateKey: rsa })).toThrow(/P-256/);
    expect(() => new ApnsProvider({ ...base, privateKey: "garbage" })).toThrow(/PEM/);
    expect(() => new ApnsProvider({ ...base, teamId: "" })).toThrow(/teamId/);
    expect(() => new ApnsProvider({ ...base, endpoint: "http://api.push.apple.com" })).toThrow(/https/);
    expect(() => new ApnsProvider({ ...base, tokenRefreshMs: 5 * 60_000 })).toThrow(/20/);
  });
});
