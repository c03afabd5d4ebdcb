import { createHmac } from "node:crypto";
import { retryAfterMs, transportFailure, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

export interface WebhookConfig {
  /** PUSH_WEBHOOK_URL: where each notification is POSTed. */
  url: string;
  /** PUSH_WEBHOOK_SECRET: HMAC-SHA256 key; the receiver checks X-Meshchat-Signature. */
  secret: string;
  timeoutMs: number;
}

/**
 * A generic webhook: POSTs JSON to an installation's own relay (or any service
 * that turns it into a push). Signed so the receiver can trust it.
 */
export class WebhookProvider implements PushProvider {
  readonly name = "webhook" as const;

  constructor(private readonly config: WebhookConfig) {}

  async send(msg: PushMessage): Promise<PushResult> {
    const body = JSON.stringify({ token: msg.token, title: msg.title, body: msg.body, collapse_key: msg.collapseKey, data: msg.data });
    const signature = createHmac("sha256", this.config.secret).update(body).digest("hex");
    let res: Response;
    try {
      res = await fetch(this.config.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-meshchat-signature": `sha256=${signature}` },
        body,
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
      await res.arrayBuffer();
    } catch (err) {
      return transportFailure(err);
    }
    if (res.ok) return { kind: "ok" };
    if (res.status === 404 || res.status === 410) return { kind: "dead-token", reason: `webhook ${res.status}` };
    if (res.status === 429 || res.status >= 500) return { kind: "retry", reason: `webhook ${res.status}`, retryAfterMs: retryAfterMs(res.headers.get("retry-after")) };
    return { kind: "failed", reason: `webhook ${res.status}` };
  }

  async close(): Promise<void> {}
}
