import { createPrivateKey, type KeyObject } from "node:crypto";
import http2 from "node:http2";
import { SignJWT } from "jose";
import { ConfigError } from "../config/env.js";
import { apnsCollapseId, DEFAULT_PUSH_TIMEOUT_MS, retryAfterMs, transportFailure, truncateUtf8, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

export interface ApnsConfig {
  /** APNS_TEAM_ID: the 10-character Team ID: the provider token's `iss`. */
  teamId: string;
  /** APNS_KEY_ID: the 10-character Key ID of the .p8 key: the provider token's `kid`. */
  keyId: string;
  /** APNS_KEY_FILE contents: the .p8 signing key (PEM, PKCS#8, EC P-256). */
  privateKey: string;
  /** APNS_BUNDLE_ID: the app's bundle id, sent as apns-topic. */
  bundleId: string;
  /** APNS_ENDPOINT: default https://api.push.apple.com (https://api.sandbox.push.apple.com for development builds). */
  endpoint?: string;
  /** PUSH_TIMEOUT_MS: deadline of each request. Default 10000. */
  timeoutMs?: number;
  /** PUSH_CA_FILE: extra CA for a relay or test server. Default: system CAs. */
  ca?: string | Buffer;
  /** apns-expiration = now + this: how long APNs keeps trying an offline device. Default 86400 (one day). */
  expirationSeconds?: number;
  /** How long a provider token is reused. Default 50 minutes (Apple: older than 60 min is refused, refreshing more than every 20 min is throttled). */
  tokenRefreshMs?: number;
  /** HTTP/2 PING on the idle session every this many ms, to notice a dead connection early; 0 = off. Default 60000. */
  pingIntervalMs?: number;
  /** Clock, for tests of provider-token reuse. Default Date.now. */
  now?: () => number;
}

export const APNS_DEFAULT_ENDPOINT = "https://api.push.apple.com";
/** Apple's limit for an alert notification's payload. */
const MAX_PAYLOAD_BYTES = 4096;
const MIN_TOKEN_REFRESH_MS = 20 * 60_000;

interface ApnsResponse {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/**
 * Apple Push Notification service over HTTP/2 with token-based authentication.
 *
 * The ES256 provider token (header `kid`, claims `iss` = team id and `iat`) is
 * signed once and reused for `tokenRefreshMs`; an `ExpiredProviderToken` answer
 * replaces it (once per token, however many requests saw it) and the request
 * is retried once. Requests share one long-lived HTTP/2 session, opened on first
 * use and reopened after it dies or the server sends GOAWAY.
 */
export class ApnsProvider implements PushProvider {
  readonly name = "apns" as const;
  private readonly key: KeyObject;
  private readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly expirationSeconds: number;
  private readonly tokenRefreshMs: number;
  private readonly now: () => number;
  private session: http2.ClientHttp2Session | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private jwt: { value: string; issuedAt: number } | undefined;
  private signing: Promise<string> | undefined;
  private closed = false;

  constructor(private readonly config: ApnsConfig) {
    for (const k of ["teamId", "keyId", "bundleId", "privateKey"] as const) {
      if (typeof config[k] !== "string" || config[k].trim() === "") throw new ConfigError(`APNs ${k} is required`);
    }
    try {
      this.key = createPrivateKey(config.privateKey);
    } catch (err) {
      throw new ConfigError(`APNs key is not a PEM private key: ${(err as Error).message}`);
    }
    if (this.key.asymmetricKeyType !== "ec" || this.key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
      throw new ConfigError("APNs key must be an EC P-256 (.p8) key");
    }
    this.endpoint = config.endpoint ?? APNS_DEFAULT_ENDPOINT;
    let u: URL;
    try {
      u = new URL(this.endpoint);
    } catch {
      throw new ConfigError(`APNs endpoint is not a URL: ${this.endpoint}`);
    }
    if (u.protocol !== "https:") throw new ConfigError(`APNs endpoint must be https (HTTP/2 over TLS): ${this.endpoint}`);
    this.timeoutMs = config.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
    this.expirationSeconds = config.expirationSeconds ?? 86_400;
    this.tokenRefreshMs = config.tokenRefreshMs ?? 50 * 60_000;
    if (!(this.timeoutMs > 0)) throw new ConfigError(`APNs timeout must be positive, got ${this.timeoutMs}`);
    if (this.tokenRefreshMs < MIN_TOKEN_REFRESH_MS || this.tokenRefreshMs > 55 * 60_000) throw new ConfigError("APNs tokenRefreshMs must be between 20 and 55 minutes");
    this.now = config.now ?? Date.now;
  }

  async send(msg: PushMessage): Promise<PushResult> {
    if (this.closed) return { kind: "failed", reason: "apns provider is closed" };
    const payload = apnsPayload(msg);
    if (Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) return { kind: "failed", reason: `apns payload over ${MAX_PAYLOAD_BYTES} bytes` };
    let rejected: string | undefined;
    for (;;) {
      let res: ApnsResponse;
      let jwt: string;
      try {
        jwt = await this.providerToken(rejected);
        res = await this.request(msg, payload, jwt);
      } catch (err) {
        return transportFailure(err);
      }
      if (res.status === 200) return { kind: "ok" };
      const reason = parseReason(res.body);
      if (res.status === 403 && reason === "ExpiredProviderToken" && rejected === undefined) {
        rejected = jwt;
        continue;
      }
      return classifyApnsResponse(res.status, reason, res.headers, this.now());
    }
  }

  /** Closes the HTTP/2 session after its in-flight requests (destroyed past the timeout). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pingTimer);
    const s = this.session;
    this.session = undefined;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => s.destroy(), this.timeoutMs);
      s.close(() => {
        clearTimeout(t);
        resolve();
      });
      s.once("close", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The live session, or a new one. A session that errors, closes or gets GOAWAY is never reused. */
  private connect(): http2.ClientHttp2Session {
    const cur = this.session;
    if (cur && !cur.closed && !cur.destroyed) return cur;
    const s = http2.connect(this.endpoint, this.config.ca ? { ca: this.config.ca } : {});
    const forget = () => {
      if (this.session === s) {
        this.session = undefined;
        clearInterval(this.pingTimer);
      }
    };
    // Errors also reach the streams in flight, which report them as `retry`.
    s.on("error", forget);
    s.on("close", forget);
    s.on("goaway", forget);
    // An idle session must not keep the process alive.
    s.unref();
    this.session = s;
    const every = this.config.pingIntervalMs ?? 60_000;
    clearInterval(this.pingTimer);
    if (every > 0) {
      this.pingTimer = setInterval(() => {
        if (s.destroyed || s.closed || this.session !== s) return;
        s.ping((err) => {
          if (err) {
            forget();
            s.destroy();
          }
        });
      }, every);
      this.pingTimer.unref();
    }
    return s;
  }

  private request(msg: PushMessage, payload: string, jwt: string): Promise<ApnsResponse> {
    const session = this.connect();
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err: Error | null, res?: ApnsResponse) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(res!);
      };
      const req = session.request({
        ":method": "POST",
        ":path": `/3/device/${encodeURIComponent(msg.token)}`,
        authorization: `bearer ${jwt}`,
        "apns-topic": this.config.bundleId,
        // Apple refuses a background push with priority 10; it has nothing to collapse with.
        ...(msg.background
          ? { "apns-push-type": "background", "apns-priority": "5" }
          : { "apns-push-type": "alert", "apns-priority": "10", "apns-collapse-id": apnsCollapseId(msg.collapseKey) }),
        "apns-expiration": String(Math.floor(this.now() / 1000) + this.expirationSeconds),
        "content-type": "application/json",
      });
      // No answer in time: the connection is probably dead (a silent NAT drop); start over on a new one.
      const timer = setTimeout(() => {
        finish(Object.assign(new Error(`apns: no answer within ${this.timeoutMs} ms`), { name: "TimeoutError" }));
        req.close(http2.constants.NGHTTP2_CANCEL);
        if (this.session === session) this.session = undefined;
        session.destroy();
      }, this.timeoutMs);
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => {
        headers = h;
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => finish(null, { status: Number(headers[":status"] ?? 0), headers, body: Buffer.concat(chunks).toString("utf8") }));
      req.on("error", (err) => finish(err));
      req.on("close", () => {
        if (!done && req.rstCode !== undefined && req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
          finish(Object.assign(new Error(`apns stream reset (code ${req.rstCode})`), { code: "ERR_HTTP2_STREAM_ERROR" }));
        }
      });
      req.end(payload);
    });
  }

  /** The reusable provider token; a new one when it is too old or is the one APNs just `rejected`. */
  private providerToken(rejected?: string): Promise<string> {
    const cur = this.jwt;
    if (cur && cur.value !== rejected && this.now() - cur.issuedAt < this.tokenRefreshMs) return Promise.resolve(cur.value);
    this.signing ??= this.sign().finally(() => {
      this.signing = undefined;
    });
    return this.signing;
  }

  private async sign(): Promise<string> {
    const issuedAt = this.now();
    const value = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: this.config.keyId })
      .setIssuer(this.config.teamId)
      .setIssuedAt(Math.floor(issuedAt / 1000))
      .sign(this.key);
    this.jwt = { value, issuedAt };
    return value;
  }
}

/**
 * The JSON payload: the app's custom keys beside `aps`, which they cannot replace.
 * Apple: https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification
 */
export function apnsPayload(msg: PushMessage): string {
  const custom = { ...msg.data };
  delete custom.aps;
  // A background push shows nothing: content-available wakes the app, and alert, sound or badge are not allowed.
  if (msg.background) return JSON.stringify({ ...custom, aps: { "content-available": 1 } });
  const build = (body: string) => JSON.stringify({ ...custom, aps: { alert: { title: msg.title, body }, sound: "default", "thread-id": msg.collapseKey } });
  let out = build(msg.body);
  const over = Buffer.byteLength(out) - MAX_PAYLOAD_BYTES;
  // Too big (a very long title or many custom keys): shorten the preview rather than lose the push.
  if (over > 0) out = build(truncateUtf8(msg.body, Math.max(0, Buffer.byteLength(msg.body) - over - 8)) + "…");
  return out;
}

function parseReason(body: string): string {
  try {
    const r = (JSON.parse(body) as { reason?: unknown }).reason;
    return typeof r === "string" ? r : "";
  } catch {
    return "";
  }
}

/**
 * APNs status + reason -> outcome
 * (https://developer.apple.com/documentation/usernotifications/handling-notification-responses-from-apns).
 */
export function classifyApnsResponse(status: number, reason: string, headers: http2.IncomingHttpHeaders, now = Date.now()): PushResult {
  const why = `apns ${status}${reason ? ` ${reason}` : ""}`;
  if (status === 200) return { kind: "ok" };
  // Unregistered / ExpiredToken: the token is no longer active for the topic.
  if (status === 410) return { kind: "dead-token", reason: why };
  if (status === 400 && (reason === "BadDeviceToken" || reason === "DeviceTokenNotForTopic")) return { kind: "dead-token", reason: why };
  // TooManyRequests, TooManyProviderTokenUpdates, InternalServerError, ServiceUnavailable, Shutdown.
  if (status === 429 || status >= 500) return { kind: "retry", reason: why, retryAfterMs: retryAfterMs(headers["retry-after"] as string | undefined, now) };
  // InvalidProviderToken, ExpiredProviderToken again, BadTopic, PayloadTooLarge, ...
  return { kind: "failed", reason: why };
}
