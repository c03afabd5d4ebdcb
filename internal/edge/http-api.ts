import fs from "node:fs";
import type http from "node:http";
import path from "node:path";
import type { AccountServiceClient } from "../../gen/chat/internal/v1/chat.js";
import { ErrorCode } from "../../gen/chat/v1/client.js";
import type { HttpLimitsConfig } from "../config/http-limits.js";
import { ChatError } from "../errors/chat-error.js";
import { httpStatusOf, publicMessage } from "../errors/http.js";
import { call } from "../grpc/client.js";
import { sleep } from "../run/sleep.js";
import type { Logger } from "../log/logger.js";
import type { DeviceCookies } from "./device-cookie.js";
import { securityHeaders, sourceAddress } from "./http-guard.js";
import { field, isJson, readJson } from "./http-body.js";
import type { LoginGuard } from "./login-guard.js";
import { type SessionApi, tokensBody } from "./session-api.js";

/** The POST routes that call chat, and so are traced. */
export const TRACED_ROUTES = ["/v1/signup", "/v1/login", "/v1/refresh", "/v1/logout", "/v1/password"];

const CONTENT_TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json", ".png": "image/png", ".ico": "image/x-icon" };

export interface HttpApiConfig extends Pick<HttpLimitsConfig, "publicHttps" | "rateLimitedReplyDelayMs"> {
  /** WEB_ROOT: static files of the browser client served at /. Default web/dist. */
  webRoot: string;
  /** DEBUG_ENDPOINTS: serve /debug/vars (memory, CPU) for benchmarks. Default false. */
  debugEndpoints: boolean;
}

/**
 * The edge's HTTP side, beside its WebSockets: the JSON API (sign-up, log-in,
 * refresh, log-out, password), the health and debug probes, and the browser
 * client's static files. Errors are answered as the WebSocket answers them:
 * the typed code, the public message, and Retry-After when there is a wait.
 */
export class HttpApi {
  constructor(
    private readonly config: HttpApiConfig,
    private readonly deps: { accounts: AccountServiceClient; sessionApi: SessionApi; loginGuard: LoginGuard; cookies: DeviceCookies; endSessions: (sessionIds: string[]) => void },
    /** What the probes report: whether the edge is draining, and its session count (and for /debug/vars, the memory settles made). */
    private readonly state: () => { draining: boolean; sessions: number; memorySettles: number },
    private readonly log: Logger,
  ) {}

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://edge");
    const state = this.state();
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { ...securityHeaders("api", this.config.publicHttps), "content-type": "application/json", "cache-control": "no-store", ...headers });
      res.end(JSON.stringify(body));
    };
    const fail = (e: ChatError, status = httpStatusOf(e.code)) => {
      const retry = e.retryAfterMs > 0 ? { "retry-after": String(Math.ceil(e.retryAfterMs / 1000)) } : undefined;
      reply(status, { code: ErrorCode[e.code], message: publicMessage(e), retryable: e.retryable, ...(e.retryAfterMs > 0 ? { retry_after_ms: e.retryAfterMs } : {}) }, retry);
    };
    try {
      if (url.pathname === "/healthz") return reply(state.draining ? 503 : 200, { status: state.draining ? "draining" : "ok", sessions: state.sessions });
      // Process figures for the load generator (DEBUG_ENDPOINTS=true; off by default).
      if (url.pathname === "/debug/vars" && this.config.debugEndpoints) {
        // With node --expose-gc, ?gc=1 collects first so heap figures are live objects only;
        // ?gc=compact collects as V8 does under memory pressure (compacting, returning free pages).
        const collect = (globalThis as { gc?: (options?: object) => void }).gc;
        const gc = url.searchParams.get("gc");
        if (gc === "1" && collect) { collect(); collect(); }
        if (gc === "compact" && collect) collect({ type: "major", execution: "sync", flavor: "last-resort" });
        const m = process.memoryUsage();
        return reply(200, { sessions: state.sessions, memorySettles: state.memorySettles, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, cpu: process.cpuUsage() });
      }
      // A form on any site can POST text/plain (or urlencoded) without a CORS preflight:
      // only JSON, which a cross-site page cannot send without asking first, is read.
      if (req.method === "POST" && !isJson(req.headers["content-type"])) {
        req.resume();
        return fail(ChatError.invalid("Content-Type must be application/json"), 415);
      }
      if (req.method === "POST" && url.pathname === "/v1/signup") return await this.signupOrLogin("signup", req, reply);
      if (req.method === "POST" && url.pathname === "/v1/login") return await this.signupOrLogin("login", req, reply);
      if (req.method === "POST" && url.pathname === "/v1/refresh") return reply(200, await this.deps.sessionApi.refresh(req));
      if (req.method === "POST" && url.pathname === "/v1/logout") return reply(200, await this.deps.sessionApi.logout(req));
      if (req.method === "POST" && url.pathname === "/v1/password") return reply(200, await this.deps.sessionApi.changePassword(req));
      if (req.method === "GET" && this.serveStatic(url.pathname, res)) return;
      throw ChatError.notFound("no such endpoint");
    } catch (err) {
      const e = ChatError.from(err);
      // The client sees a fixed text for these (publicMessage); the detail is here only.
      if (e.code === ErrorCode.ERROR_CODE_INTERNAL) this.log.error("http request failed", { err, path: url.pathname });
      else if (e.code === ErrorCode.ERROR_CODE_UNAVAILABLE) this.log.warn("http request unavailable", { err: e, path: url.pathname }); // the client only hears "try again"
      // A guesser refused by a limit is held before it hears so (RATE_LIMITED_REPLY_DELAY_MS).
      const hold = e.code === ErrorCode.ERROR_CODE_RATE_LIMITED && (url.pathname === "/v1/login" || url.pathname === "/v1/signup")
        ? Math.min(this.config.rateLimitedReplyDelayMs, e.retryAfterMs || this.config.rateLimitedReplyDelayMs) : 0;
      if (hold > 0) await sleep(hold);
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
    if (kind === "signup") await this.deps.loginGuard.beforeSignup(address);
    const body = await readJson(req);
    const username = field(body, "username");
    const password = field(body, "password");
    const deviceId = field(body, "device_id");
    // A sign-up resent for an existing account with its password succeeds like a log-in (retries are
    // safe), so it is held to the same per-account back-off: it must not be a way around it.
    const knownDevice = this.deps.cookies.knows(req.headers.cookie, username);
    await this.deps.loginGuard.beforeLogin(address, username, knownDevice);
    // Longer than the accounts service's hash admission wait (HashQueue.maxWaitMs) plus a hash
    // and a commit, so an admitted request answers rather than times out on a loaded box.
    const { tokens, evictedSessionIds } = kind === "signup"
      ? await call(this.deps.accounts, this.deps.accounts.signup, { username, password, deviceId }, 10_000)
      : await call(this.deps.accounts, this.deps.accounts.login, { username, password, deviceId, knownDevice }, 10_000);
    await this.deps.loginGuard.loggedIn(username, knownDevice);
    // Past MAX_SESSIONS_PER_USER the least recently used sessions ended: their sockets here close now.
    if (evictedSessionIds.length > 0) this.deps.endSessions(evictedSessionIds);
    reply(kind === "signup" ? 201 : 200, tokensBody(tokens!), { "set-cookie": this.deps.cookies.issue(tokens!.username) });
  }

  /** A file of WEB_ROOT (the browser client), never one outside it. */
  private serveStatic(pathname: string, res: http.ServerResponse): boolean {
    const root = path.resolve(this.config.webRoot);
    const file = path.resolve(root, "." + (pathname === "/" ? "/index.html" : decodeURIComponent(pathname)));
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return false;
    res.writeHead(200, { ...securityHeaders("page", this.config.publicHttps), "content-type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
    return true;
  }
}
