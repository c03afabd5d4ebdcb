import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { WebSocketServer, type WebSocket } from "ws";
import { EdgeDeliveryServiceService } from "../../gen/chat/internal/v1/edge.js";
import type { AccountServiceClient } from "../../gen/chat/internal/v1/chat.js";
import type { Route } from "../../gen/chat/internal/v1/presence.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import type { HttpLimitsConfig } from "../config/http-limits.js";
import { ChatError } from "../errors/chat-error.js";
import { httpStatusOf, publicMessage } from "../errors/http.js";
import { ChatMetrics, secondsSince, unsampled } from "../telemetry/telemetry.js";
import { startHttpServerSpan, withHttpServerSpan } from "../telemetry/http.js";
import { call } from "../grpc/client.js";
import type { AsyncService } from "../grpc/handler.js";
import type { Logger } from "../log/logger.js";
import type { EdgeBackends } from "./backends.js";
import type { DeviceCookies } from "./device-cookie.js";
import { createHttpServer, securityHeaders, sourceAddress } from "./http-guard.js";
import { LoginGuard } from "./login-guard.js";
import { SendGuard } from "./send-guard.js";
import type { RateLimiter } from "./rate-limiter.js";
import { decodeClientFrame, errorFrame, JSON_SUBPROTOCOL, modeOf, PROTO_SUBPROTOCOL, refOfMalformed } from "./frames.js";
import { CLOSE, Session, type SessionConfig } from "./session.js";

export interface EdgeConfig extends SessionConfig, HttpLimitsConfig {
  /** EDGE_HTTP_PORT: WebSocket and HTTP API. Default 8080. */
  httpPort: number;
  /**
   * MAX_FRAME_BYTES: a larger WebSocket frame is answered with an error and the socket
   * closed (1009). Default legalFrameBytes(MAX_TEXT_LENGTH): every legal message fits,
   * in either subprotocol.
   */
  maxFrameBytes: number;
  /** WEB_ROOT: static files of the browser client served at /. Default web/dist. */
  webRoot: string;
  /** DEBUG_ENDPOINTS: serve /debug/vars (memory, CPU) for benchmarks. Default false. */
  debugEndpoints: boolean;
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

/** Sessions of this edge by user: the only state an edge keeps. */
class SessionRegistry {
  private readonly byUser = new Map<string, Set<Session>>();
  size = 0;

  add(s: Session): void {
    ChatMetrics.get().sessions.add(1);
    let set = this.byUser.get(s.userId);
    if (!set) { this.byUser.set(s.userId, (set = new Set())); ChatMetrics.get().users.add(1); }
    set.add(s);
    this.size++;
  }
  remove(s: Session): void {
    const set = this.byUser.get(s.userId);
    if (set?.delete(s)) { this.size--; ChatMetrics.get().sessions.add(-1); }
    if (set && set.size === 0) { this.byUser.delete(s.userId); ChatMetrics.get().users.add(-1); }
  }
  of(userId: string): Iterable<Session> {
    return this.byUser.get(userId) ?? [];
  }
  all(): Iterable<Session> {
    return [...this.byUser.values()].flatMap((s) => [...s]);
  }
}

const TRACED_ROUTES = ["/v1/signup", "/v1/login"];

const CONTENT_TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json", ".png": "image/png", ".ico": "image/x-icon" };

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
  private draining = false;
  private readonly loginGuard: LoginGuard;
  private readonly sendGuard: SendGuard;
  httpPort = 0;

  constructor(
    private readonly config: EdgeConfig,
    private readonly backends: EdgeBackends,
    private readonly accounts: AccountServiceClient,
    private readonly identity: { edgeId: string; grpcAddress: string },
    private readonly log: Logger,
    private readonly abuse: { limiter: RateLimiter; cookies: DeviceCookies },
  ) {
    this.loginGuard = new LoginGuard(abuse.limiter, config);
    this.sendGuard = new SendGuard(abuse.limiter, config);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxFrameBytes + EXPLAINED_OVERSIZE_BYTES,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(PROTO_SUBPROTOCOL) ? PROTO_SUBPROTOCOL : protocols.has(JSON_SUBPROTOCOL) ? JSON_SUBPROTOCOL : false),
    });
    this.http = createHttpServer(config, (req, res) => {
      // Signup and login are traced (they call chat); static files and probes are not.
      const route = req.method === "POST" ? TRACED_ROUTES.find((r) => req.url?.split("?")[0] === r) : undefined;
      void (route ? withHttpServerSpan(req, res, route, () => this.onHttp(req, res)) : this.onHttp(req, res));
    }, (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://edge");
      if (url.pathname !== "/v1/ws" || this.draining) {
        socket.end(`HTTP/1.1 ${this.draining ? "503 Service Unavailable" : "404 Not Found"}\r\nConnection: close\r\n\r\n`);
        return;
      }
      const span = startHttpServerSpan(req, "/v1/ws");
      socket.once("close", () => span.end(400));
      this.wss.handleUpgrade(req, socket, head, (ws) => { span.end(101); this.onSocket(ws); });
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
    };
  }

  /** Stop taking sessions, tell clients to reconnect elsewhere, then close them. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.headCheckTimer);
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

  private onSocket(ws: WebSocket): void {
    const session: Session = new Session(ws, modeOf(ws.protocol), this.backends, this.config, {
      register: (s) => this.sessions.add(s),
      unregister: (s) => {
        this.sessions.remove(s);
        const key = `${s.userId}\u0000${s.deviceId}`;
        const done: Promise<void> = this.backends.presenceDisconnect(this.route(s)).catch(() => {}).finally(() => {
          if (this.disconnecting.get(key) === done) this.disconnecting.delete(key);
        });
        this.disconnecting.set(key, done);
      },
      route: (s) => this.route(s),
      disconnected: async (userId, deviceId) => {
        // The same device's old socket may be mid-handshake (its close frame read, its "close"
        // event not yet fired): wait for it to end, so a prompt reconnect is not DEVICE_IN_USE.
        for (const old of [...this.sessions.of(userId)]) if (old.deviceId === deviceId && old.closing) await old.ended;
        await this.disconnecting.get(`${userId}\u0000${deviceId}`);
      },
      admitSend: (userId, textBytes) => this.sendGuard.admit(userId, textBytes),
    }, this.log);
    // Frames of one session are handled one after another, in order; how many wait is bounded.
    let chain: Promise<void> = Promise.resolve();
    let queued = 0;
    let queuedBytes = 0;
    ws.on("message", (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (buf.length > this.config.maxFrameBytes) {
        session.send(errorFrame(0, new ChatError(ErrorCode.ERROR_CODE_INVALID_FRAME, `a frame of ${buf.length} bytes is over the limit of ${this.config.maxFrameBytes}`)));
        session.close(CLOSE.tooLarge, "frame too large");
        return;
      }
      let frame;
      try {
        frame = decodeClientFrame(buf, isBinary, modeOf(ws.protocol));
      } catch (err) {
        session.send(errorFrame(refOfMalformed(buf, isBinary, modeOf(ws.protocol)), ChatError.from(err)));
        return;
      }
      // Sends are pipelined (ordered per conversation inside the session); the rest is sequential.
      if (frame.kind?.$case === "send" && session.isAuthenticated) {
        void session.handle(frame);
        return;
      }
      // A client that sends faster than its requests complete is told so, not buffered without end.
      if (queued >= this.config.maxQueuedFrames || queuedBytes + buf.length > this.config.maxQueuedBytes) {
        session.send(errorFrame(frame.ref, new ChatError(ErrorCode.ERROR_CODE_RATE_LIMITED, "too many frames waiting: wait for replies before sending more", { retryAfterMs: 100 })));
        return;
      }
      queued++;
      queuedBytes += buf.length;
      chain = chain.then(() => session.handle(frame)).finally(() => { queued--; queuedBytes -= buf.length; });
    });
    ws.on("close", (code) => { ChatMetrics.get().disconnects.add(1, { "meshchat.close_code": code }); session.onClosed(); });
    ws.on("error", () => session.onClosed());
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
      const heads = await this.backends.logHeads(chunk).catch((err) => {
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
    await unsampled(() => this.backends.presenceHeartbeat(routes))
      .then(() => ChatMetrics.get().heartbeatDuration.record(secondsSince(started)))
      .catch((err) => this.log.warn("presence heartbeat failed", { err }));
  }

  private async onHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://edge");
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...securityHeaders("api", this.config.publicHttps), "content-type": "application/json", "cache-control": "no-store", ...headers });
      res.end(JSON.stringify(body));
    };
    const fail = (e: ChatError, status = httpStatusOf(e.code)) => {
      const retry = e.retryAfterMs > 0 ? { "retry-after": String(Math.ceil(e.retryAfterMs / 1000)) } : undefined;
      reply(status, { code: ErrorCode[e.code], message: publicMessage(e), retryable: e.retryable, ...(e.retryAfterMs > 0 ? { retry_after_ms: e.retryAfterMs } : {}) }, retry);
    };
    try {
      if (url.pathname === "/healthz") return reply(this.draining ? 503 : 200, { status: this.draining ? "draining" : "ok", sessions: this.sessions.size });
      // Process figures for the load generator (DEBUG_ENDPOINTS=true; off by default).
      if (url.pathname === "/debug/vars" && this.config.debugEndpoints) {
        // With node --expose-gc, ?gc=1 collects first so heap figures are live objects only.
        const collect = (globalThis as { gc?: () => void }).gc;
        if (url.searchParams.get("gc") === "1" && collect) { collect(); collect(); }
        const m = process.memoryUsage();
        return reply(200, { sessions: this.sessions.size, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, cpu: process.cpuUsage() });
      }
      // A form on any site can POST text/plain (or urlencoded) without a CORS preflight:
      // only JSON, which a cross-site page cannot send without asking first, is read.
      if (req.method === "POST" && !isJson(req.headers["content-type"])) {
        req.resume();
        return fail(ChatError.invalid("Content-Type must be application/json"), 415);
      }
      if (req.method === "POST" && url.pathname === "/v1/signup") return await this.signupOrLogin("signup", req, reply);
      if (req.method === "POST" && url.pathname === "/v1/login") return await this.signupOrLogin("login", req, reply);
      if (req.method === "GET" && this.serveStatic(url.pathname, res)) return;
      throw ChatError.notFound("no such endpoint");
    } catch (err) {
      const e = ChatError.from(err);
      // The client sees a fixed text for these (publicMessage); the detail is here only.
      if (e.code === ErrorCode.ERROR_CODE_INTERNAL) this.log.error("http request failed", { err, path: url.pathname });
      else if (e.code === ErrorCode.ERROR_CODE_UNAVAILABLE) this.log.warn("http request unavailable", { err: e, path: url.pathname }); // the client only hears "try again"
      fail(e);
    }
  }

  /**
   * Sign-up and log-in, throttled by the LoginGuard before the accounts service
   * computes a hash. A success sets the known-device cookie that lets this device
   * past the account's back-off next time.
   */
  private async signupOrLogin(kind: "signup" | "login", req: http.IncomingMessage, reply: (status: number, body: unknown, headers?: Record<string, string>) => void): Promise<void> {
    const address = sourceAddress(req.socket.remoteAddress);
    if (kind === "signup") await this.loginGuard.beforeSignup(address);
    const body = await readJson(req);
    const username = typeof body.username === "string" ? body.username : "";
    const password = typeof body.password === "string" ? body.password : "";
    // A sign-up resent for an existing account with its password succeeds like a log-in (retries are
    // safe), so it is held to the same per-account back-off: it must not be a way around it.
    await this.loginGuard.beforeLogin(address, username, this.abuse.cookies.knows(req.headers.cookie, username));
    // Longer than the accounts service's hash admission wait (HashQueue.maxWaitMs) plus a hash
    // and a commit, so an admitted request answers rather than times out on a loaded box.
    const r = kind === "signup"
      ? await call(this.accounts, this.accounts.signup, { username, password }, 10_000)
      : await call(this.accounts, this.accounts.login, { username, password }, 10_000);
    await this.loginGuard.loggedIn(username);
    reply(kind === "signup" ? 201 : 200, { user_id: r.userId, username: r.username, token: r.token, expires_at_ms: r.expiresAtMs }, { "set-cookie": this.abuse.cookies.issue(r.username) });
  }

  private serveStatic(pathname: string, res: http.ServerResponse): boolean {
    const root = path.resolve(this.config.webRoot);
    const file = path.resolve(root, "." + (pathname === "/" ? "/index.html" : decodeURIComponent(pathname)));
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return false;
    res.writeHead(200, { ...securityHeaders("page", this.config.publicHttps), "content-type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
    return true;
  }
}

/** application/json, with or without parameters (charset=utf-8). */
function isJson(contentType: string | undefined): boolean {
  return contentType?.split(";")[0]!.trim().toLowerCase() === "application/json";
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw ChatError.invalid("request body too large");
    chunks.push(chunk as Buffer);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch {
    throw ChatError.invalid("body must be a JSON object");
  }
}
