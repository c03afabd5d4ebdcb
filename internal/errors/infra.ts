import { ChatError } from "./chat-error.js";

/**
 * The one boundary where failures of infrastructure clients (pg, PGlite, node:sqlite, ioredis,
 * cassandra-driver, etcd3, sockets) become retryable domain errors. Returns null
 * for errors that are not infrastructure failures (those stay INTERNAL).
 */
export function infraErrorToChatError(err: unknown): ChatError | null {
  if (typeof err !== "object" || err === null) return null;
  const e = err as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  const name = typeof e.name === "string" ? e.name : "";
  const message = typeof e.message === "string" ? e.message : "";
  // Sockets refused, reset or timed out: the server is down or restarting.
  if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"].includes(code)) {
    return ChatError.unavailable(`backend unreachable (${code})`, err);
  }
  // PostgreSQL: 08xxx connection exceptions, 57P01-57P03 admin shutdown / cannot connect now,
  // 40001/40P01 serialization failure / deadlock: the transaction rolled back, safe to retry.
  if (/^(08...|57P0[123]|40001|40P01|53300)$/.test(code)) {
    return ChatError.unavailable(`database unavailable (${code})`, err);
  }
  // node:sqlite: the file is locked by another process past busy_timeout, or the disk failed or is full;
  // the transaction rolled back (SQLITE_BUSY 5, LOCKED 6, IOERR 10, FULL 13; extended codes keep these in the low byte).
  if (code === "ERR_SQLITE_ERROR" && typeof (err as { errcode?: unknown }).errcode === "number" && [5, 6, 10, 13].includes((err as { errcode: number }).errcode & 0xff)) {
    return ChatError.unavailable(`database unavailable (sqlite ${(err as { errstr?: string }).errstr ?? ""})`.trim(), err);
  }
  // cassandra-driver: no host reachable, or a coordinator timed out / lacked replicas.
  if (["NoHostAvailableError", "OperationTimedOutError", "BusyConnectionError"].includes(name)) {
    return ChatError.unavailable(`cassandra unavailable (${name})`, err);
  }
  if (name === "ResponseError" && /Unavailable|timeout|timed out|Overloaded|bootstrapping/i.test(message)) {
    return ChatError.unavailable("cassandra unavailable", err);
  }
  // cassandra-driver ResponseError codes: unavailable, overloaded, bootstrapping, read/write timeout or failure.
  if (name === "ResponseError" && typeof e.code === "number" && [0x1000, 0x1001, 0x1002, 0x1100, 0x1200, 0x1300, 0x1500].includes(e.code)) {
    return ChatError.unavailable(`cassandra unavailable (code 0x${e.code.toString(16)})`, err);
  }
  // cassandra-driver: a connection closed under a request.
  if (name === "DriverError" && /socket|connection|closed/i.test(message)) {
    return ChatError.unavailable("cassandra unavailable (connection lost)", err);
  }
  // etcd3: the client's circuit breaker is open or every endpoint failed.
  if (["GRPCUnavailableError", "BrokenCircuitError", "GRPCDeadlineExceededError", "EtcdLeaseInvalidError"].includes(name)) {
    return ChatError.unavailable(`etcd unavailable (${name})`, err);
  }
  // ioredis: connection closed or max retries reached while the server restarts.
  if (name === "MaxRetriesPerRequestError" || /Connection is closed|connect ECONNREFUSED/.test(message)) {
    return ChatError.unavailable("redis unavailable", err);
  }
  return null;
}
