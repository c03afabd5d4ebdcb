import type { ProviderName } from "./provider.js";
import { checkRegistration, type DeviceToken, type TokenStore } from "./token-store.js";

/**
 * Tokens in memory. Use it in tests; it is also the state behind the file store.
 * Everything is lost on restart and nothing is shared between notifier instances.
 */
export class MemoryTokenStore implements TokenStore {
  protected readonly byUser = new Map<string, Map<string, DeviceToken>>();
  /** provider + token -> where it is registered, so dead tokens are found without a scan. */
  private readonly byToken = new Map<string, { userId: string; deviceId: string }>();
  protected closed = false;

  async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    this.checkOpen();
    checkRegistration(userId, deviceId, provider, token);
    this.registerNow(userId, deviceId, provider, token);
  }

  async unregister(userId: string, deviceId: string): Promise<void> {
    this.checkOpen();
    this.unregisterNow(userId, deviceId);
  }

  async listForUser(userId: string): Promise<DeviceToken[]> {
    this.checkOpen();
    return [...(this.byUser.get(userId)?.values() ?? [])].map((t) => ({ ...t }));
  }

  async removeToken(provider: ProviderName, token: string): Promise<void> {
    this.checkOpen();
    this.removeTokenNow(provider, token);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // The synchronous mutations; each returns whether anything changed.

  protected registerNow(userId: string, deviceId: string, provider: ProviderName, token: string): boolean {
    const prev = this.byUser.get(userId)?.get(deviceId);
    if (prev && prev.provider === provider && prev.token === token) return false;
    // A token moves with its device: drop it from any other registration first.
    this.removeTokenNow(provider, token);
    if (prev) this.byToken.delete(tokenKey(prev.provider, prev.token));
    let devices = this.byUser.get(userId);
    if (!devices) this.byUser.set(userId, (devices = new Map()));
    devices.set(deviceId, { deviceId, provider, token });
    this.byToken.set(tokenKey(provider, token), { userId, deviceId });
    return true;
  }

  protected unregisterNow(userId: string, deviceId: string): boolean {
    const devices = this.byUser.get(userId);
    const prev = devices?.get(deviceId);
    if (!devices || !prev) return false;
    devices.delete(deviceId);
    this.byToken.delete(tokenKey(prev.provider, prev.token));
    if (devices.size === 0) this.byUser.delete(userId);
    return true;
  }

  protected removeTokenNow(provider: ProviderName, token: string): boolean {
    const at = this.byToken.get(tokenKey(provider, token));
    return at ? this.unregisterNow(at.userId, at.deviceId) : false;
  }

  protected checkOpen(): void {
    if (this.closed) throw new Error("token store is closed");
  }
}

function tokenKey(provider: ProviderName, token: string): string {
  return `${provider}\u0000${token}`;
}
