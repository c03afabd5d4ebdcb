import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { decodeProtectedHeader, importSPKI, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PushDispatcher } from "../../internal/notifier/dispatcher.js";
import { ApnsProvider } from "../../internal/notifier/provider-apns.js";
import { FcmProvider } from "../../internal/notifier/provider-fcm.js";
import type { ProviderName, PushMessage, PushProvider } from "../../internal/notifier/provider.js";
import { MemoryTokenStore } from "../../internal/notifier/token-store-memory.js";

/** What the next request to a fake provider gets. */
type Mode = "ok" | "throttle" | "error" | "dead";

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const serviceAccount = {
  project_id: "meshchat-test",
  client_email: "push@meshchat-test.iam.gserviceaccount.com",
  private_key: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  token_uri: "",
};
const msg: PushMessage = { token: "device-token-1", title: "alice", body: "hello", collapseKey: "d:conv", data: { conversation_id: "d:conv", seq: "7" } };

// ---------------------------------------------------------------- FCM: OAuth token endpoint + messages:send
const fcm = { modes: [] as Mode[], sends: [] as Array<{ auth: string; body: Record<string, any> }>, tokenRequests: 0, problems: [] as string[] };
let fcmServer: http.Server;
let fcmUrl = "";

// ---------------------------------------------------------------- APNs: HTTP/2 over TLS
const apns = { modes: [] as Mode[], requests: [] as Array<{ headers: http2.IncomingHttpHeaders; body: Record<string, any> }>, problems: [] as string[] };
let apnsServer: http2.Http2SecureServer;
let apnsUrl = "";
let apnsCa = "";

function readBody(req: http.IncomingMessage | http2.Http2ServerRequest): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
  });
}

beforeAll(async () => {
  const rsaPublic = await importSPKI(rsa.publicKey.export({ type: "spki", format: "pem" }).toString(), "RS256");
  fcmServer = http.createServer(async (req, res) => {
    const body = await readBody(req);
    if (req.url === "/token") {
      fcm.tokenRequests++;
      const form = new URLSearchParams(body);
      if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") fcm.problems.push("grant_type");
      try {
        const { payload } = await jwtVerify(form.get("assertion")!, rsaPublic, { issuer: serviceAccount.client_email, audience: serviceAccount.token_uri });
        if (payload.scope !== "https://www.googleapis.com/auth/firebase.messaging") fcm.problems.push("scope");
        if (typeof payload.exp !== "number" || payload.exp - (payload.iat ?? 0) > 3600) fcm.problems.push("exp");
      } catch (e) {
        fcm.problems.push(`assertion: ${(e as Error).message}`);
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: `at-${fcm.tokenRequests}`, expires_in: 3600, token_type: "Bearer" }));
      return;
    }
    if (req.url !== `/v1/projects/${serviceAccount.project_id}/messages:send` || req.method !== "POST") fcm.problems.push(`path ${req.url}`);
    fcm.sends.push({ auth: String(req.headers.authorization), body: JSON.parse(body) });
    const mode = fcm.modes.shift() ?? "ok";
    if (mode === "ok") res.writeHead(200).end(JSON.stringify({ name: "projects/meshchat-test/messages/1" }));
    else if (mode === "throttle") res.writeHead(429, { "retry-after": "1" }).end(JSON.stringify({ error: { code: 429, status: "RESOURCE_EXHAUSTED" } }));
    else if (mode === "error") res.writeHead(503).end(JSON.stringify({ error: { code: 503, status: "UNAVAILABLE" } }));
    else res.writeHead(404).end(JSON.stringify({ error: { code: 404, status: "NOT_FOUND", details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" }] } }));
  });
  await new Promise<void>((r) => fcmServer.listen(0, "127.0.0.1", r));
  fcmUrl = `http://127.0.0.1:${(fcmServer.address() as { port: number }).port}`;
  serviceAccount.token_uri = `${fcmUrl}/token`;

  // A self-signed certificate for the fake APNs host.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apns-"));
  const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")]);
  if (r.status !== 0) throw new Error(String(r.stderr));
  apnsCa = fs.readFileSync(path.join(dir, "cert.pem"), "utf8");
  const ecPublic = await importSPKI(ec.publicKey.export({ type: "spki", format: "pem" }).toString(), "ES256");
  apnsServer = http2.createSecureServer({ key: fs.readFileSync(path.join(dir, "key.pem")), cert: apnsCa });
  apnsServer.on("session", (s) => { h2Sessions.add(s); s.on("close", () => h2Sessions.delete(s)); });
  apnsServer.on("request", async (req, res) => {
    const body = await readBody(req);
    const h = req.headers;
    try {
      const jwt = String(h.authorization).replace(/^bearer /, "");
      if (decodeProtectedHeader(jwt).kid !== "KEY123") apns.problems.push("kid");
      await jwtVerify(jwt, ecPublic, { issuer: "TEAM456", algorithms: ["ES256"] });
    } catch (e) {
      apns.problems.push(`jwt: ${(e as Error).message}`);
    }
    apns.requests.push({ headers: h, body: JSON.parse(body) });
    const mode = apns.modes.shift() ?? "ok";
    if (mode === "ok") res.writeHead(200, { "apns-id": "x" }).end();
    else if (mode === "throttle") res.writeHead(429).end(JSON.stringify({ reason: "TooManyRequests" }));
    else if (mode === "error") res.writeHead(503).end(JSON.stringify({ reason: "ServiceUnavailable" }));
    else res.writeHead(410).end(JSON.stringify({ reason: "Unregistered", timestamp: Date.now() }));
  });
  await new Promise<void>((r) => apnsServer.listen(0, "127.0.0.1", r));
  apnsUrl = `https://localhost:${(apnsServer.address() as { port: number }).port}`;
});

const h2Sessions = new Set<http2.ServerHttp2Session>();
afterAll(async () => {
  fcmServer.closeAllConnections();
  await new Promise((r) => fcmServer.close(r));
  for (const s of h2Sessions) s.destroy();
  await new Promise((r) => apnsServer.close(r));
});

const fcmProvider = () => new FcmProvider({ serviceAccount, endpoint: fcmUrl, timeoutMs: 3_000 });
const apnsProvider = () => new ApnsProvider({ teamId: "TEAM456", keyId: "KEY123", privateKey: ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), bundleId: "chat.meshchat.app", endpoint: apnsUrl, timeoutMs: 3_000, ca: apnsCa });

describe("FCM HTTP v1 adapter", () => {
  it("exchanges a signed service-account JWT for an access token and sends the documented message", async () => {
    const p = fcmProvider();
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(fcm.problems).toEqual([]);
    expect(fcm.tokenRequests).toBe(1); // cached
    const sent = fcm.sends.at(-1)!;
    expect(sent.auth).toBe("Bearer at-1");
    expect(sent.body).toEqual({
      message: {
        token: "device-token-1",
        notification: { title: "alice", body: "hello" },
        data: { conversation_id: "d:conv", seq: "7" },
        android: { collapse_key: "d:conv", priority: "high" },
        apns: { headers: { "apns-collapse-id": "d:conv" } },
      },
    });
  });

  it("maps throttling and server errors to retry (with Retry-After) and UNREGISTERED to a dead token", async () => {
    const p = fcmProvider();
    fcm.modes.push("throttle", "error", "dead");
    expect(await p.send(msg)).toMatchObject({ kind: "retry", retryAfterMs: 1000 });
    expect(await p.send(msg)).toMatchObject({ kind: "retry" });
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token" });
  });
});

describe("APNs adapter (HTTP/2, token auth)", () => {
  it("sends with an ES256 provider token and the documented headers and payload", async () => {
    const p = apnsProvider();
    expect(await p.send(msg)).toEqual({ kind: "ok" });
    expect(apns.problems).toEqual([]);
    const { headers, body } = apns.requests.at(-1)!;
    expect(headers[":path"]).toBe("/3/device/device-token-1");
    expect(headers["apns-topic"]).toBe("chat.meshchat.app");
    expect(headers["apns-push-type"]).toBe("alert");
    expect(headers["apns-collapse-id"]).toBe("d:conv");
    expect(body).toMatchObject({ aps: { alert: { title: "alice", body: "hello" }, "thread-id": "d:conv" }, conversation_id: "d:conv", seq: "7" });
    await p.close();
  });

  it("maps 429/503 to retry and 410 Unregistered to a dead token", async () => {
    const p = apnsProvider();
    apns.modes.push("throttle", "error", "dead");
    expect((await p.send(msg)).kind).toBe("retry");
    expect((await p.send(msg)).kind).toBe("retry");
    expect(await p.send(msg)).toMatchObject({ kind: "dead-token" });
    await p.close();
  });
});

describe("push dispatcher", () => {
  const noSleep = async () => {};
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("retries with backoff, removes dead tokens, skips muted, collapses per conversation and cuts previews by code point", async () => {
    const tokens = new MemoryTokenStore();
    await tokens.register("bob", "phone", "apns", "device-token-1");
    await tokens.register("bob", "tablet", "fcm", "fcm-token-dead");
    const sleeps: number[] = [];
    const d = new PushDispatcher({
      providers: new Map<ProviderName, PushProvider>([["apns", apnsProvider()], ["fcm", fcmProvider()]]),
      tokens,
      previewLength: 5,
      collapseWindowMs: 150,
      baseBackoffMs: 10,
      random: () => 0.5,
      sleep: async (ms) => { sleeps.push(ms); await noSleep(); },
    });
    const before = apns.requests.length;
    apns.modes.push("error", "throttle"); // two failures, then success
    fcm.modes.push("dead");
    await d.notify({ userId: "bob", conversationId: "d:conv", seq: 1, senderName: "alice", conversationTitle: "", text: "😀😀😀😀😀😀😀 hello", muted: false });
    await wait(100);
    expect(apns.requests.length - before).toBe(3);
    expect(sleeps.slice(0, 2)).toEqual([5, 10]); // full jitter of 10, then 20 ms caps
    expect(Array.from(apns.requests.at(-1)!.body.aps.alert.body as string)).toHaveLength(6); // 5 code points + …
    expect(await tokens.listForUser("bob")).toEqual([{ deviceId: "phone", provider: "apns", token: "device-token-1" }]);
    // Muted: nothing sent.
    const n = apns.requests.length;
    await d.notify({ userId: "bob", conversationId: "g:other", seq: 1, senderName: "alice", conversationTitle: "team", text: "x", muted: true });
    // Three quick messages in the window fold into one push with a count.
    for (let i = 2; i <= 4; i++) await d.notify({ userId: "bob", conversationId: "d:conv", seq: i, senderName: "alice", conversationTitle: "", text: `m${i}`, muted: false });
    await wait(400);
    expect(apns.requests.length - n).toBe(1);
    expect(apns.requests.at(-1)!.body.aps.alert.body).toBe("(3 new messages) m4");
    expect(d.stats()).toMatchObject({ deadTokens: 1, muted: 1, collapsed: 3, retried: 2 });
    await d.stop();
  });
});
