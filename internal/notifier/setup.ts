import fs from "node:fs";
import path from "node:path";
import type { CommonConfig } from "../config/config.js";
import { ConfigError, int, oneOf, str, unknownChoice } from "../config/env.js";
import { PostgresTokenStore } from "./token-store-postgres.js";
import { ApnsProvider } from "./provider-apns.js";
import { FcmProvider, type ServiceAccount } from "./provider-fcm.js";
import type { ProviderName, PushProvider } from "./provider.js";
import { WebhookProvider } from "./provider-webhook.js";
import { FileTokenStore } from "./token-store-file.js";
import type { TokenStore } from "./token-store.js";

function readFile(name: string, file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${name}=${file}: ${(err as Error).message}`);
  }
}

/**
 * The providers this installation configured. Each is on when its settings are:
 * PUSH_WEBHOOK_URL + PUSH_WEBHOOK_SECRET (required with it); FCM_SERVICE_ACCOUNT_FILE (+ FCM_ENDPOINT);
 * APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_BUNDLE_ID (+ APNS_ENDPOINT).
 * PUSH_CA_FILE adds a CA for relays or test servers with a private CA.
 */
export async function pushProvidersFromEnv(): Promise<Map<ProviderName, PushProvider>> {
  const providers = new Map<ProviderName, PushProvider>();
  const timeoutMs = int("PUSH_TIMEOUT_MS", 10_000, 100);
  const ca = process.env.PUSH_CA_FILE ? readFile("PUSH_CA_FILE", process.env.PUSH_CA_FILE) : undefined;
  const webhook = str("PUSH_WEBHOOK_URL", "");
  // Each constructor validates its settings (URLs, key types), so a bad value fails here, at boot.
  if (webhook) providers.set("webhook", new WebhookProvider({ url: webhook, secret: str("PUSH_WEBHOOK_SECRET", ""), timeoutMs, ca }));
  const sa = str("FCM_SERVICE_ACCOUNT_FILE", "");
  if (sa) {
    let serviceAccount: ServiceAccount;
    try {
      serviceAccount = JSON.parse(readFile("FCM_SERVICE_ACCOUNT_FILE", sa)) as ServiceAccount;
    } catch (err) {
      throw err instanceof ConfigError ? err : new ConfigError(`FCM_SERVICE_ACCOUNT_FILE=${sa}: not JSON: ${(err as Error).message}`);
    }
    providers.set("fcm", new FcmProvider({ serviceAccount, endpoint: str("FCM_ENDPOINT", "https://fcm.googleapis.com"), timeoutMs, ca }));
  }
  const apnsKey = str("APNS_KEY_FILE", "");
  if (apnsKey) {
    const need = (n: string) => { const v = str(n, ""); if (!v) throw new ConfigError(`${n} is required with APNS_KEY_FILE`); return v; };
    providers.set("apns", new ApnsProvider({ privateKey: readFile("APNS_KEY_FILE", apnsKey), keyId: need("APNS_KEY_ID"), teamId: need("APNS_TEAM_ID"), bundleId: need("APNS_BUNDLE_ID"), endpoint: str("APNS_ENDPOINT", "https://api.push.apple.com"), timeoutMs, ca }));
  }
  return providers;
}

/** PUSH_TOKEN_STORE: file (embedded default, DATA_DIR/notifier/tokens.json) or postgres (POSTGRES_URL). */
export async function openTokenStore(config: CommonConfig): Promise<TokenStore> {
  const kind = oneOf("PUSH_TOKEN_STORE", config.profile === "embedded" ? "file" : "postgres", ["file", "postgres"] as const);
  switch (kind) {
    case "file":
      return FileTokenStore.open(path.join(config.dataDir, "notifier", "tokens.json"));
    case "postgres":
      return PostgresTokenStore.open(config.postgresUrl);
    default:
      return unknownChoice("token store", kind);
  }
}
