import { ChatError, ErrorCode } from "./chat-error.js";

/** The one mapping from domain codes to HTTP statuses (the edge's HTTP API). */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.ERROR_CODE_INVALID_FRAME:
    case ErrorCode.ERROR_CODE_INVALID_ARGUMENT:
    case ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG:
      return 400;
    case ErrorCode.ERROR_CODE_HELLO_REQUIRED:
    case ErrorCode.ERROR_CODE_UNAUTHENTICATED:
    case ErrorCode.ERROR_CODE_TOKEN_EXPIRED:
    case ErrorCode.ERROR_CODE_SESSION_ENDED:
      return 401;
    case ErrorCode.ERROR_CODE_PERMISSION_DENIED:
      return 403;
    case ErrorCode.ERROR_CODE_NOT_FOUND:
      return 404;
    case ErrorCode.ERROR_CODE_ALREADY_EXISTS:
    case ErrorCode.ERROR_CODE_DEVICE_IN_USE:
    case ErrorCode.ERROR_CODE_ALREADY_AUTHENTICATED:
    case ErrorCode.ERROR_CODE_CONFLICT:
    case ErrorCode.ERROR_CODE_CURSOR_AHEAD:
      return 409;
    case ErrorCode.ERROR_CODE_GROUP_FULL:
    case ErrorCode.ERROR_CODE_MESSAGE_DELETED:
    case ErrorCode.ERROR_CODE_WINDOW_CLOSED:
      return 422;
    case ErrorCode.ERROR_CODE_RATE_LIMITED:
    case ErrorCode.ERROR_CODE_SLOW_CONSUMER:
    case ErrorCode.ERROR_CODE_QUOTA_EXCEEDED:
      return 429;
    case ErrorCode.ERROR_CODE_UNAVAILABLE:
    case ErrorCode.ERROR_CODE_SHUTTING_DOWN:
      return 503;
    case ErrorCode.ERROR_CODE_INTERNAL:
    case ErrorCode.ERROR_CODE_UNSPECIFIED:
    case ErrorCode.UNRECOGNIZED:
      return 500;
  }
}

/**
 * The message a client may see. UNAVAILABLE and INTERNAL often carry text from
 * grpc-js or a driver ("connect ECONNREFUSED 10.0.3.7:7201", "remote_addr=..."):
 * internal addresses and topology stay in the logs, clients get a fixed text.
 */
export function publicMessage(e: ChatError): string {
  switch (e.code) {
    case ErrorCode.ERROR_CODE_INTERNAL:
      return "internal error";
    case ErrorCode.ERROR_CODE_UNAVAILABLE:
      return "service temporarily unavailable; retry";
    default:
      return e.message;
  }
}
