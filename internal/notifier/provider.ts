/** A push notification for one device token, provider-neutral. */
export interface PushMessage {
  token: string;
  title: string;
  /** Preview, already cut to the configured length. */
  body: string;
  /** One per conversation: a newer notification replaces the older one on the device. */
  collapseKey: string;
  data: Record<string, string>;
}

export type PushResult =
  | { kind: "ok" }
  /** The provider says the token is gone (FCM UNREGISTERED / 404, APNs 410, BadDeviceToken). */
  | { kind: "dead-token"; reason: string }
  /** Try again later: 429, 5xx, timeouts, connection errors. */
  | { kind: "retry"; reason: string; retryAfterMs?: number }
  /** A permanent error for this message that is not about the token. */
  | { kind: "failed"; reason: string };

export type ProviderName = "fcm" | "apns" | "webhook";

/** One push service (FCM, APNs, a webhook relay). One file per implementation. */
export interface PushProvider {
  readonly name: ProviderName;
  send(msg: PushMessage): Promise<PushResult>;
  close(): Promise<void>;
}

/** Retry-After in seconds or an HTTP date, as milliseconds from now. */
export function retryAfterMs(header: string | string[] | undefined | null, now = Date.now()): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Network failures are worth a retry; everything else is reported as failed. */
export function transportFailure(err: unknown): PushResult {
  const e = err as { name?: string; code?: string; message?: string };
  return { kind: "retry", reason: `${e.name === "TimeoutError" || e.name === "AbortError" ? "timeout" : e.code ?? "network error"}: ${e.message ?? ""}`.slice(0, 200) };
}
