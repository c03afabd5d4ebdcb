import http from "node:http";
import net from "node:net";
import type stream from "node:stream";
import type { HttpLimitsConfig } from "../config/http-limits.js";
import { ErrorCode } from "../errors/chat-error.js";

/**
 * The key limits count a client by: its IPv4 address, or the /64 of its IPv6
 * address (one subscriber usually holds a whole /64, so single IPv6 addresses
 * would cost an attacker nothing).
 */
export function sourceAddress(remote: string | undefined): string {
  if (!remote) return "unknown";
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  if (v4) return v4[1]!;
  if (!net.isIPv6(remote)) return remote;
  const [head = "", tail] = remote.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":")}::/64`;
}

const TOO_MANY = JSON.stringify({ code: ErrorCode[ErrorCode.ERROR_CODE_RATE_LIMITED], message: "too many connections from this address", retryable: true, retry_after_ms: 1_000 });

/**
 * Caps open TCP connections per source address on the edge's listener: HTTP and
 * WebSocket share the socket, so one count covers both. Past the cap a
 * connection is answered 429 and closed, so slow or idle sockets from one address
 * cannot use up the edge's file descriptors. Node has attached its parser to the
 * socket by then, so bytes already sent may still parse into a request: the
 * answer tells the caller to drop those (`refused`).
 */
function capConnectionsPerAddress(server: http.Server, max: number): (socket: net.Socket) => boolean {
  const open = new Map<string, number>();
  const refused = new WeakSet<net.Socket>();
  if (max > 0) {
    server.on("connection", (socket: net.Socket) => {
      const address = sourceAddress(socket.remoteAddress);
      const n = (open.get(address) ?? 0) + 1;
      if (n > max) {
        refused.add(socket);
        socket.end(`HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: ${TOO_MANY.length}\r\nConnection: close\r\n\r\n${TOO_MANY}`);
        socket.destroySoon();
        return;
      }
      open.set(address, n);
      socket.once("close", () => {
        const left = (open.get(address) ?? 1) - 1;
        if (left > 0) open.set(address, left);
        else open.delete(address);
      });
    });
  }
  return (socket) => refused.has(socket);
}

type UpgradeListener = (req: http.IncomingMessage, socket: stream.Duplex, head: Buffer) => void;

/**
 * The edge's HTTP server with timeouts lower than Node's defaults (300 s per
 * request, none for a stalled one: see HttpLimitsConfig) and the connection cap;
 * requests and upgrades of refused connections never reach the handlers.
 */
export function createHttpServer(limits: HttpLimitsConfig, handler: http.RequestListener, onUpgrade: UpgradeListener): http.Server {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  let refused: (socket: net.Socket) => boolean = () => false;
  const server = http.createServer({
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks these deadlines every 30 s by default, which would let a 10 s limit run
    // to 40 s; checking at a quarter of the shorter one keeps them close.
    connectionsCheckingInterval: Math.min(5_000, Math.max(250, Math.floor(headersTimeout / 4))),
  }, (req, res) => {
    if (refused(req.socket)) req.socket.destroy();
    else handler(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: stream.Duplex, head: Buffer) => {
    if (refused(req.socket)) socket.destroy();
    else onUpgrade(req, socket, head);
  });
  // A request whose bytes stop moving. Upgraded sockets leave Node's timeout handling (ws
  // clears it too): WebSockets are watched by heartbeats instead.
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
  refused = capConnectionsPerAddress(server, limits.maxConnectionsPerAddress);
  return server;
}

/*
 * The page is the Vite build: one module script and one stylesheet from /assets,
 * an inline SVG favicon (data:), a WebSocket to the same origin ('self' covers
 * ws:/wss: of the page's own host in CSP Level 3) and no inline script or style.
 */
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/** API replies are data, never documents: nothing may run or be framed. */
const API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

/** Headers on every reply of the edge, pages and API alike. */
export function securityHeaders(kind: "page" | "api", https: boolean): Record<string, string> {
  return {
    "content-security-policy": kind === "page" ? PAGE_CSP : API_CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    // Only behind TLS: over plain HTTP browsers ignore it, and a test box must stay reachable.
    ...(https ? { "strict-transport-security": "max-age=31536000; includeSubDomains" } : {}),
  };
}
