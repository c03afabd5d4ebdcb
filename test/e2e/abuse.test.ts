import http from "node:http";
import net from "node:net";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { device, newUser, startCluster, warnOnFailure, type TestCluster } from "./harness.js";

/**
 * Abuse of the edge's HTTP side (docs/security.md), against the real processes. Clients
 * on other loopback addresses (127.0.0.2, ...) stand for other machines: the
 * per-address limits tell them apart from the victim on 127.0.0.1.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");
const PASSWORD = "correct horse battery";
const BACKOFF_FREE = 3;
const MAX_CONNECTIONS = 40;

let c: TestCluster;
beforeAll(async () => {
  c = await startCluster({
    WEB_ROOT: path.join(ROOT, "web", "dist"),
    LOGIN_BACKOFF_FREE: String(BACKOFF_FREE),
    LOGIN_BACKOFF_BASE_MS: "60000",
    SIGNUP_ADDRESS_PER_MINUTE: "1",
    SIGNUP_ADDRESS_BURST: "10",
    MAX_CONNECTIONS_PER_ADDRESS: String(MAX_CONNECTIONS),
    HTTP_HEADERS_TIMEOUT_MS: "1000",
    HTTP_KEEP_ALIVE_TIMEOUT_MS: "60000",
  });
});
afterAll(async () => { await c?.stop(); });
beforeEach(() => warnOnFailure(() => c));

interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Record<string, unknown> }

/** One request on its own connection, from the given local address. */
function request(method: string, pathname: string, opts: { body?: string; contentType?: string; from?: string; cookie?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${c.httpUrl}${pathname}`, {
      method,
      agent: false,
      localAddress: opts.from ?? "127.0.0.1",
      headers: { ...(opts.contentType ? { "content-type": opts.contentType } : {}), ...(opts.cookie ? { cookie: opts.cookie } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: Record<string, unknown> = {};
        try { body = JSON.parse(text) as Record<string, unknown>; } catch { body = { text }; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const post = (pathname: string, body: unknown, opts: { from?: string; cookie?: string } = {}) =>
  request("POST", pathname, { ...opts, body: JSON.stringify(body), contentType: "application/json" });

/** The name=value part of the known-device cookie a signup or login set. */
function deviceCookie(r: Reply): string {
  const set = r.headers["set-cookie"]?.find((v) => v.startsWith("meshchat_device_"));
  expect(set, "known-device cookie").toBeDefined();
  return set!.split(";")[0]!;
}

function name(prefix: string): string {
  return `${prefix}${randomUUID().slice(0, 8)}`;
}

describe("password guessing", () => {
  it("refuses concurrent wrong-password logins with RATE_LIMITED before hashing, and the owner still logs in from a known device", async () => {
    const alice = name("alice");
    const signup = await post("/v1/signup", { username: alice, password: PASSWORD });
    expect(signup.status).toBe(201);
    const aliceCookie = deviceCookie(signup);
    const bob = await newUser(c, "bob");

    // 16 concurrent guessers from another machine, 80 attempts in all.
    const statuses: number[] = [];
    const limited: Reply[] = [];
    let next = 0;
    const heldMs: number[] = [];
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next++ < 80) {
        const t0 = Date.now();
        const r = await post("/v1/login", { username: alice, password: `guess-${next}` }, { from: "127.0.0.2" });
        statuses.push(r.status);
        if (r.status === 429) { limited.push(r); heldMs.push(Date.now() - t0); }
      }
    }));
    // Each refusal was held (RATE_LIMITED_REPLY_DELAY_MS, 1 s by default): a guesser asks at most
    // once a second per connection. A lower bound only: a slow machine holds longer, never shorter.
    expect(Math.min(...heldMs)).toBeGreaterThanOrEqual(900);
    // The free attempts and the one that closed the account were checked (401); the rest were
    // refused before the accounts service computed a hash.
    expect(statuses.filter((s) => s === 401)).toHaveLength(BACKOFF_FREE + 1);
    expect(statuses.filter((s) => s === 429)).toHaveLength(80 - BACKOFF_FREE - 1);
    for (const r of limited) {
      expect(r.body).toMatchObject({ code: "ERROR_CODE_RATE_LIMITED", retryable: true });
      expect(r.body.retry_after_ms).toBeGreaterThan(0);
      expect(Number(r.headers["retry-after"])).toBe(Math.ceil(Number(r.body.retry_after_ms) / 1000));
    }

    // While alice's account is backed off: the right password from her known device works...
    const known = await post("/v1/login", { username: alice, password: PASSWORD }, { cookie: aliceCookie });
    expect(known.status).toBe(200);
    expect(known.body.username).toBe(alice);
    // ...other accounts are untouched...
    expect((await post("/v1/login", { username: bob.username, password: PASSWORD })).status).toBe(200);
    // ...and a cookie for another account, or a forged one, does not open the back-off.
    const bobCookie = deviceCookie(await post("/v1/login", { username: bob.username, password: PASSWORD }));
    const forged = aliceCookie.replace(/=\d+\./, "=1.");
    for (const cookie of [bobCookie, forged]) {
      const r = await post("/v1/login", { username: alice, password: `guess-x` }, { from: "127.0.0.2", cookie });
      expect(r.status === 429 || r.status === 401).toBe(true);
    }
  });

  it("limits sign-ups per source address and creates nothing past the limit", async () => {
    const names = Array.from({ length: 30 }, () => name("flood"));
    const replies = await Promise.all(names.map((username) => post("/v1/signup", { username, password: PASSWORD }, { from: "127.0.0.3" })));
    expect(replies.filter((r) => r.status === 201)).toHaveLength(10);
    const refused = replies.flatMap((r, i) => (r.status === 429 ? [{ r, username: names[i]! }] : []));
    expect(refused).toHaveLength(20);
    expect(refused[0]!.r.body).toMatchObject({ code: "ERROR_CODE_RATE_LIMITED" });
    expect(refused[0]!.r.body.retry_after_ms).toBeGreaterThan(0);
    expect((await post("/v1/login", { username: refused[0]!.username, password: PASSWORD }, { from: "127.0.0.4" })).status).toBe(401);
    // Another address signs up as before.
    expect((await post("/v1/signup", { username: name("other"), password: PASSWORD }, { from: "127.0.0.5" })).status).toBe(201);
  });
});

describe("cross-site requests", () => {
  it("refuses a POST that is not application/json with 415, and creates nothing", async () => {
    const username = name("csrf");
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]) {
      const r = await request("POST", "/v1/signup", { body: JSON.stringify({ username, password: PASSWORD }), contentType, from: "127.0.0.6" });
      expect(r.status).toBe(415);
      expect(r.body).toMatchObject({ code: "ERROR_CODE_INVALID_ARGUMENT", retryable: false });
    }
    expect((await request("POST", "/v1/login", { body: JSON.stringify({ username, password: PASSWORD }), from: "127.0.0.6" })).status).toBe(415);
    expect((await post("/v1/login", { username, password: PASSWORD }, { from: "127.0.0.6" })).status).toBe(401);
    expect((await request("POST", "/v1/signup", { body: JSON.stringify({ username, password: PASSWORD }), contentType: "application/json; charset=utf-8", from: "127.0.0.6" })).status).toBe(201);
  });
});

describe("HTTP hardening", () => {
  it("sends security headers on the page and on the API", async () => {
    const page = await request("GET", "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    // Plain HTTP here: HSTS only with PUBLIC_HTTPS.
    expect(page.headers["strict-transport-security"]).toBeUndefined();
    const api = await post("/v1/login", { username: "nobody", password: "x" }, { from: "127.0.0.7" });
    expect(api.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(api.headers["x-content-type-options"]).toBe("nosniff");
    const missing = await request("GET", "/no-such-file");
    expect(missing.status).toBe(404);
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("caps connections per source address, HTTP and WebSocket alike, and other addresses still connect", async () => {
    const held: net.Socket[] = [];
    try {
      // Each held connection has finished a keep-alive request, so the edge has surely counted it.
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const s = net.connect({ port: c.ports.edgeHttp, host: "127.0.0.1", localAddress: "127.0.0.8" });
        held.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once("data", () => resolve());
          s.once("error", reject);
          s.write("GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n");
        });
      }
      const refused = await request("GET", "/healthz", { from: "127.0.0.8" });
      expect(refused.status).toBe(429);
      expect(refused.body).toMatchObject({ code: "ERROR_CODE_RATE_LIMITED", retryable: true });
      const ws = await new Promise<string>((resolve) => {
        const s = net.connect({ port: c.ports.edgeHttp, host: "127.0.0.1", localAddress: "127.0.0.8" });
        let got = "";
        s.on("data", (d) => { got += d.toString(); });
        s.on("close", () => resolve(got));
        s.on("error", () => resolve(got));
        s.write("GET /v1/ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: meshchat.v1.json\r\n\r\n");
      });
      expect(ws).toMatch(/^HTTP\/1.1 429/);
      // A request sent at once on a refused connection is not served, even if it arrived whole.
      const sneaky = name("sneaky");
      const body = JSON.stringify({ username: sneaky, password: PASSWORD });
      const answer = await new Promise<string>((resolve) => {
        const s = net.connect({ port: c.ports.edgeHttp, host: "127.0.0.1", localAddress: "127.0.0.8" }, () => {
          s.write(`POST /v1/signup HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        });
        let got = "";
        s.on("data", (d) => { got += d.toString(); });
        s.on("close", () => resolve(got));
        s.on("error", () => resolve(got));
      });
      expect(answer).toMatch(/^HTTP\/1.1 429/);
      expect((await post("/v1/login", { username: sneaky, password: PASSWORD }, { from: "127.0.0.9" })).status).toBe(401);
      // Another address is not affected: a real device connects.
      const user = await newUser(c, "capped");
      const d = await device(c, user);
      d.close();
      expect((await request("GET", "/healthz", { from: "127.0.0.9" })).status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
    }
    // Closed connections are given back.
    const deadline = Date.now() + 10_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) status = (await request("GET", "/healthz", { from: "127.0.0.8" })).status;
    expect(status).toBe(200);
  });

  it("closes a connection whose request headers do not arrive in time", async () => {
    const s = net.connect({ port: c.ports.edgeHttp, host: "127.0.0.1", localAddress: "127.0.0.10" });
    let got = "";
    s.on("data", (d) => { got += d.toString(); });
    s.write("GET /healthz HTTP/1.1\r\nHost: edge\r\n");
    // Node's default would wait 60 s; HTTP_HEADERS_TIMEOUT_MS=1000 here.
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the slow request was not cut off")), 15_000);
      s.on("close", () => { clearTimeout(t); resolve(); });
    });
    expect(got).toMatch(/^HTTP\/1.1 408/);
  });

  it("never shows internal addresses or grpc-js texts to HTTP clients", async () => {
    await c.cluster.stop("chat", "SIGKILL");
    const r = await post("/v1/login", { username: "anyone", password: PASSWORD }, { from: "127.0.0.11" });
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ code: "ERROR_CODE_UNAVAILABLE", retryable: true });
    expect(JSON.stringify(r.body)).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|remote_addr|No connection established|:\d{4,5}/);
  });
});
