import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import { AuthSession, refreshTokens } from "../../internal/client/auth.js";
import { authenticate, ChatClient, ClientError, postJson, type SessionTokens } from "../../internal/client/client.js";
import { nodeSocket } from "../../internal/client/node-socket.js";
import { rawSession, startCluster, waitFor, type TestCluster } from "./harness.js";

// Access tokens live 5 s here (15 min by default), so the expiry case waits seconds, not minutes.
const ACCESS_TTL_S = 5;
const PASSWORD = "correct horse battery";

let c: TestCluster;
beforeAll(async () => { c = await startCluster({ ACCESS_TOKEN_TTL_S: String(ACCESS_TTL_S) }); });
afterAll(async () => { await c?.stop(); });

const name = () => `ses${randomUUID().slice(0, 10)}`.toLowerCase();
const signup = (username = name(), deviceId = "phone") => authenticate(c.httpUrl, "signup", username, PASSWORD, deviceId);
const codeOf = async (p: Promise<unknown>) => ((await p.then(() => undefined, (e: unknown) => e)) as ClientError | undefined)?.code;

/** A raw WebSocket that says Hello with `token` and records what comes back and how it closes. */
async function socket(token: string, deviceId = `d-${randomUUID().slice(0, 8)}`, url = c.wsUrl) {
  const { ws, frames, send, closed } = await rawSession(url, token, deviceId);
  return {
    ws,
    welcomed: frames[0]!.kind?.$case === "welcome",
    closed,
    errors: () => frames.flatMap((f) => (f.kind?.$case === "error" ? [f.kind.value.code] : [])),
    /** Whether the session still answers (a heartbeat with a ref gets its ack). */
    answers: async (ref: number) => {
      send({ ref, kind: { $case: "heartbeat", value: {} } });
      await waitFor(`heartbeat ack ${ref}`, () => frames.some((f) => f.ref === ref));
      return frames.find((f) => f.ref === ref)!.kind?.$case === "heartbeatAck";
    },
  };
}

/** Waits for a socket to be closed by the edge with SESSION_ENDED (4401). */
async function endedBy(s: Awaited<ReturnType<typeof socket>>, what: string) {
  await waitFor(`${what}: the socket closed`, () => s.closed() !== undefined, { seen: () => `errors ${s.errors().join(",")}` });
  expect(s.errors()).toContain(ErrorCode.ERROR_CODE_SESSION_ENDED);
  expect(s.closed()).toBe(4401);
}

describe("revocable sessions", () => {
  it("log-in returns an access and a refresh token; a refresh rotates the refresh token and keeps the session", async () => {
    const first = await signup();
    expect(first.refreshToken).not.toBe("");
    expect(first.refreshExpiresAtMs).toBeGreaterThan(Date.now() + 29 * 24 * 3600 * 1000);
    expect(first.expiresAtMs).toBeLessThanOrEqual(Date.now() + ACCESS_TTL_S * 1000 + 1_000);
    const second = await refreshTokens(c.httpUrl, first.refreshToken);
    expect(second).toMatchObject({ userId: first.userId, username: first.username, sessionId: first.sessionId });
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.expiresAtMs).toBeGreaterThanOrEqual(first.expiresAtMs);
    const s = await socket(second.token);
    expect(s.welcomed).toBe(true);
    // The new refresh token works in turn.
    expect((await refreshTokens(c.httpUrl, second.refreshToken)).sessionId).toBe(first.sessionId);
    s.ws.close();
  });

  it("a refresh token used a second time is refused and ends the session, its live socket included", async () => {
    const first = await signup();
    const live = await socket(first.token);
    expect(live.welcomed).toBe(true);
    const second = await refreshTokens(c.httpUrl, first.refreshToken);
    // The old token again (a stolen copy, or the owner after the thief): refused, and the session is over.
    expect(await codeOf(refreshTokens(c.httpUrl, first.refreshToken))).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    await endedBy(live, "reuse");
    // Whoever held the newest token is out too, for refresh and for Hello.
    expect(await codeOf(refreshTokens(c.httpUrl, second.refreshToken))).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    const again = await socket(second.token);
    expect(again.welcomed).toBe(false);
    expect(again.errors()).toEqual([ErrorCode.ERROR_CODE_SESSION_ENDED]);
    await waitFor("the refused socket closed", () => again.closed() === 4401);
    // A token that was never issued is a plain 401.
    expect(await codeOf(refreshTokens(c.httpUrl, `${randomUUID()}.${"A".repeat(43)}`))).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
    expect(await codeOf(refreshTokens(c.httpUrl, "garbage"))).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
  });

  it("logout closes the device's live socket and its access token is refused at Hello", async () => {
    const t = await signup();
    const other = await authenticate(c.httpUrl, "login", t.username, PASSWORD, "laptop");
    const live = await socket(t.token);
    const laptop = await socket(other.token);
    expect(live.welcomed && laptop.welcomed).toBe(true);
    expect(await codeOf(postJson(c.httpUrl, "/v1/logout", {}))).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
    await postJson(c.httpUrl, "/v1/logout", {}, t.token);
    await endedBy(live, "logout");
    const again = await socket(t.token);
    expect(again.errors()).toEqual([ErrorCode.ERROR_CODE_SESSION_ENDED]);
    expect(await codeOf(refreshTokens(c.httpUrl, t.refreshToken))).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    // The account's other device is another session: untouched.
    expect(await laptop.answers(7)).toBe(true);
    expect(laptop.closed()).toBeUndefined();
    laptop.ws.close();
  });

  it("a password change ends every other session of the account but not the caller's", async () => {
    const phone = await signup();
    const laptop = await authenticate(c.httpUrl, "login", phone.username, PASSWORD, "laptop");
    const tablet = await authenticate(c.httpUrl, "login", phone.username, PASSWORD, "tablet");
    const [onPhone, onLaptop] = [await socket(phone.token), await socket(laptop.token)];
    const auth = new AuthSession(c.httpUrl, phone);
    expect(await codeOf(auth.changePassword("not my password", "a new password!"))).toBe(ErrorCode.ERROR_CODE_PERMISSION_DENIED);
    expect(await codeOf(auth.changePassword(PASSWORD, "short"))).toBe(ErrorCode.ERROR_CODE_INVALID_ARGUMENT);
    expect(await auth.changePassword(PASSWORD, "a new password!")).toBe(2);
    await endedBy(onLaptop, "password change");
    expect(await codeOf(refreshTokens(c.httpUrl, tablet.refreshToken))).toBe(ErrorCode.ERROR_CODE_SESSION_ENDED);
    expect((await socket(laptop.token)).errors()).toEqual([ErrorCode.ERROR_CODE_SESSION_ENDED]);
    // The caller's own session goes on: its socket, its refresh token.
    expect(await onPhone.answers(9)).toBe(true);
    expect((await auth.refresh()).sessionId).toBe(phone.sessionId);
    expect(await codeOf(authenticate(c.httpUrl, "login", phone.username, PASSWORD))).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
    expect((await authenticate(c.httpUrl, "login", phone.username, "a new password!")).userId).toBe(phone.userId);
    onPhone.ws.close();
  });

  it("an expired access token is refused at Hello with TOKEN_EXPIRED; an open socket outlives it; the client refreshes and connects", async () => {
    const t = await signup();
    const open = await socket(t.token);
    expect(open.welcomed).toBe(true);
    await waitFor("the access token to expire", () => Date.now() > t.expiresAtMs + 1_000, { timeoutMs: (ACCESS_TTL_S + 5) * 1000, everyMs: 200 });
    const late = await socket(t.token);
    expect(late.errors()).toEqual([ErrorCode.ERROR_CODE_TOKEN_EXPIRED]);
    await waitFor("the refused socket closed", () => late.closed() === 4401);
    expect(await codeOf(postJson(c.httpUrl, "/v1/logout", {}, t.token))).toBe(ErrorCode.ERROR_CODE_TOKEN_EXPIRED);
    // The socket that said Hello in time lives as long as its session, not as its token.
    expect(await open.answers(11)).toBe(true);
    // A client that offers the stale token first: told TOKEN_EXPIRED, it refreshes and gets in.
    const saved: SessionTokens[] = [];
    const auth = new AuthSession(c.httpUrl, t, { onTokens: (n) => saved.push(n) });
    let offeredStale = false;
    const stale = { accessToken: async (force?: boolean) => (force || offeredStale ? auth.accessToken(true) : ((offeredStale = true), t.token)) };
    const client = new ChatClient({ url: c.wsUrl, auth: stale, deviceId: "stale", socket: nodeSocket });
    client.connect().catch(() => {});
    await waitFor("the client to reconnect with a refreshed token", () => client.welcome !== undefined);
    expect(saved.length).toBeGreaterThan(0);
    expect(saved.at(-1)!.sessionId).toBe(t.sessionId);
    await client.close();
    // Logging out through the client ends the session (and the old open socket with it).
    await auth.logout();
    await endedBy(open, "logout through the client");
  });

  it("the session endpoints take JSON only", async () => {
    for (const path of ["/v1/refresh", "/v1/logout", "/v1/password"]) {
      const res = await fetch(`${c.httpUrl}${path}`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
      expect(res.status, path).toBe(415);
      expect(((await res.json()) as { code: string }).code).toBe("ERROR_CODE_INVALID_ARGUMENT");
    }
  });
});

describe("revocable sessions across edges", () => {
  let two: TestCluster;
  // Short bounds so the test sees them pass: sockets swept every 0.5 s, a live answer cached 1 s.
  beforeAll(async () => { two = await startCluster({ SESSION_CHECK_INTERVAL_MS: "500", SESSION_CACHE_MS: "1000" }, { edges: 2, chats: 1 }); });
  afterAll(async () => { await two?.stop(); });

  it("a logout through one edge closes the session's socket on another within the sweep interval, and Hello there is refused within the cache bound", async () => {
    const t = await authenticate(two.httpUrl, "signup", name(), PASSWORD, "phone");
    const edge2 = two.wsUrls[1]!;
    const onEdge2 = await socket(t.token, "phone", edge2);
    expect(onEdge2.welcomed).toBe(true);
    // Another session of the account, found live at edge 2 and cached there, with no socket left open.
    const laptop = await authenticate(two.httpUrl, "login", t.username, PASSWORD, "laptop");
    const brief = await socket(laptop.token, "laptop", edge2);
    expect(brief.welcomed).toBe(true);
    brief.ws.close();
    await waitFor("the brief socket closed", () => brief.closed() !== undefined);
    // Both sessions end through edge 1 (its HTTP API); edge 2 hears nothing directly.
    await postJson(two.httpUrl, "/v1/logout", {}, t.token);
    await postJson(two.httpUrl, "/v1/logout", {}, laptop.token);
    await endedBy(onEdge2, "the sweep on edge 2");
    await waitFor("edge 2 to refuse the laptop's token at Hello", async () => {
      const s = await socket(laptop.token, "laptop", edge2);
      s.ws.close();
      return s.errors().includes(ErrorCode.ERROR_CODE_SESSION_ENDED);
    }, { everyMs: 200 });
  });
});
