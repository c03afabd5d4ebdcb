import type { ProviderName } from "./provider.js";
import type { DeviceToken, TokenStore } from "./token-store.js";

/** Tokens in memory: for tests, and as the base of the file store. Lost on restart. */
export class MemoryTokenStore implements TokenStore {
  protected readonly byUser = new Map<string, Map<string, DeviceToken>>();

  async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    // A token moves with its device: drop it from any other registration first.
    await this.removeToken(provider, token);
    let devices = this.byUser.get(userId);
    if (!devices) this.byUser.set(userId, (devices = new Map()));
    devices.set(deviceId, { deviceId, provider, token });
  }

  async unregister(userId: string, deviceId: string): Promise<void> {
    this.byUser.get(userId)?.delete(deviceId);
  }

  async listForUser(userId: string): Promise<DeviceToken[]> {
    return [...(this.byUser.get(userId)?.values() ?? [])];
  }

  async removeToken(provider: ProviderName, token: string): Promise<void> {
    for (const devices of this.byUser.values()) for (const [id, t] of devices) if (t.provider === provider && t.token === token) devices.delete(id);
  }

  async close(): Promise<void> {}
}
