import { ErrorCode } from "../../gen/chat/v1/client.js";

/**
 * The WebSocket close codes the edge uses, and what a client makes of them
 * (4000-4999 are the application's; the others are RFC 6455's). One table for
 * the edge that closes and the client library that reads them.
 */
export const CLOSE = {
  /** The token or its log-in session was refused: log in (or refresh) before coming back. */
  unauthenticated: 4401,
  /** The user has MAX_DEVICES_PER_USER devices connected: another must leave first. */
  quotaExceeded: 4403,
  /** Another session holds this device and takeover was not asked. */
  deviceInUse: 4409,
  helloTimeout: 4408,
  /** A newer session of the same device took over. */
  replaced: 4410,
  slowConsumer: 4429,
  idle: 4000,
  shutdown: 1001,
  tooLarge: 1009,
  /** The edge could not do what the session needed (a backend failed): reconnect and try again. */
  retryLater: 1011,
} as const;

/** The close code for a session ended by `code` at Hello or after. */
export function closeCodeOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.ERROR_CODE_UNAUTHENTICATED:
    case ErrorCode.ERROR_CODE_TOKEN_EXPIRED:
    case ErrorCode.ERROR_CODE_SESSION_ENDED:
      return CLOSE.unauthenticated;
    case ErrorCode.ERROR_CODE_DEVICE_IN_USE:
      return CLOSE.deviceInUse;
    case ErrorCode.ERROR_CODE_QUOTA_EXCEEDED:
      return CLOSE.quotaExceeded;
    default:
      return CLOSE.retryLater;
  }
}

/** Whether a client should stop reconnecting after this close (it needs the user, or other sessions hold the device or the quota). */
export function closeIsFinal(closeCode: number): boolean {
  return closeCode === CLOSE.unauthenticated || closeCode === CLOSE.deviceInUse || closeCode === CLOSE.quotaExceeded;
}
