import { status } from "@grpc/grpc-js";

/**
 * Per the OpenTelemetry gRPC conventions a server span is an error only for the
 * codes that say the server failed; the others (NOT_FOUND, ALREADY_EXISTS,
 * PERMISSION_DENIED, INVALID_ARGUMENT...) are the caller's mistake and leave the
 * server span unset. Client spans are an error for any non-OK code.
 */
const SERVER_ERROR_CODES: ReadonlySet<number> = new Set([status.UNKNOWN, status.DEADLINE_EXCEEDED, status.UNIMPLEMENTED, status.INTERNAL, status.UNAVAILABLE, status.DATA_LOSS]);

export function isServerError(code: number): boolean {
  return SERVER_ERROR_CODES.has(code);
}

/** The status name Prometheus series are labelled with ("OK", "NOT_FOUND"...): readable on a dashboard. */
export function statusName(code: number): string {
  return status[code] ?? "UNKNOWN";
}

/** `server.address` / `server.port` of a client span from a channel target ("host:port" or "ipv4:a:p,b:q"). */
export function serverAttributes(target: string): Record<string, string | number> {
  const first = target.replace(/^(ipv4|dns):(\/\/[^/]*\/)?/, "").split(",")[0] ?? "";
  const i = first.lastIndexOf(":");
  if (i <= 0) return first ? { "server.address": first } : {};
  const port = Number(first.slice(i + 1));
  return Number.isInteger(port) ? { "server.address": first.slice(0, i), "server.port": port } : { "server.address": first };
}

/** `network.peer.address` / `network.peer.port` of a server span from grpc-js's `getPeer()` ("ipv4:1.2.3.4:5", "[::1]:5", "1.2.3.4:5"). */
export function peerAttributes(peer: string): Record<string, string | number> {
  const p = peer.replace(/^ipv[46]:/, "");
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(p);
  if (!m) return p ? { "network.peer.address": p } : {};
  return { "network.peer.address": m[1]!, "network.peer.port": Number(m[2]) };
}
