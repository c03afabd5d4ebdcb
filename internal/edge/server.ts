import http from "node:http";
import type stream from "node:stream";
import { WebSocket, WebSocketServer } from "ws";
import { EdgeDeliveryServiceService } from "../../gen/chat/internal/v1/edge.js";
import type { AccountServiceClient } from "../../gen/chat/internal/v1/chat.js";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import type { HttpLimitsConfig } from "../config/http-limits.js";
import { TokenBucket } from "./rate-limit.js";
import { FrameIntake, type ReadBudgets } from "./frame-intake.js";
import { MemorySettle, type MemorySettleOptions } from "./memory-settle.js";
import { ChatError } from "../errors/chat-error.js";
import { ChatMetrics, secondsSince, unsampled } from "../telemetry/telemetry.js";
import { startHttpServerSpan, withHttpServerSpan } from "../telemetry/http.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import type { Logger } from "../log/logger.js";
import type { MeshGateway } from "./mesh-gateway.js";
import type { DeviceCookies } from "./device-cookie.js";
import { createHttpServer, sourceAddress } from "./http-guard.js";
import { LoginGuard } from "./login-guard.js";
import { SendGuard } from "./send-guard.js";
import type { RateLimiter } from "./rate-limiter.js";
import { JSON_SUBPROTOCOL, modeOf, PROTO_SUBPROTOCOL } from "./frames.js";
import { CLOSE, Session, type SessionConfig, type SessionHooks } from "./session.js";
import { HttpApi, type HttpApiConfig, TRACED_ROUTES } from "./http-api.js";
import { SessionApi } from "./session-api.js";

export interface EdgeConfig extends SessionConfig, HttpLimitsConfig, HttpApiConfig {
  /** EDGE_HTTP_PORT: WebSocket and HTTP API. Default 8080. */
  httpPort: number;
  /**
   * MAX_FRAME_BYTES: a larger WebSocket frame is answered with an error and the socket
   * closed (1009). Default legalFrameBytes(MAX_TEXT_LENGTH): every legal message fits,
   * in either subprotocol.
   */
  maxFrameBytes: number;
  /**
   * READ_BYTES_PER_S: bytes a second the edge reads from one user's WebSockets (a socket
   * before its Hello has a budget of its own), with a burst of one largest frame.
   * Past it the edge stops reading the socket that overspent until the debt is paid: TCP
   * pushes back on the client, and a user firing large frames, from one session or many,
   * costs the edge no more than this (refusing frames already read would still cost decoding them).
   * Default 524288 (512 KiB/s).
   */
  readBytesPerS: number;
  /**
   * SESSION_CHECK_INTERVAL_MS: how often the edge asks the store whether the sessions of its
   * open WebSockets are still live, closing those that ended elsewhere (0 = never). Default 30000.
   */
  sessionCheckIntervalMs: number;
  /**
   * MEMORY_SETTLE_AFTER_CONNECTS: connects after which, once they stop arriving, the edge makes
   * one compacting collection to give back the heap the burst grew (memory-settle.ts; 0 = never).
   * Default 1000. MEMORY_SETTLE_CHECK_MS (10000): how often it looks; MEMORY_SETTLE_MIN_INTERVAL_MS
   * (60000): the least time between two.
   */
  memorySettle: MemorySettleOptions;
}

/**
 * The largest frame a legal message can need: in proto3 JSON a code point outside
 * the BMP may be written as two \uXXXX escapes, 12 bytes (protobuf needs at most 4),
 * plus room for the rest of the frame.
 */
export function legalFrameBytes(maxTextLength: number): number {
  return Math.max(1024 * 1024, maxTextLength * 12 + 64 * 1024);
}

/** Beyond the limit, ws itself cuts the socket without a word; up to it the edge explains first. */
const EXPLAINED_OVERSIZE_BYTES = 1024 * 1024;

const deviceKey = (userId: string, deviceId: string): string => `${userId}\u0000${deviceId}`;

/** Sessions of this edge by user and by log-in session (the token's sid): the only state an edge keeps. */
class SessionRegistry {
  private readonly byUser = new Map<string, Set<Session>>();
  private readonly byAuthSession = new Map<string, Set<Session>>();
  /** By user and device: a Hello looks for its device's old session, and a user may hold thousands (bots, the bench). */
  private readonly byDevice = new Map<string, Set<Session>>();
  /** READ_BYTES_PER_S per user: kept while the user has a session here. */
  private readonly readsByUser = new Map<string, TokenBucket>();
  size = 0;

  add(s: Session): void {
    ChatMetrics.get().sessions.add(1);
    let set = this.byUser.get(s.userId);
    if (!set) { this.byUser.set(s.userId, (set = new Set())); ChatMetrics.get().users.add(1); }
    set.add(s);
    let auth = this.byAuthSession.get(s.authSessionId);
    if (!auth) this.byAuthSession.set(s.authSessionId, (auth = new Set()));
    auth.add(s);
    const key = deviceKey(s.userId, s.deviceId);
    let device = this.byDevice.get(key);
    if (!device) this.byDevice.set(key, (device = new Set()));
    device.add(s);
    this.size++;
  }
  remove(s: Session): void {
    const set = this.byUser.get(s.userId);
    if (set?.delete(s)) { this.size--; ChatMetrics.get().sessions.add(-1); }
    if (set && set.size === 0) { this.byUser.delete(s.userId); this.readsByUser.delete(s.userId); ChatMetrics.get().users.add(-1); }
    const auth = this.byAuthSession.get(s.authSessionId);
    if (auth?.delete(s) && auth.size === 0) this.byAuthSession.delete(s.authSessionId);
    const key = deviceKey(s.userId, s.deviceId);
    const device = this.byDevice.get(key);
    if (device?.delete(s) && device.size === 0) this.byDevice.delete(key);
  }
  /** The sessions of one device of a user (more than one only while an old one closes). */
  ofDevice(userId: string, deviceId: string): Session[] {
    return [...(this.byDevice.get(deviceKey(userId, deviceId)) ?? [])];
  }
  of(userId: string): Iterable<Session> {
    return this.byUser.get(userId) ?? [];
  }
  /** The read budget all sessions of a registered user share; `undefined` for a user with none here. */
  readsOf(userId: string, make: () => TokenBucket): TokenBucket | undefined {
    if (!this.byUser.has(userId)) return undefined;
    let bucket = this.readsByUser.get(userId);
    if (!bucket) this.readsByUser.set(userId, (bucket = make()));
    return bucket;
  }
  /** The WebSockets opened with access tokens of one log-in session. */
  ofAuthSession(sessionId: string): Session[] {
    return [...(this.byAuthSession.get(sessionId) ?? [])];
  }
  authSessionIds(): string[] {
    return [...this.byAuthSession.keys()];
  }
  all(): Iterable<Session> {
    return [...this.byUser.values()].flatMap((s) => [...s]);
  }
}

/**
 * The WebSocket edge: authenticates sessions, validates frames, turns them into
 * gRPC calls, and delivers what the mesh sends to the devices it holds.
 */
export class EdgeServer {
  readonly sessions = new SessionRegistry();
  /** Disconnects on their way to presence, per (user, device): a reconnect of the device waits for its own. */
  private readonly disconnecting = new Map<string, Promise<void>>();
  private readonly http: http.Server;
  private readonly wss: WebSocketServer;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private headCheckTimer: NodeJS.Timeout | undefined;
  private sessionCheckTimer: NodeJS.Timeout | undefined;
  private sweeping = false;
  private readonly api: HttpApi;
  private draining = false;
  private readonly loginGuard: LoginGuard;
  private readonly sendGuard: SendGuard;
  /** One set of hooks and budgets for every session: per-session closures were memory an idle session paid for. */
  private readonly sessionHooks: SessionHooks;
  private readonly readBudgets: ReadBudgets;
  private readonly memory: MemorySettle;
  httpPort = 0;

  constructor(
    private readonly config: EdgeConfig,
    private readonly gateway: MeshGateway,
    private readonly accounts: AccountServiceClient,
    private readonly identity: { edgeId: string; grpcAddress: string },
    private readonly log: Logger,
    private readonly abuse: { limiter: RateLimiter; cookies: DeviceCookies },
  ) {
    this.loginGuard = new LoginGuard(abuse.limiter, config);
    this.sendGuard = new SendGuard(abuse.limiter, config);
    const sessionApi = new SessionApi(accounts, gateway.tokens, this.loginGuard, abuse.cookies, (ids) => this.endAuthSessions(ids));
    this.memory = new MemorySettle(config.memorySettle, () => this.sessions.size, (ms, before, after) => {
      const mb = (n: number) => Math.round(n / 1024 / 1024);
      log.info("gave back the heap a burst of connects grew", { ms: Math.round(ms), sessions: this.sessions.size, heapUsedMB: mb(after.used), heapBeforeMB: mb(before.total), heapAfterMB: mb(after.total) });
    });
    this.sessionHooks = {
      register: (s) => {
        this.sessions.add(s);
        this.memory.connected();
      },
      unregister: (s) => {
        this.sessions.remove(s);
        const key = deviceKey(s.userId, s.deviceId);
        const done: Promise<void> = this.gateway.presenceDisconnect(this.route(s)).catch(() => {}).finally(() => {
          if (this.disconnecting.get(key) === done) this.disconnecting.delete(key);
        });
        this.disconnecting.set(key, done);
      },
      route: (s) => this.route(s),
      disconnected: async (userId, deviceId) => {
        // The same device's old socket may be mid-handshake (its close frame read, its "close"
        // event not yet fired): wait for it to end, so a prompt reconnect is not DEVICE_IN_USE.
        for (const old of this.sessions.ofDevice(userId, deviceId)) if (old.closing) await old.ended;
        await this.disconnecting.get(deviceKey(userId, deviceId));
      },
      admitSend: (userId, textBytes) => this.sendGuard.admit(userId, textBytes),
      deleteAccount: async (s, password, erase) => {
        // A stolen access token must not be a way to guess the password faster than a log-in.
        await this.loginGuard.beforeLogin(s.address, s.username, false);
        // No loggedIn() after it: the account is gone and its name can never log in again.
        return this.gateway.deleteAccount({ userId: s.userId, username: s.username, sessionId: s.authSessionId }, password, erase);
      },
      endSessions: (ids, reason) => this.endAuthSessions(ids, reason),
    };
    const makeBudget = () => new TokenBucket(config.readBytesPerS, config.maxFrameBytes);
    this.readBudgets = { make: makeBudget, ofUser: (userId) => this.sessions.readsOf(userId, makeBudget) };
    this.api = new HttpApi(config, { accounts, sessionApi, loginGuard: this.loginGuard, cookies: abuse.cookies, endSessions: (ids) => this.endAuthSessions(ids) }, () => ({ draining: this.draining, sessions: this.sessions.size, memorySettles: this.memory.settles }), log);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxFrameBytes + EXPLAINED_OVERSIZE_BYTES,
      perMessageDeflate: false,
      WebSocket: EdgeSocket,
      handleProtocols: (protocols) => (protocols.has(PROTO_SUBPROTOCOL) ? PROTO_SUBPROTOCOL : protocols.has(JSON_SUBPROTOCOL) ? JSON_SUBPROTOCOL : false),
    });
    this.http = createHttpServer(config, (req, res) => {
      // Signup and login are traced (they call chat); static files and probes are not.
      const route = req.method === "POST" ? TRACED_ROUTES.find((r) => req.url?.split("?")[0] === r) : undefined;
      void (route ? withHttpServerSpan(req, res, route, () => this.api.handle(req, res)) : this.api.handle(req, res));
    }, (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://edge");
      if (url.pathname !== "/v1/ws" || this.draining) {
        socket.end(`HTTP/1.1 ${this.draining ? "503 Service Unavailable" : "404 Not Found"}\r\nConnection: close\r\n\r\n`);
        return;
      }
      // Nothing of the request is kept once the socket is a WebSocket: a "close" listener that
      // could see `req` kept it (headers and all, ~1 KB) for as long as the socket lived.
      const address = sourceAddress(req.socket.remoteAddress);
      const span = startHttpServerSpan(req, "/v1/ws");
      const refused = () => span.end(400);
      socket.once("close", refused);
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off("close", refused);
        forgetClearedTimeout(socket);
        span.end(101);
        this.onSocket(ws as EdgeSocket, address);
      });
    });
  }

  async listen(host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(this.config.httpPort, host, () => resolve());
    });
    this.httpPort = (this.http.address() as { port: number }).port;
    // One batched heartbeat to presence per interval covers every live session.
    this.heartbeatTimer = setInterval(() => void this.flushHeartbeats(), Math.max(1_000, Math.floor(this.config.heartbeatIntervalMs / 2)));
    if (this.config.headCheckIntervalMs > 0) this.headCheckTimer = setInterval(() => void this.checkHeads(), this.config.headCheckIntervalMs);
    if (this.config.sessionCheckIntervalMs > 0) this.sessionCheckTimer = setInterval(() => void this.checkAuthSessions(), this.config.sessionCheckIntervalMs);
    this.memory.start();
    return this.httpPort;
  }

  route(s: Session): Route {
    return { userId: s.userId, deviceId: s.deviceId, sessionId: s.sessionId, edgeId: this.identity.edgeId, edgeAddress: this.identity.grpcAddress };
  }

  /** Closes a session of this edge if it is the given one. */
  kickLocal(route: Route): boolean {
    for (const s of this.sessions.of(route.userId)) {
      if (s.sessionId === route.sessionId) {
        s.send({ ref: 0, kind: { $case: "error", value: { code: ErrorCode.ERROR_CODE_DEVICE_IN_USE, message: "this device connected again elsewhere", retryable: false, retryAfterMs: 0 } } });
        s.close(CLOSE.replaced, "replaced by a newer session");
        return true;
      }
    }
    return false;
  }

  deliveryService(): AsyncService<typeof EdgeDeliveryServiceService> {
    return {
      deliver: async (req) => {
        for (const t of req.targets) {
          const ev = req.events[t.eventIndex];
          if (!ev) continue;
          const event = { ...ev, pos: t.pos };
          for (const s of this.sessions.of(t.userId)) s.deliver(event);
        }
        for (const r of req.receipts) for (const u of r.userIds) for (const s of this.sessions.of(u)) if (s.isAuthenticated) s.send({ ref: 0, kind: { $case: "receipt", value: r.receipt! } });
        for (const p of req.presence) for (const u of p.userIds) for (const s of this.sessions.of(u)) if (s.isAuthenticated) s.send({ ref: 0, kind: { $case: "presence", value: p.update! } });
        for (const t of req.typing) for (const u of t.userIds) for (const s of this.sessions.of(u)) if (s.isAuthenticated) s.send({ ref: 0, kind: { $case: "typing", value: t.update! } });
        return {};
      },
      kick: async (req) => ({ kicked: this.kickLocal({ userId: req.userId, deviceId: req.deviceId, sessionId: req.sessionId, edgeId: "", edgeAddress: "" }) }),
      endSessions: async (req) => ({ closed: this.endAuthSessions(req.sessionIds, req.reason || undefined) }),
    };
  }

  /** Stop taking sessions, tell clients to reconnect elsewhere, then close them. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.headCheckTimer);
    clearInterval(this.sessionCheckTimer);
    this.memory.stop();
    for (const s of this.sessions.all()) {
      s.send({ ref: 0, kind: { $case: "error", value: { code: ErrorCode.ERROR_CODE_SHUTTING_DOWN, message: "edge is shutting down; reconnect", retryable: true, retryAfterMs: 0 } } });
      s.close(CLOSE.shutdown, "edge shutting down");
    }
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, deadlineMs);
      this.http.close(() => { clearTimeout(t); resolve(); });
      this.http.closeAllConnections();
    });
  }

  private onSocket(ws: EdgeSocket, address: string): void {
    ws.session = new Session(ws, modeOf(ws.protocol), this.gateway, this.config, this.sessionHooks, this.log, address);
    ws.intake = new FrameIntake(ws, ws.session, this.config, this.readBudgets);
    ws.on("message", onSocketMessage);
    ws.on("close", onSocketClose);
    ws.on("error", onSocketError);
  }

  /**
   * Log-in sessions that ended (logout, password change, a reused refresh token, an account
   * deletion): refused at Hello from now on, and their open WebSockets on this edge closed with
   * SESSION_ENDED. Answers how many sockets it closed.
   */
  private endAuthSessions(sessionIds: string[], reason?: string): number {
    this.gateway.liveness.ended(sessionIds);
    let closed = 0;
    for (const id of sessionIds) for (const s of this.sessions.ofAuthSession(id)) { s.end(reason); closed++; }
    return closed;
  }

  /** Sessions ended through another edge: found by asking the store about every open one. */
  private async checkAuthSessions(): Promise<void> {
    // A store slower than the interval: one sweep at a time, not a pile of them.
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const ended = await this.gateway.liveness.sweep(this.sessions.authSessionIds()).catch((err) => {
        this.log.warn("session check failed", { err });
        return [];
      });
      if (ended.length > 0) this.endAuthSessions(ended);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * The safety net under live delivery: every session learns of an event it was
   * never sent within one interval, even if no later event shows the gap. One
   * store call per 500 users.
   */
  private async checkHeads(): Promise<void> {
    const users = [...new Set([...this.sessions.all()].map((s) => s.userId))];
    for (let i = 0; i < users.length; i += 500) {
      const chunk = users.slice(i, i + 500);
      const heads = await this.gateway.logHeads(chunk).catch((err) => {
        this.log.warn("log head check failed", { err });
        return null;
      });
      if (!heads) return;
      chunk.forEach((userId, k) => { for (const s of this.sessions.of(userId)) s.checkHead(heads[k]!); });
    }
  }

  private async flushHeartbeats(): Promise<void> {
    const routes: Route[] = [];
    const idleCutoff = Date.now() - this.config.heartbeatIntervalMs * 3;
    for (const s of this.sessions.all()) {
      // A client that stopped heartbeating (and sent nothing else) is gone.
      if (s.lastFrameAt < idleCutoff) { s.close(CLOSE.idle, "no heartbeat"); continue; }
      routes.push(this.route(s));
    }
    if (routes.length === 0) return;
    const started = performance.now();
    // Not traced (see Session.handle): a root trace per interval would be noise; the duration is a metric.
    await unsampled(() => this.gateway.presenceHeartbeat(routes))
      .then(() => ChatMetrics.get().heartbeatDuration.record(secondsSince(started)))
      .catch((err) => this.log.warn("presence heartbeat failed", { err }));
  }
}

/**
 * The edge's WebSocket: it carries its session and frame intake, so that its three listeners are
 * shared functions (ws calls them with the socket as `this`) rather than three closures and
 * their context a socket (~130 bytes each of tens of thousands of idle sessions;
 * docs/performance.md, "Stop 35").
 */
class EdgeSocket extends WebSocket {
  session: Session | undefined;
  intake: FrameIntake | undefined;
}

function onSocketMessage(this: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
  (this as EdgeSocket).intake!.read(data, isBinary);
}

function onSocketClose(this: WebSocket, code: number): void {
  (this as EdgeSocket).intake!.closed();
  ChatMetrics.get().disconnects.add(1, { "meshchat.close_code": code });
  (this as EdgeSocket).session!.onClosed();
}

function onSocketError(this: WebSocket): void {
  (this as EdgeSocket).session!.onClosed();
}

/** Node's key for a socket's idle timer (found by its description: it is not exported). */
let timeoutKey: symbol | null | undefined;

/**
 * The HTTP server's idle timeout (`server.setTimeout`, http-guard.ts) gave the socket a timer;
 * ws cleared it at the upgrade (`setTimeout(0)`), but Node keeps the cleared Timeout and its
 * bound callback on the socket for the socket's life (~170 bytes an idle session). Dropped once
 * the socket's timeout is 0; a Node without that key is left as it is.
 */
function forgetClearedTimeout(socket: stream.Duplex): void {
  const s = socket as stream.Duplex & { timeout?: number } & Record<symbol, unknown>;
  if (s.timeout !== 0) return;
  timeoutKey ??= Object.getOwnPropertySymbols(s).find((k) => k.description === "timeout") ?? null;
  if (timeoutKey && s[timeoutKey]) s[timeoutKey] = null;
}
