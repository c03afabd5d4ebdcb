import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { CallError } from "../../gen/chat/internal/v1/multiplex.js";
import { ChatError, ErrorCode } from "./chat-error.js";

/** Trailer carrying the exact domain code across a gRPC hop. */
const CODE_TRAILER = "x-chat-error-code";
const RETRY_TRAILER = "x-chat-retry-after-ms";

/** The one mapping from domain codes to gRPC status codes. */
export function grpcStatusOf(code: ErrorCode): status {
  switch (code) {
    case ErrorCode.ERROR_CODE_INVALID_FRAME:
    case ErrorCode.ERROR_CODE_INVALID_ARGUMENT:
    case ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG:
      return status.INVALID_ARGUMENT;
    case ErrorCode.ERROR_CODE_HELLO_REQUIRED:
    case ErrorCode.ERROR_CODE_UNAUTHENTICATED:
    case ErrorCode.ERROR_CODE_TOKEN_EXPIRED:
    case ErrorCode.ERROR_CODE_SESSION_ENDED:
      return status.UNAUTHENTICATED;
    case ErrorCode.ERROR_CODE_PERMISSION_DENIED:
      return status.PERMISSION_DENIED;
    case ErrorCode.ERROR_CODE_NOT_FOUND:
      return status.NOT_FOUND;
    case ErrorCode.ERROR_CODE_ALREADY_EXISTS:
    case ErrorCode.ERROR_CODE_DEVICE_IN_USE:
    case ErrorCode.ERROR_CODE_ALREADY_AUTHENTICATED:
      return status.ALREADY_EXISTS;
    case ErrorCode.ERROR_CODE_GROUP_FULL:
    case ErrorCode.ERROR_CODE_CURSOR_AHEAD:
    case ErrorCode.ERROR_CODE_MESSAGE_DELETED:
    case ErrorCode.ERROR_CODE_WINDOW_CLOSED:
      return status.FAILED_PRECONDITION;
    case ErrorCode.ERROR_CODE_RATE_LIMITED:
    case ErrorCode.ERROR_CODE_SLOW_CONSUMER:
    case ErrorCode.ERROR_CODE_QUOTA_EXCEEDED:
      return status.RESOURCE_EXHAUSTED;
    case ErrorCode.ERROR_CODE_CONFLICT:
      return status.ABORTED;
    case ErrorCode.ERROR_CODE_UNAVAILABLE:
    case ErrorCode.ERROR_CODE_SHUTTING_DOWN:
      return status.UNAVAILABLE;
    case ErrorCode.ERROR_CODE_INTERNAL:
    case ErrorCode.ERROR_CODE_UNSPECIFIED:
    case ErrorCode.UNRECOGNIZED:
      return status.INTERNAL;
  }
}

/** Status codes that arrive without our trailer (from grpc-js itself or a proxy). */
function codeOfBareStatus(s: number): ErrorCode {
  switch (s) {
    case status.INVALID_ARGUMENT: return ErrorCode.ERROR_CODE_INVALID_ARGUMENT;
    case status.UNAUTHENTICATED: return ErrorCode.ERROR_CODE_UNAUTHENTICATED;
    case status.PERMISSION_DENIED: return ErrorCode.ERROR_CODE_PERMISSION_DENIED;
    case status.NOT_FOUND: return ErrorCode.ERROR_CODE_NOT_FOUND;
    case status.ALREADY_EXISTS: return ErrorCode.ERROR_CODE_ALREADY_EXISTS;
    case status.FAILED_PRECONDITION: return ErrorCode.ERROR_CODE_INVALID_ARGUMENT;
    case status.RESOURCE_EXHAUSTED: return ErrorCode.ERROR_CODE_RATE_LIMITED;
    case status.ABORTED: return ErrorCode.ERROR_CODE_CONFLICT;
    // The peer is down, restarting or slow: nothing was committed we know of; retry.
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
    case status.CANCELLED:
      return ErrorCode.ERROR_CODE_UNAVAILABLE;
    default: return ErrorCode.ERROR_CODE_INTERNAL;
  }
}

/**
 * What a client is told for a status that came from grpc-js itself (or a proxy), not from a
 * handler: grpc-js's own text names addresses and internals ("connect ECONNREFUSED
 * 127.0.0.1:37201", "remote_addr=..."), so it stays in the cause, for the logs.
 */
function messageOfBareStatus(s: number): string {
  switch (s) {
    case status.DEADLINE_EXCEEDED: return "a service did not answer in time; try again";
    case status.UNAVAILABLE: return "a service is unavailable; try again";
    case status.CANCELLED: return "the request was cancelled; try again";
    case status.RESOURCE_EXHAUSTED: return "the request is too large or the service is overloaded";
    default: return "request failed";
  }
}

/** The text a caller is told: INTERNAL hides the cause (the log has it). */
export function publicMessage(e: ChatError): string {
  return e.code === ErrorCode.ERROR_CODE_INTERNAL ? "internal error" : e.message;
}

/** Builds the ServiceError a handler returns for anything it threw. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = ChatError.from(err);
  const md = new Metadata();
  md.set(CODE_TRAILER, String(e.code));
  if (e.retryAfterMs) md.set(RETRY_TRAILER, String(e.retryAfterMs));
  return { code: grpcStatusOf(e.code), details: publicMessage(e), metadata: md };
}

function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && "code" in err && "metadata" in err && typeof (err as ServiceError).code === "number";
}

/** Turns an error from a gRPC client call back into the ChatError the peer threw. */
export function fromServiceError(err: unknown): ChatError {
  if (err instanceof ChatError) return err;
  if (!isServiceError(err)) return ChatError.from(err);
  const raw = err.metadata?.get(CODE_TRAILER)?.[0];
  const retry = Number(err.metadata?.get(RETRY_TRAILER)?.[0] ?? 0);
  if (raw === undefined) return new ChatError(codeOfBareStatus(err.code), messageOfBareStatus(err.code), { cause: err, retryAfterMs: retry });
  return new ChatError(Number(raw) as ErrorCode, err.details || err.message, { cause: err, retryAfterMs: retry });
}

/** What a call on a multiplexed stream fails with: the same code, text and retry hint a unary call's status carries. */
export function toCallError(err: unknown): CallError {
  const e = ChatError.from(err);
  return { code: e.code, message: publicMessage(e), retryAfterMs: e.retryAfterMs };
}

/** The ChatError a peer answered a multiplexed call with. */
export function fromCallError(e: CallError): ChatError {
  return new ChatError(e.code, e.message, { retryAfterMs: e.retryAfterMs });
}
