/**
 * Real local servers standing in for FCM, APNs and a webhook relay, plus a fake
 * clock. Each server checks what the real service checks (signatures, claims,
 * paths, headers) and records every request; tests script its next answers.
 */
import { spawnSync } from "node:child_process";
import { createHmac, generateKeyPairSync, timingSafeEqual, type KeyObject } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type { Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { decodeProtectedHeader, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from "jose";
import { PushDispatcher, type DispatcherOptions } from "../../internal/notifier/dispatcher.js";
import type { ServiceAccount } from "../../internal/notifier/provider-fcm.js";
import type { ProviderName, PushMessage, PushProvider, PushResult } from "../../internal/notifier/provider.js";
import { MemoryTokenStore } from "../../internal/notifier/token-store-memory.js";
import type { TokenStore } from "../../internal/notifier/token-store.js";
import { waitFor as waitForOutcome } from "./wait.js";

/** What a fake server answers to the next request; "hang" never answers. */
export type Answer = { status: number; body?: unknown; headers?: Record<string, string> } | "hang";

// ------------------------------------------------------------------ utilities

/** Polls every 5 ms (these tests are short); fails with `what` after 3 s. */
export const waitFor = (what: string, pred: () => boolean, timeoutMs = 3_000) => waitForOutcome(what, pred, { timeoutMs, everyMs: 5 });

/** Lets pending callbacks and promise chains run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** A self-signed certificate for localhost / 127.0.0.1, made with the openssl CLI. */
export function selfSignedCert(): { key: string; cert: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "meshchat-push-cert-"));
  try {
    const r = spawnSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ]);
    if (r.status !== 0) throw new Error(`openssl failed: ${String(r.stderr)}`);
    return { key: fs.readFileSync(path.join(dir, "key.pem"), "utf8"), cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8") };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Virtual time for the dispatcher: `sleep` resolves only when `advance` moves the
 * clock past it, so backoffs and windows of seconds take no wall-clock time.
 */
export class FakeClock {
  private t: number;
  private timers: Array<{ at: number; resolve: () => void }> = [];
  /** Every duration asked of `sleep`, in order. */
  readonly sleeps: number[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
  }

  readonly now = (): number => this.t;

  readonly sleep = (ms: number): Promise<void> => {
    this.sleeps.push(ms);
    return new Promise((resolve) => this.timers.push({ at: this.t + ms, resolve }));
  };

  /**
   * Moves time forward, waking each sleeper that was already asleep and is due
   * by then, at its own time, in order. Sleeps that start during the advance
   * wait for the next one, so a test always sees one step at a time (one retry
   * per advance, however fast the real network answers).
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at);
    this.timers = this.timers.filter((x) => !due.includes(x));
    for (const next of due) {
      this.t = Math.max(this.t, next.at);
      next.resolve();
      await settle();
    }
    this.t = Math.max(this.t, end);
    await settle();
  }
}

function readBody(req: http.IncomingMessage | http2.Http2ServerRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function answer(res: http.ServerResponse | http2.Http2ServerResponse, a: Exclude<Answer, "hang">): void {
  const body = a.body === undefined ? "" : typeof a.body === "string" ? a.body : JSON.stringify(a.body);
  (res as http.ServerResponse).writeHead(a.status, { "content-type": "application/json", ...a.headers });
  res.end(body);
}

/** An HTTP/1.1 server that knows its open sockets, so tests can check providers close theirs. */
class TrackedServer {
  readonly sockets = new Set<Socket>();
  private readonly hanging = new Set<http.ServerResponse>();

  constructor(readonly server: http.Server | https.Server) {
    server.on("connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
    server.on("secureConnection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  hang(res: http.ServerResponse): void {
    this.hanging.add(res);
    res.on("close", () => this.hanging.delete(res));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

// ------------------------------------------------------------------ FCM

export function fcmError(status: number, rpcStatus: string, errorCode: string | undefined, message: string, extraDetails: unknown[] = []): Exclude<Answer, "hang"> {
  const details: unknown[] = errorCode ? [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode }] : [];
  return { status, body: { error: { code: status, message, status: rpcStatus, details: [...details, ...extraDetails] } } };
}

/** Canned FCM v1 answers, as documented in the FCM ErrorCode reference. */
export const FCM = {
  ok: { status: 200, body: { name: "projects/meshchat-test/messages/0:1500415314455276%31bd1c9631bd1c96" } } as Answer,
  throttled: (retryAfter = "7") => ({ ...fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded"), headers: { "retry-after": retryAfter } }) as Answer,
  internal: fcmError(500, "INTERNAL", "INTERNAL", "Internal error encountered."),
  unavailable: (retryAfter?: string) => ({ ...fcmError(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."), headers: retryAfter ? { "retry-after": retryAfter } : {} }) as Answer,
  unregistered: fcmError(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
  /** A malformed token: INVALID_ARGUMENT naming the registration token. */
  invalidToken: fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
  /** The same, reported as a BadRequest field violation on message.token. */
  invalidTokenField: fcmError(400, "INVALID_ARGUMENT", undefined, "Request contains an invalid argument.", [
    { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field: "message.token", description: "Invalid registration token" }] },
  ]),
  /** INVALID_ARGUMENT about the message, not the token. */
  invalidPayload: fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received. Unknown name \"colour\" at 'message.android.notification'", [
    { "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: [{ field: "message.android.notification", description: "Invalid JSON payload received." }] },
  ]),
  senderMismatch: fcmError(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
};

/**
 * Google's OAuth token endpoint (`/token`) and the FCM v1 API on one HTTPS server.
 * The token endpoint verifies the JWT-bearer assertion (RS256 signature with the
 * service account's public key, iss, aud, scope, iat, exp) and the form body; the
 * send endpoint checks the path and the bearer token it issued.
 */
export class FakeFcmServer {
  readonly problems: string[] = [];
  readonly tokenRequests: Array<{ header: ProtectedHeaderParameters; claims: JWTPayload; form: Record<string, string>; contentType: string }> = [];
  readonly sends: Array<{ method: string; path: string; auth: string; contentType: string; body: any }> = [];
  /** Scripted answers of the token endpoint (default: a new access token). */
  readonly tokenAnswers: Answer[] = [];
  /** Scripted answers of messages:send (default: 200). */
  readonly sendAnswers: Answer[] = [];
  readonly issued: string[] = [];
  readonly revoked = new Set<string>();
  expiresIn = 3600;
  /** The time the server believes it is (claims are checked against it). */
  now: () => number = Date.now;
  serviceAccount!: ServiceAccount;
  url = "";
  private publicKey!: KeyObject;
  private tracked!: TrackedServer;

  static async start(tls: { key: string; cert: string }): Promise<FakeFcmServer> {
    const f = new FakeFcmServer();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    f.publicKey = rsa.publicKey;
    f.tracked = new TrackedServer(https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => void f.handle(req, res)));
    const port = await f.tracked.listen();
    f.url = `https://localhost:${port}`;
    f.serviceAccount = {
      project_id: "meshchat-test",
      client_email: "push@meshchat-test.iam.gserviceaccount.com",
      private_key: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      token_uri: `${f.url}/token`,
    };
    return f;
  }

  get openConnections(): number {
    return this.tracked.sockets.size;
  }

  close(): Promise<void> {
    return this.tracked.close();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (req.url === "/token") return this.token(req, body, res);
    return this.send(req, body, res);
  }

  private async token(req: http.IncomingMessage, body: string, res: http.ServerResponse): Promise<void> {
    const contentType = String(req.headers["content-type"]);
    if (req.method !== "POST") this.problems.push(`token: method ${req.method}`);
    if (contentType !== "application/x-www-form-urlencoded") this.problems.push(`token: content-type ${contentType}`);
    const form = Object.fromEntries(new URLSearchParams(body));
    if (Object.keys(form).sort().join() !== "assertion,grant_type") this.problems.push(`token: form fields ${Object.keys(form)}`);
    if (form.grant_type !== "urn:ietf:params:oauth:grant-type:jwt-bearer") this.problems.push(`token: grant_type ${form.grant_type}`);
    let header: ProtectedHeaderParameters = {};
    let claims: JWTPayload = {};
    try {
      header = decodeProtectedHeader(form.assertion ?? "");
      ({ payload: claims } = await jwtVerify(form.assertion ?? "", this.publicKey, {
        algorithms: ["RS256"],
        issuer: this.serviceAccount.client_email,
        audience: this.serviceAccount.token_uri,
        currentDate: new Date(this.now()),
      }));
      if (claims.scope !== "https://www.googleapis.com/auth/firebase.messaging") this.problems.push(`token: scope ${claims.scope}`);
      if (typeof claims.iat !== "number" || Math.abs(claims.iat - this.now() / 1000) > 60) this.problems.push(`token: iat ${claims.iat}`);
      if (claims.exp !== (claims.iat ?? 0) + 3600) this.problems.push(`token: exp ${claims.exp} is not iat + 3600`);
    } catch (err) {
      this.problems.push(`token: assertion rejected: ${(err as Error).message}`);
      answer(res, { status: 400, body: { error: "invalid_grant", error_description: "Invalid JWT Signature." } });
      return;
    }
    this.tokenRequests.push({ header, claims, form, contentType });
    const a = this.tokenAnswers.shift();
    if (a === "hang") return this.tracked.hang(res);
    if (a) return answer(res, a);
    const accessToken = `ya29.test-${this.issued.length + 1}`;
    this.issued.push(accessToken);
    answer(res, { status: 200, body: { access_token: accessToken, expires_in: this.expiresIn, token_type: "Bearer" } });
  }

  private send(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    const path = req.url ?? "";
    if (req.method !== "POST") this.problems.push(`send: method ${req.method}`);
    if (path !== `/v1/projects/${this.serviceAccount.project_id}/messages:send`) {
      this.problems.push(`send: path ${path}`);
      answer(res, fcmError(400, "INVALID_ARGUMENT", undefined, "wrong path"));
      return;
    }
    const auth = String(req.headers.authorization ?? "");
    const bearer = auth.replace(/^Bearer /, "");
    let parsed: unknown = undefined;
    try {
      parsed = JSON.parse(body);
    } catch {
      this.problems.push("send: body is not JSON");
    }
    this.sends.push({ method: req.method ?? "", path, auth, contentType: String(req.headers["content-type"]), body: parsed });
    if (!auth.startsWith("Bearer ") || !this.issued.includes(bearer) || this.revoked.has(bearer)) {
      answer(res, fcmError(401, "UNAUTHENTICATED", undefined, "Request had invalid authentication credentials."));
      return;
    }
    const a = this.sendAnswers.shift() ?? FCM.ok;
    if (a === "hang") return this.tracked.hang(res);
    answer(res, a);
  }
}

// ------------------------------------------------------------------ APNs

/** Canned APNs answers (status + reason), as in Apple's "Handling notification responses from APNs". */
export const APNS = {
  ok: { status: 200 } as Answer,
  unregistered: { status: 410, body: { reason: "Unregistered", timestamp: 1_700_000_000_000 } } as Answer,
  badDeviceToken: { status: 400, body: { reason: "BadDeviceToken" } } as Answer,
  notForTopic: { status: 400, body: { reason: "DeviceTokenNotForTopic" } } as Answer,
  badCollapseId: { status: 400, body: { reason: "BadCollapseId" } } as Answer,
  payloadTooLarge: { status: 413, body: { reason: "PayloadTooLarge" } } as Answer,
  tooManyRequests: (retryAfter?: string) => ({ status: 429, body: { reason: "TooManyRequests" }, headers: retryAfter ? { "retry-after": retryAfter } : {} }) as Answer,
  internal: { status: 500, body: { reason: "InternalServerError" } } as Answer,
  unavailable: { status: 503, body: { reason: "ServiceUnavailable" } } as Answer,
  expiredProviderToken: { status: 403, body: { reason: "ExpiredProviderToken" } } as Answer,
  invalidProviderToken: { status: 403, body: { reason: "InvalidProviderToken" } } as Answer,
};

/**
 * APNs over HTTP/2 + TLS (self-signed certificate). Verifies the ES256 provider
 * token (header alg/kid, iss, iat, signature with the key's public half), the
 * path and the apns-* headers, and records requests and sessions.
 */
export class FakeApnsServer {
  readonly teamId = "TEAM123456";
  readonly keyId = "KEY7654321";
  readonly bundleId = "chat.meshchat.app";
  readonly problems: string[] = [];
  readonly requests: Array<{ path: string; headers: http2.IncomingHttpHeaders; body: any; jwt: string; kid?: string; claims: JWTPayload; session: number }> = [];
  readonly answers: Answer[] = [];
  /** Provider tokens issued before this (epoch seconds) get 403 ExpiredProviderToken. */
  expireTokensIssuedBefore = 0;
  now: () => number = Date.now;
  privateKey = "";
  url = "";
  ca = "";
  sessionsOpened = 0;
  readonly sessions = new Set<http2.ServerHttp2Session>();
  private publicKey!: KeyObject;
  private server!: http2.Http2SecureServer;
  private readonly hanging = new Set<http2.Http2ServerResponse>();

  static async start(tls: { key: string; cert: string }): Promise<FakeApnsServer> {
    const a = new FakeApnsServer();
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    a.publicKey = ec.publicKey;
    a.privateKey = ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    a.ca = tls.cert;
    a.server = http2.createSecureServer({ key: tls.key, cert: tls.cert });
    a.server.on("session", (s) => {
      const id = ++a.sessionsOpened;
      (s as unknown as { meshchatId: number }).meshchatId = id;
      a.sessions.add(s);
      s.on("close", () => a.sessions.delete(s));
    });
    a.server.on("request", (req, res) => void a.handle(req, res));
    await new Promise<void>((r) => a.server.listen(0, "127.0.0.1", r));
    a.url = `https://localhost:${(a.server.address() as { port: number }).port}`;
    return a;
  }

  /** Drops every live HTTP/2 connection, as a network failure or a server restart would. */
  dropSessions(): void {
    for (const s of this.sessions) s.destroy();
  }

  async close(): Promise<void> {
    for (const r of this.hanging) r.stream.close(http2.constants.NGHTTP2_CANCEL);
    for (const s of this.sessions) s.destroy();
    await new Promise((r) => this.server.close(r));
  }

  private async handle(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const h = req.headers;
    const path = String(h[":path"]);
    const check = (ok: boolean, what: string) => {
      if (!ok) this.problems.push(what);
    };
    check(h[":method"] === "POST", `method ${h[":method"]}`);
    check(/^\/3\/device\/[^/]+$/.test(path), `path ${path}`);
    check(h["apns-topic"] === this.bundleId, `apns-topic ${h["apns-topic"]}`);
    const background = h["apns-push-type"] === "background";
    check(background || h["apns-push-type"] === "alert", `apns-push-type ${h["apns-push-type"]}`);
    // Apple: a background push must have priority 5; an alert may have 10.
    check(h["apns-priority"] === (background ? "5" : "10"), `apns-priority ${h["apns-priority"]} for ${h["apns-push-type"]}`);
    const collapseId = String(h["apns-collapse-id"] ?? "");
    check(background ? h["apns-collapse-id"] === undefined : collapseId !== "" && Buffer.byteLength(collapseId) <= 64, `apns-collapse-id ${collapseId}`);
    check(/^\d+$/.test(String(h["apns-expiration"])) && Number(h["apns-expiration"]) > this.now() / 1000, `apns-expiration ${h["apns-expiration"]}`);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      this.problems.push("body is not JSON");
    }
    if (background) {
      // A background push wakes the app and shows nothing: content-available 1, no alert, sound or badge.
      const aps = (body as { aps?: Record<string, unknown> } | undefined)?.aps ?? {};
      check(aps["content-available"] === 1 && !("alert" in aps) && !("sound" in aps) && !("badge" in aps), `background aps ${JSON.stringify(aps)}`);
    }
    const auth = String(h.authorization ?? "");
    check(auth.startsWith("bearer "), `authorization ${auth.slice(0, 20)}`);
    const jwt = auth.replace(/^bearer /, "");
    let kid: string | undefined;
    let claims: JWTPayload = {};
    try {
      const header = decodeProtectedHeader(jwt);
      kid = header.kid;
      check(header.alg === "ES256", `alg ${header.alg}`);
      check(header.kid === this.keyId, `kid ${header.kid}`);
      ({ payload: claims } = await jwtVerify(jwt, this.publicKey, { algorithms: ["ES256"], issuer: this.teamId, currentDate: new Date(this.now()) }));
      check(typeof claims.iat === "number" && Math.abs(claims.iat - this.now() / 1000) < 3600, `iat ${claims.iat}`);
    } catch (err) {
      this.problems.push(`provider token rejected: ${(err as Error).message}`);
      answer(res, APNS.invalidProviderToken as Exclude<Answer, "hang">);
      return;
    }
    const session = (req.stream.session as unknown as { meshchatId: number }).meshchatId;
    this.requests.push({ path, headers: h, body, jwt, kid, claims, session });
    if ((claims.iat ?? 0) < this.expireTokensIssuedBefore) {
      answer(res, APNS.expiredProviderToken as Exclude<Answer, "hang">);
      return;
    }
    const a = this.answers.shift() ?? APNS.ok;
    if (a === "hang") {
      this.hanging.add(res);
      res.on("close", () => this.hanging.delete(res));
      return;
    }
    res.setHeader("apns-id", "6E6B5E5B-1111-2222-3333-444455556666");
    answer(res, a);
  }
}

// ------------------------------------------------------------------ webhook

/** An installation's push relay: checks X-Meshchat-Signature against the raw body. */
export class FakeWebhookServer {
  readonly secret = "s3cret-webhook-key";
  readonly requests: Array<{ method: string; contentType: string; signatureOk: boolean; body: any }> = [];
  readonly answers: Answer[] = [];
  url = "";
  private tracked!: TrackedServer;

  static async start(): Promise<FakeWebhookServer> {
    const w = new FakeWebhookServer();
    w.tracked = new TrackedServer(http.createServer((req, res) => void w.handle(req, res)));
    const port = await w.tracked.listen();
    w.url = `http://127.0.0.1:${port}/push`;
    return w;
  }

  get openConnections(): number {
    return this.tracked.sockets.size;
  }

  close(): Promise<void> {
    return this.tracked.close();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const expected = Buffer.from(`sha256=${createHmac("sha256", this.secret).update(raw).digest("hex")}`);
    const got = Buffer.from(String(req.headers["x-meshchat-signature"] ?? ""));
    const signatureOk = got.length === expected.length && timingSafeEqual(got, expected);
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    this.requests.push({ method: req.method ?? "", contentType: String(req.headers["content-type"]), signatureOk, body });
    if (!signatureOk) {
      answer(res, { status: 401, body: { error: "bad signature" } });
      return;
    }
    const a = this.answers.shift() ?? { status: 200 };
    if (a === "hang") return this.tracked.hang(res);
    answer(res, a);
  }
}

// ------------------------------------------------------------------ scripted dispatcher

type Step = PushResult | "hang" | "throw";

/** An in-process provider that records every message and answers from its script (default ok). */
export class ScriptedProvider implements PushProvider {
  readonly sent: PushMessage[] = [];
  readonly script: Step[] = [];
  constructor(readonly name: ProviderName) {}
  async send(msg: PushMessage): Promise<PushResult> {
    this.sent.push(msg);
    const step = this.script.shift() ?? { kind: "ok" };
    if (step === "hang") return new Promise(() => {});
    if (step === "throw") throw new Error("boom");
    return step;
  }
  async close(): Promise<void> {}
}

const scripted: PushDispatcher[] = [];

/** A dispatcher on virtual time (jitter fixed at half) whose warnings are recorded. */
export function virtualDispatcher(providers: Map<ProviderName, PushProvider>, tokens: TokenStore, opts: Partial<DispatcherOptions> = {}) {
  const clock = new FakeClock();
  const warnings: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const d = new PushDispatcher({ providers, tokens, now: clock.now, sleep: clock.sleep, random: () => 0.5, onError: (msg, fields) => warnings.push({ msg, fields }), ...opts });
  return { d, clock, warnings };
}

/** A virtual-time dispatcher with scripted webhook and FCM providers; `stopScriptedDispatchers` after each test. */
export function scriptedDispatcher(opts: Partial<DispatcherOptions> = {}, tokens: TokenStore = new MemoryTokenStore()) {
  const webhook = new ScriptedProvider("webhook");
  const fcm = new ScriptedProvider("fcm");
  const r = virtualDispatcher(new Map<ProviderName, PushProvider>([["webhook", webhook], ["fcm", fcm]]), tokens, opts);
  scripted.push(r.d);
  return { ...r, webhook, fcm, tokens };
}

export async function stopScriptedDispatchers(): Promise<void> {
  for (const d of scripted.splice(0)) await d.stop(100);
}
