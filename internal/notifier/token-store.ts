import { PROVIDER_NAMES, type ProviderName } from "./provider.js";

export interface DeviceToken {
  deviceId: string;
  provider: ProviderName;
  token: string;
}

/**
 * Device push tokens: at most one per (user, device), and a (provider, token)
 * belongs to at most one device (a token registered again moves with it: a
 * phone passed to another account must not receive the old account's pushes).
 * One file per implementation:
 * - `token-store-memory.ts`: tests; lost on restart.
 * - `token-store-file.ts`: embedded profile, one notifier, a JSON file.
 * - `token-store-postgres.ts`: production, any number of notifiers.
 */
export interface TokenStore {
  /** Adds or replaces the token of (user, device); removes the same token from any other device. */
  register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void>;
  /** Forgets the device's token (logout). No error when there is none. */
  unregister(userId: string, deviceId: string): Promise<void>;
  /** The user's devices with a token, in no particular order. */
  listForUser(userId: string): Promise<DeviceToken[]>;
  /** Drops a token the provider reported dead, wherever it is registered. */
  removeToken(provider: ProviderName, token: string): Promise<void>;
  /** Finishes pending writes and releases connections; no calls after it. */
  close(): Promise<void>;
}

/** Shared argument checks, so every implementation refuses the same things. */
export function checkRegistration(userId: string, deviceId: string, provider: string, token: string): asserts provider is ProviderName {
  if (!userId) throw new TypeError("userId is required");
  if (!deviceId) throw new TypeError("deviceId is required");
  if (!(PROVIDER_NAMES as readonly string[]).includes(provider)) throw new TypeError(`unknown push provider: ${provider}`);
  if (!token) throw new TypeError("token is required");
}
