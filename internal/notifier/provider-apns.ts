import http2 from "node:http2";
import { importPKCS8, SignJWT } from "jose";
import { retryAfterMs, transportFailure, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

export interface ApnsConfig {
  teamId: string;
  keyId: string;
  /** The .p8 signing key (PEM, EC P-256). */
  privateKey: string;
  /** The app's bundle id: the apns-topic. */
  bundleId: string;
  /** APNS_ENDPOINT: https://api.push.apple.com (or api.sandbox.push.apple.com). */
  endpoint: string;
  timeoutMs: number;
  ca?: string;
}

// Apple refuses provider tokens older than an hour and refreshes more often than every 20 minutes.
const JWT_REFRESH_MS = 50 * 60 * 1000;

/**
 * Apple Push Notification service over HTTP/2 with token-based auth (ES256
 * provider JWT). One long-lived HTTP/2 session, reopened when it dies.
 */
export class ApnsProvider implements PushProvider {
  readonly name = "apns" as const;
  private session: http2.ClientHttp2Session | undefined;
  private jwt: { value: string; at: number } | undefined;

  constructor(private readonly config: ApnsConfig) {}

  async send(msg: PushMessage): Promise<PushResult> {
    for (let refreshed = false; ; refreshed = true) {
      let res: { status: number; headers: http2.IncomingHttpHeaders; body: string };
      try {
        res = await this.request(msg, await this.providerToken(refreshed));
      } catch (err) {
        this.session?.destroy();
        this.session = undefined;
        return transportFailure(err);
      }
      if (res.status === 200) return { kind: "ok" };
      const reason = parseReason(res.body);
      if (res.status === 403 && reason === "ExpiredProviderToken" && !refreshed) continue;
      if (res.status === 410 || (res.status === 400 && (reason === "BadDeviceToken" || reason === "DeviceTokenNotForTopic"))) return { kind: "dead-token", reason: `apns ${res.status} ${reason}` };
      if (res.status === 429 || res.status >= 500) return { kind: "retry", reason: `apns ${res.status} ${reason}`, retryAfterMs: retryAfterMs(res.headers["retry-after"] as string | undefined) };
      return { kind: "failed", reason: `apns ${res.status} ${reason}` };
    }
  }

  async close(): Promise<void> {
    this.session?.close();
    this.session = undefined;
  }

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const s = http2.connect(this.config.endpoint, this.config.ca ? { ca: this.config.ca } : {});
    s.on("error", () => { if (this.session === s) this.session = undefined; });
    s.on("close", () => { if (this.session === s) this.session = undefined; });
    s.unref();
    this.session = s;
    return s;
  }

  private request(msg: PushMessage, jwt: string): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
    const body = JSON.stringify({ aps: { alert: { title: msg.title, body: msg.body }, sound: "default", "thread-id": msg.collapseKey }, ...msg.data });
    return new Promise((resolve, reject) => {
      const req = this.connect().request({
        ":method": "POST",
        ":path": `/3/device/${encodeURIComponent(msg.token)}`,
        authorization: `bearer ${jwt}`,
        "apns-topic": this.config.bundleId,
        "apns-push-type": "alert",
        "apns-priority": "10",
        "apns-expiration": String(Math.floor(Date.now() / 1000) + 24 * 3600),
        "apns-collapse-id": truncateBytes(msg.collapseKey, 64),
        "content-type": "application/json",
      });
      req.setTimeout(this.config.timeoutMs, () => req.close(http2.constants.NGHTTP2_CANCEL, () => reject(Object.assign(new Error("apns request timed out"), { name: "TimeoutError" }))));
      let headers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (h) => { headers = h; });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ status: Number(headers[":status"] ?? 0), headers, body: Buffer.concat(chunks).toString("utf8") }));
      req.on("error", reject);
      req.end(body);
    });
  }

  private async providerToken(forceRefresh: boolean): Promise<string> {
    if (!forceRefresh && this.jwt && Date.now() - this.jwt.at < JWT_REFRESH_MS) return this.jwt.value;
    const value = await new SignJWT({})
      .setProtectedHeader({ alg: "ES256", kid: this.config.keyId })
      .setIssuer(this.config.teamId)
      .setIssuedAt()
      .sign(await importPKCS8(this.config.privateKey, "ES256"));
    this.jwt = { value, at: Date.now() };
    return value;
  }
}

function parseReason(body: string): string {
  try {
    return (JSON.parse(body) as { reason?: string }).reason ?? "";
  } catch {
    return "";
  }
}

function truncateBytes(s: string, max: number): string {
  let out = s;
  while (Buffer.byteLength(out) > max) out = Array.from(out).slice(0, -1).join("");
  return out;
}
