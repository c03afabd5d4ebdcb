import http from "node:http";
import net from "node:net";
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
 * connection is answered 429 and closed before any byte of it is parsed, so slow
 * or idle sockets from one address cannot use up the edge's file descriptors.
 */
export function capConnectionsPerAddress(server: http.Server, max: number): { open(address: string): number } {
  const open = new Map<string, number>();
  if (max > 0) {
    server.on("connection", (socket: net.Socket) => {
      const address = sourceAddress(socket.remoteAddress);
      const n = (open.get(address) ?? 0) + 1;
      if (n > max) {
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
  return { open: (address) => open.get(address) ?? 0 };
}

/**
 * The edge's HTTP server with timeouts lower than Node's defaults (300 s per
 * request, none for a stalled one: see HttpLimitsConfig) and the connection cap.
 */
export function createHttpServer(limits: HttpLimitsConfig, handler: http.RequestListener): http.Server {
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const server = http.createServer({
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks these deadlines every 30 s by default, which would let a 10 s limit run
    // to 40 s; checking at a quarter of the shorter one keeps them close.
    connectionsCheckingInterval: Math.min(5_000, Math.max(250, Math.floor(headersTimeout / 4))),
  }, handler);
  // A request whose bytes stop moving. Upgraded sockets leave Node's timeout handling (ws
  // clears it too): WebSockets are watched by heartbeats instead.
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
  capConnectionsPerAddress(server, limits.maxConnectionsPerAddress);
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
