import { createPrivateKey, type KeyObject } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { SignJWT } from "jose";
import { ConfigError } from "../config/env.js";
import { HttpClient } from "./https-request.js";
import { apnsCollapseId, DEFAULT_PUSH_TIMEOUT_MS, retryAfterMs, transportFailure, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

/** The fields of a Google service-account JSON key that FCM needs. */
export interface ServiceAccount {
  project_id: string;
  client_email: string;
  /** PEM, PKCS#8 RSA key ("-----BEGIN PRIVATE KEY-----"). */
  private_key: string;
  /** OAuth 2.0 token endpoint, normally https://oauth2.googleapis.com/token. */
  token_uri: string;
}

export interface FcmConfig {
  serviceAccount: ServiceAccount;
  /** FCM_ENDPOINT: base URL of the FCM API. Default https://fcm.googleapis.com. */
  endpoint?: string;
  /** PUSH_TIMEOUT_MS: deadline of each HTTP exchange (token and send). Default 10000. */
  timeoutMs?: number;
  /** PUSH_CA_FILE: extra CA for a relay or test server (token_uri and endpoint). Default: system CAs. */
  ca?: string | Buffer;
  /** Clock, for tests of the access-token cache. Default Date.now. */
  now?: () => number;
}

export const FCM_DEFAULT_ENDPOINT = "https://fcm.googleapis.com";
const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/** An access token is replaced this long before it expires (or at 90% of a short lifetime). */
const REFRESH_MARGIN_MS = 5 * 60_000;

/** The token endpoint answered with an error: its outcome is the push's outcome. */
class OAuthFailure extends Error {
  constructor(readonly result: PushResult) {
    super(result.kind === "ok" ? "ok" : result.reason);
  }
}

/**
 * Firebase Cloud Messaging HTTP v1 (`projects/{id}/messages:send`).
 *
 * Authenticates with OAuth 2.0 for service accounts: a JWT assertion signed RS256
 * with the service account's key is exchanged at `token_uri` for an access token,
 * which is cached until shortly before it expires and fetched by one request
 * however many sends are waiting for it. A 401 on send refreshes it once.
 */
export class FcmProvider implements PushProvider {
  readonly name = "fcm" as const;
  private readonly key: KeyObject;
  private readonly sendUrl: string;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly http: HttpClient;
  private cached: { value: string; refreshAt: number } | undefined;
  private fetching: Promise<string> | undefined;
  private closed = false;

  constructor(private readonly config: FcmConfig) {
    const sa = config.serviceAccount;
    for (const k of ["project_id", "client_email", "private_key", "token_uri"] as const) {
      if (typeof sa?.[k] !== "string" || sa[k] === "") throw new ConfigError(`FCM service account has no ${k}`);
    }
    try {
      this.key = createPrivateKey(sa.private_key);
    } catch (err) {
      throw new ConfigError(`FCM service account private_key is not a PEM private key: ${(err as Error).message}`);
    }
    if (this.key.asymmetricKeyType !== "rsa") throw new ConfigError(`FCM service account private_key must be RSA, got ${this.key.asymmetricKeyType}`);
    const endpoint = httpUrl("FCM endpoint", config.endpoint ?? FCM_DEFAULT_ENDPOINT).replace(/\/+$/, "");
    httpUrl("FCM token_uri", sa.token_uri);
    this.sendUrl = `${endpoint}/v1/projects/${encodeURIComponent(sa.project_id)}/messages:send`;
    this.timeoutMs = config.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new ConfigError(`FCM timeout must be positive, got ${this.timeoutMs}`);
    this.now = config.now ?? Date.now;
    this.http = new HttpClient({ ca: config.ca });
  }

  async send(msg: PushMessage): Promise<PushResult> {
    if (this.closed) return { kind: "failed", reason: "fcm provider is closed" };
    const body = JSON.stringify({ message: fcmMessage(msg) });
    let rejected: string | undefined;
    for (;;) {
      let accessToken: string;
      try {
        accessToken = await this.accessToken(rejected);
      } catch (err) {
        return err instanceof OAuthFailure ? err.result : transportFailure(err);
      }
      let res;
      try {
        res = await this.http.request(this.sendUrl, {
          method: "POST",
          headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json; charset=utf-8" },
          body,
          timeoutMs: this.timeoutMs,
        });
      } catch (err) {
        return transportFailure(err);
      }
      if (res.status === 200) return { kind: "ok" };
      const error = parseFcmError(res.body);
      // The access token expired early or was revoked: fetch a new one and try again, once.
      // THIRD_PARTY_AUTH_ERROR is about the APNs/web-push credentials held by Firebase, not ours.
      if (res.status === 401 && rejected === undefined && error.code !== "THIRD_PARTY_AUTH_ERROR") {
        rejected = accessToken;
        continue;
      }
      return classifyFcmResponse(res.status, error, res.headers, this.now());
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.http.close();
  }

  /** A valid access token: the cached one unless it is `rejected` or near expiry; one fetch at a time. */
  private accessToken(rejected?: string): Promise<string> {
    const c = this.cached;
    if (c && c.value !== rejected && this.now() < c.refreshAt) return Promise.resolve(c.value);
    if (c && c.value === rejected) this.cached = undefined;
    this.fetching ??= this.fetchAccessToken().finally(() => {
      this.fetching = undefined;
    });
    return this.fetching;
  }

  private async fetchAccessToken(): Promise<string> {
    const sa = this.config.serviceAccount;
    const iat = Math.floor(this.now() / 1000);
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuer(sa.client_email)
      .setAudience(sa.token_uri)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(this.key);
    const res = await this.http.request(sa.token_uri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: JWT_BEARER, assertion }).toString(),
      timeoutMs: this.timeoutMs,
    });
    let parsed: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {};
    try {
      parsed = JSON.parse(res.body) as typeof parsed;
    } catch {
      // reported below with the status
    }
    if (res.status !== 200 || typeof parsed.access_token !== "string" || parsed.access_token === "") {
      const detail = [parsed.error, parsed.error_description].filter((x) => typeof x === "string").join(": ") || res.body.slice(0, 120);
      const reason = `fcm oauth ${res.status} ${detail}`.trim();
      // The token endpoint is down or throttling: later. A refused assertion (invalid_grant:
      // wrong key, disabled account, clock skew) will not get better by itself.
      if (res.status === 429 || res.status >= 500 || res.status === 408) throw new OAuthFailure({ kind: "retry", reason, retryAfterMs: retryAfterMs(res.headers["retry-after"], this.now()) });
      throw new OAuthFailure({ kind: "failed", reason });
    }
    const lifetimeMs = (typeof parsed.expires_in === "number" && parsed.expires_in > 0 ? parsed.expires_in : 3600) * 1000;
    const value = parsed.access_token;
    this.cached = { value, refreshAt: this.now() + lifetimeMs - Math.min(REFRESH_MARGIN_MS, lifetimeMs / 10) };
    return value;
  }
}

/**
 * The documented v1 message (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages).
 * A background one is a data message: no notification block, normal priority on Android (it
 * shows nothing, so it need not wake a dozing phone), and for Apple devices a background push,
 * which FCM refuses with any APNs priority but 5.
 */
export function fcmMessage(msg: PushMessage): Record<string, unknown> {
  if (msg.background) {
    return {
      token: msg.token,
      data: msg.data,
      android: { priority: "normal" },
      apns: { headers: { "apns-push-type": "background", "apns-priority": "5" }, payload: { aps: { "content-available": 1 } } },
    };
  }
  return {
    token: msg.token,
    notification: { title: msg.title, body: msg.body },
    data: msg.data,
    android: { collapse_key: msg.collapseKey, priority: "high" },
    apns: { headers: { "apns-collapse-id": apnsCollapseId(msg.collapseKey) } },
  };
}

export interface FcmError {
  httpStatus: number;
  /** google.firebase.fcm.v1.FcmError errorCode when present, else the google.rpc status. */
  code: string;
  message: string;
  /** google.rpc.BadRequest field violations (e.g. "message.token"). */
  fields: string[];
}

/** The error document of FCM v1: {error: {code, message, status, details: [...]}}. */
export function parseFcmError(body: string): FcmError {
  try {
    const e = (JSON.parse(body) as { error?: { code?: number; message?: string; status?: string; details?: Array<{ errorCode?: string; fieldViolations?: Array<{ field?: string }> }> } }).error ?? {};
    const details = Array.isArray(e.details) ? e.details : [];
    return {
      httpStatus: typeof e.code === "number" ? e.code : 0,
      code: details.find((d) => typeof d?.errorCode === "string")?.errorCode ?? e.status ?? "",
      message: typeof e.message === "string" ? e.message : "",
      fields: details.flatMap((d) => (Array.isArray(d?.fieldViolations) ? d.fieldViolations.map((f) => String(f?.field ?? "")) : [])),
    };
  } catch {
    return { httpStatus: 0, code: "", message: body.slice(0, 120), fields: [] };
  }
}

/** FCM v1 answer -> outcome (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode). */
export function classifyFcmResponse(status: number, error: FcmError, headers: IncomingHttpHeaders, now = Date.now()): PushResult {
  const reason = `fcm ${status} ${error.code}${error.message ? `: ${error.message.slice(0, 120)}` : ""}`;
  if (status >= 200 && status < 300) return { kind: "ok" };
  // The app was uninstalled or the token expired.
  if (status === 404 || error.code === "UNREGISTERED") return { kind: "dead-token", reason };
  // INVALID_ARGUMENT about the token itself: a malformed or foreign registration token.
  // Any other INVALID_ARGUMENT is about our message and is a plain failure.
  if (status === 400 && (error.fields.includes("message.token") || /registration token/i.test(error.message))) return { kind: "dead-token", reason };
  // QUOTA_EXCEEDED (429), INTERNAL (500), UNAVAILABLE (503), and any other 5xx.
  if (status === 429 || status === 408 || status >= 500) return { kind: "retry", reason, retryAfterMs: retryAfterMs(headers["retry-after"], now) };
  // SENDER_ID_MISMATCH and THIRD_PARTY_AUTH_ERROR land here on purpose: they usually mean
  // a misconfigured project, and deleting every token because of it would be worse.
  return { kind: "failed", reason };
}

function httpUrl(what: string, raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${what} is not a URL: ${raw}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new ConfigError(`${what} must be http(s): ${raw}`);
  return raw;
}
