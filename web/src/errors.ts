// What an error means, in words a person can act on. The raw code stays in a data
// attribute for tests and support, never in the sentence.
import { ClientError, ErrorCode } from "../../internal/client/client.js";

/** Sentences for the codes a particular action can meet; the rest fall back to `GENERAL`. */
export type Wording = Partial<Record<ErrorCode, string>>;

const GENERAL: Wording = {
  [ErrorCode.ERROR_CODE_UNAUTHENTICATED]: "Your session has ended. Please log in again.",
  [ErrorCode.ERROR_CODE_SESSION_ENDED]: "You were logged out (from another device, or the password was changed). Please log in again.",
  [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: "That was not accepted. Check what you typed and try again.",
  [ErrorCode.ERROR_CODE_MESSAGE_TOO_LONG]: "This message is too long: a message can have at most 100,000 characters.",
  [ErrorCode.ERROR_CODE_RATE_LIMITED]: "That was too many in a short time. Wait a moment and try again.",
  [ErrorCode.ERROR_CODE_PERMISSION_DENIED]: "You are not allowed to do that here.",
  [ErrorCode.ERROR_CODE_NOT_FOUND]: "That could not be found.",
  [ErrorCode.ERROR_CODE_GROUP_FULL]: "This group is full: a group can have at most 100 members.",
  [ErrorCode.ERROR_CODE_ALREADY_EXISTS]: "That already exists.",
  [ErrorCode.ERROR_CODE_DEVICE_IN_USE]: "This browser is signed in in another tab or window. Close it and reload this page.",
  [ErrorCode.ERROR_CODE_UNAVAILABLE]: "The server cannot be reached right now. Try again in a moment.",
  [ErrorCode.ERROR_CODE_SHUTTING_DOWN]: "The server is restarting. Try again in a moment.",
};

const FALLBACK = "Something went wrong on our side. Try again in a moment.";

export function describeError(err: unknown, wording: Wording = {}): { text: string; code: string } {
  if (err instanceof ClientError) {
    const text = wording[err.code] ?? GENERAL[err.code] ?? FALLBACK;
    return { text, code: err.codeName.replace("ERROR_CODE_", "") };
  }
  // A network failure before any reply (fetch rejected): the server was not reached.
  return { text: GENERAL[ErrorCode.ERROR_CODE_UNAVAILABLE]!, code: "NETWORK" };
}

/** Shows an error in `el` (next to what caused it); `clearError` hides it again. */
export function showErrorIn(el: HTMLElement, err: unknown, wording?: Wording): void {
  const { text, code } = describeError(err, wording);
  el.textContent = text;
  el.dataset.code = code;
  el.hidden = false;
}

export function showMessageIn(el: HTMLElement, text: string, code: string): void {
  el.textContent = text;
  el.dataset.code = code;
  el.hidden = false;
}

export function clearError(el: HTMLElement | null | undefined): void {
  if (!el) return;
  el.hidden = true;
  el.textContent = "";
  delete el.dataset.code;
}
