import type { ProviderName } from "./provider.js";

export interface DeviceToken {
  deviceId: string;
  provider: ProviderName;
  token: string;
}

/** Device push tokens, one per (user, device). One file per implementation. */
export interface TokenStore {
  register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void>;
  unregister(userId: string, deviceId: string): Promise<void>;
  listForUser(userId: string): Promise<DeviceToken[]>;
  /** Drops a token the provider reported dead, wherever it is registered. */
  removeToken(provider: ProviderName, token: string): Promise<void>;
  close(): Promise<void>;
}
