import { createHmac } from "node:crypto";
import { context, propagation } from "@opentelemetry/api";
import { ConfigError } from "../config/env.js";
import { HttpClient } from "./https-request.js";
import { DEFAULT_PUSH_TIMEOUT_MS, retryAfterMs, transportFailure, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

export interface WebhookConfig {
  /** PUSH_WEBHOOK_URL: where each notification is POSTed (http or https). */
  url: string;
  /** PUSH_WEBHOOK_SECRET: HMAC-SHA256 key; the receiver checks X-Meshchat-Signature. Required. */
  secret: string;
  /** PUSH_TIMEOUT_MS: deadline of each request. Default 10000. */
  timeoutMs?: number;
  /** PUSH_CA_FILE: extra CA for a relay with a private CA. Default: system CAs. */
  ca?: string | Buffer;
}

export const WEBHOOK_SIGNATURE_HEADER = "x-meshchat-signature";

/** `sha256=<hex HMAC-SHA256 of the raw body>`: what a receiver recomputes and compares. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/**
 * A generic webhook: POSTs `{token, title, body, collapse_key, data}` as JSON to an
 * installation's own relay (or any service that turns it into a push), signed
 * with `X-Meshchat-Signature` so the receiver can trust it. An update that shows
 * nothing carries `background: true` (the relay sends it as an FCM data message
 * or an APNs background push).
 * 2xx ok; 404/410 dead token; 408/429/5xx, timeouts and connection errors retry
 * (honouring Retry-After); any other status is a permanent failure.
 */
export class WebhookProvider implements PushProvider {
  readonly name = "webhook" as const;
  private readonly http: HttpClient;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(private readonly config: WebhookConfig) {
    let u: URL;
    try {
      u = new URL(config.url);
    } catch {
      throw new ConfigError(`webhook URL is not a URL: ${config.url}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new ConfigError(`webhook URL must be http(s): ${config.url}`);
    if (!config.secret) throw new ConfigError("a webhook secret is required (PUSH_WEBHOOK_SECRET)");
    this.timeoutMs = config.timeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
    if (!(this.timeoutMs > 0)) throw new ConfigError(`webhook timeout must be positive, got ${this.timeoutMs}`);
    this.http = new HttpClient({ ca: config.ca });
  }

  async send(msg: PushMessage): Promise<PushResult> {
    if (this.closed) return { kind: "failed", reason: "webhook provider is closed" };
    const body = JSON.stringify({ token: msg.token, title: msg.title, body: msg.body, collapse_key: msg.collapseKey, data: msg.data, ...(msg.background ? { background: true } : {}) });
    const headers: Record<string, string> = {
      "content-type": "application/json; charset=utf-8",
      "user-agent": "meshchat-notifier",
      [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(this.config.secret, body),
    };
    // W3C traceparent: the receiver's spans (a relay that traces) join the message's trace.
    propagation.inject(context.active(), headers);
    let res;
    try {
      res = await this.http.request(this.config.url, {
        method: "POST",
        headers,
        body,
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      return transportFailure(err);
    }
    const reason = `webhook ${res.status}`;
    if (res.status >= 200 && res.status < 300) return { kind: "ok" };
    if (res.status === 404 || res.status === 410) return { kind: "dead-token", reason };
    if (res.status === 408 || res.status === 429 || res.status >= 500) return { kind: "retry", reason, retryAfterMs: retryAfterMs(res.headers["retry-after"]) };
    return { kind: "failed", reason };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.http.close();
  }
}
