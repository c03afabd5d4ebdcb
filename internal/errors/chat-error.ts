import { ErrorCode } from "../../gen/chat/v1/client.js";

// A cycle (infra.ts builds ChatErrors) that is safe: each side uses the other only inside functions.
import { infraErrorToChatError } from "./infra.js";

export { ErrorCode };

/** Codes a client may retry after a while: the request changed nothing. */
const RETRYABLE = new Set<ErrorCode>([
  ErrorCode.ERROR_CODE_UNAVAILABLE,
  ErrorCode.ERROR_CODE_RATE_LIMITED,
  ErrorCode.ERROR_CODE_CONFLICT,
  ErrorCode.ERROR_CODE_SHUTTING_DOWN,
]);

/**
 * The one error type of the product. Handlers throw it; the gRPC boundary and the
 * WebSocket boundary turn it into a status or an Error frame (see grpc-status.ts).
 * `cause` is kept for logs and never sent on the wire.
 */
export class ChatError extends Error {
  override readonly name = "ChatError";
  readonly code: ErrorCode;
  readonly retryAfterMs: number;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options.retryAfterMs ?? 0;
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  /**
   * Wraps anything thrown into a ChatError: an infrastructure failure (a driver or
   * socket error, see infra.ts) becomes the retryable UNAVAILABLE it is on the gRPC
   * path too; anything else unknown becomes INTERNAL.
   */
  static from(err: unknown): ChatError {
    if (err instanceof ChatError) return err;
    return infraErrorToChatError(err) ?? new ChatError(ErrorCode.ERROR_CODE_INTERNAL, "internal error", { cause: err });
  }

  static invalid(message: string): ChatError {
    return new ChatError(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, message);
  }
  static denied(message = "not a member of this conversation"): ChatError {
    return new ChatError(ErrorCode.ERROR_CODE_PERMISSION_DENIED, message);
  }
  static notFound(message: string): ChatError {
    return new ChatError(ErrorCode.ERROR_CODE_NOT_FOUND, message);
  }
  static unavailable(message: string, cause?: unknown): ChatError {
    return new ChatError(ErrorCode.ERROR_CODE_UNAVAILABLE, message, { cause });
  }
}
