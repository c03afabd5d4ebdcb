import { importPKCS8, SignJWT } from "jose";
import { httpsRequest } from "./https-request.js";
import { retryAfterMs, transportFailure, type PushMessage, type PushProvider, type PushResult } from "./provider.js";

/** The fields of a Google service-account JSON key that FCM needs. */
export interface ServiceAccount {
  project_id: string;
  client_email: string;
  private_key: string;
  token_uri: string;
}

export interface FcmConfig {
  serviceAccount: ServiceAccount;
  /** FCM_ENDPOINT: default https://fcm.googleapis.com. */
  endpoint: string;
  timeoutMs: number;
  /** Extra CA for a relay or test server. */
  ca?: string;
}

const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

/**
 * Firebase Cloud Messaging HTTP v1. Authenticates with OAuth 2.0: a JWT signed
 * (RS256) with the service account's key is exchanged at token_uri for an access
 * token, cached until a minute before it expires.
 */
export class FcmProvider implements PushProvider {
  readonly name = "fcm" as const;
  private accessToken: { value: string; expiresAt: number } | undefined;

  constructor(private readonly config: FcmConfig) {}

  async send(msg: PushMessage): Promise<PushResult> {
    for (let refreshed = false; ; refreshed = true) {
      let token: string;
      try {
        token = await this.token(refreshed);
      } catch (err) {
        return transportFailure(err);
      }
      const body = JSON.stringify({
        message: {
          token: msg.token,
          notification: { title: msg.title, body: msg.body },
          data: msg.data,
          android: { collapse_key: msg.collapseKey, priority: "high" },
          apns: { headers: { "apns-collapse-id": msg.collapseKey.slice(0, 64) } },
        },
      });
      let res;
      try {
        res = await httpsRequest(`${this.config.endpoint}/v1/projects/${encodeURIComponent(this.config.serviceAccount.project_id)}/messages:send`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json; charset=utf-8" },
          body,
          timeoutMs: this.config.timeoutMs,
          ca: this.config.ca,
        });
      } catch (err) {
        return transportFailure(err);
      }
      if (res.status === 200) return { kind: "ok" };
      // The access token was revoked or expired early: get a new one, once.
      if (res.status === 401 && !refreshed) continue;
      const code = errorCode(res.body);
      if (res.status === 404 || code === "UNREGISTERED") return { kind: "dead-token", reason: `fcm ${res.status} ${code}` };
      if (res.status === 400 && /registration token/i.test(res.body)) return { kind: "dead-token", reason: `fcm invalid token` };
      if (res.status === 429 || res.status >= 500) return { kind: "retry", reason: `fcm ${res.status} ${code}`, retryAfterMs: retryAfterMs(res.headers["retry-after"]) };
      return { kind: "failed", reason: `fcm ${res.status} ${code}` };
    }
  }

  async close(): Promise<void> {}

  private async token(forceRefresh: boolean): Promise<string> {
    if (!forceRefresh && this.accessToken && Date.now() < this.accessToken.expiresAt - 60_000) return this.accessToken.value;
    const sa = this.config.serviceAccount;
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuer(sa.client_email)
      .setAudience(sa.token_uri)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(await importPKCS8(sa.private_key, "RS256"));
    const res = await httpsRequest(sa.token_uri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }).toString(),
      timeoutMs: this.config.timeoutMs,
      ca: this.config.ca,
    });
    if (res.status !== 200) throw new Error(`oauth token exchange failed: ${res.status}`);
    const parsed = JSON.parse(res.body) as { access_token?: string; expires_in?: number };
    if (!parsed.access_token) throw new Error("oauth response has no access_token");
    this.accessToken = { value: parsed.access_token, expiresAt: Date.now() + (parsed.expires_in ?? 3600) * 1000 };
    return parsed.access_token;
  }
}

/** FCM v1 puts the specific error in error.details[].errorCode (google.firebase.fcm.v1.FcmError). */
function errorCode(body: string): string {
  try {
    const e = (JSON.parse(body) as { error?: { status?: string; details?: Array<{ errorCode?: string }> } }).error;
    return e?.details?.find((d) => d.errorCode)?.errorCode ?? e?.status ?? "";
  } catch {
    return "";
  }
}
