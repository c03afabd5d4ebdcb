import { createHash } from "node:crypto";

/** A push notification for one device token, provider-neutral. */
export interface PushMessage {
  /** The device push token. */
  token: string;
  /** Sender display name (direct chats) or conversation title (groups). */
  title: string;
  /** Preview, already cut to the configured length. */
  body: string;
  /** One per conversation: a newer notification replaces the older one on the device. */
  collapseKey: string;
  /** conversation_id, seq, count: string values only (FCM requires it). */
  data: Record<string, string>;
  /**
   * No alert: a data message the app handles out of sight (to clear or recount what a device
   * shows). FCM: a data-only message; APNs: a background push (content-available, priority 5).
   * title, body and collapseKey are empty then.
   */
  background?: boolean;
}

export type PushResult =
  | { kind: "ok" }
  /** The provider says the token is gone (FCM UNREGISTERED / 404, APNs 410, BadDeviceToken). */
  | { kind: "dead-token"; reason: string }
  /** Try again later: 429, 5xx, timeouts, connection errors. */
  | { kind: "retry"; reason: string; retryAfterMs?: number }
  /** A permanent error for this message that is not about the token (other 4xx, misconfiguration). */
  | { kind: "failed"; reason: string };

export type ProviderName = "fcm" | "apns" | "webhook";
export const PROVIDER_NAMES: readonly ProviderName[] = ["fcm", "apns", "webhook"];

/**
 * One push service (FCM, APNs, a webhook relay); one file per implementation
 * (`provider-fcm.ts`, `provider-apns.ts`, `provider-webhook.ts`).
 *
 * `send` never throws for anything the network or the provider does: every
 * outcome is a `PushResult`. `close` releases connections; no `send` after it.
 */
export interface PushProvider {
  readonly name: ProviderName;
  send(msg: PushMessage): Promise<PushResult>;
  close(): Promise<void>;
}

/** Default per-request deadline of every provider (PUSH_TIMEOUT_MS). */
export const DEFAULT_PUSH_TIMEOUT_MS = 10_000;

/** Retry-After in seconds or as an HTTP date, as milliseconds from `now`. */
export function retryAfterMs(header: string | string[] | undefined | null, now = Date.now()): number | undefined {
  const v = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  // An HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"); Date.parse alone would take "-5" as a year.
  if (!/^[A-Za-z]{3}, /.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

// TLS verification failures are configuration problems (wrong CA, wrong host):
// retrying the same request cannot succeed, so they are reported as failed.
const TLS_CONFIG_ERRORS = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * The one place where a transport failure (socket, TLS, HTTP/2, timeout) becomes a
 * `PushResult`. Timeouts, refused / reset connections, DNS failures, HTTP/2
 * session errors: `retry` (the provider or the path to it is having a bad moment).
 * Certificate verification failures: `failed` (a configuration error).
 */
export function transportFailure(err: unknown): PushResult {
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as { name?: string; code?: string; message?: string };
  const message = (e.message ?? "").slice(0, 160);
  if (e.name === "TimeoutError" || e.name === "AbortError") return { kind: "retry", reason: `timeout: ${message}` };
  if (e.code && TLS_CONFIG_ERRORS.has(e.code)) return { kind: "failed", reason: `tls ${e.code}: ${message}` };
  return { kind: "retry", reason: `${e.code ?? e.name ?? "network error"}: ${message}` };
}

/** The longest prefix of `s` that fits in `maxBytes` of UTF-8, never splitting a code point. */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let bytes = 0;
  let out = "";
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + n > maxBytes) break;
    bytes += n;
    out += ch;
  }
  return out;
}

/**
 * APNs refuses an apns-collapse-id over 64 bytes. A longer collapse key (a direct
 * conversation id holds two user ids) is replaced by its SHA-256 in base64url
 * (43 bytes): stable per conversation, and unlike a cut prefix it cannot make
 * two conversations that share a prefix replace each other's notifications.
 */
export function apnsCollapseId(collapseKey: string): string {
  return Buffer.byteLength(collapseKey) <= 64 ? collapseKey : createHash("sha256").update(collapseKey).digest("base64url");
}
