import fs from "node:fs";
import path from "node:path";
import type { ProviderName } from "./provider.js";
import { MemoryTokenStore } from "./token-store-memory.js";
import type { TokenStore } from "./token-store.js";

/**
 * Tokens in a JSON file (embedded profile: one notifier, no database). Every
 * change is written to a temporary file and renamed over the old one, so a crash
 * leaves either the old or the new file, never half of one.
 */
export class FileTokenStore extends MemoryTokenStore implements TokenStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly file: string) {
    super();
  }

  static open(file: string): FileTokenStore {
    const store = new FileTokenStore(file);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (fs.existsSync(file)) {
      const data = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, Record<string, { provider: ProviderName; token: string }>>;
      for (const [userId, devices] of Object.entries(data)) {
        store.byUser.set(userId, new Map(Object.entries(devices).map(([deviceId, t]) => [deviceId, { deviceId, provider: t.provider, token: t.token }])));
      }
    }
    return store;
  }

  override async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    await super.register(userId, deviceId, provider, token);
    await this.persist();
  }
  override async unregister(userId: string, deviceId: string): Promise<void> {
    await super.unregister(userId, deviceId);
    await this.persist();
  }
  override async removeToken(provider: ProviderName, token: string): Promise<void> {
    await super.removeToken(provider, token);
    await this.persist();
  }
  override async close(): Promise<void> {
    await this.writing;
  }

  /** Writes are chained: each sees the state after the change that asked for it. */
  private persist(): Promise<void> {
    this.writing = this.writing.then(async () => {
      const data: Record<string, Record<string, { provider: ProviderName; token: string }>> = {};
      for (const [userId, devices] of this.byUser) {
        if (devices.size === 0) continue;
        data[userId] = Object.fromEntries([...devices].map(([id, t]) => [id, { provider: t.provider, token: t.token }]));
      }
      const tmp = `${this.file}.${process.pid}.tmp`;
      await fs.promises.writeFile(tmp, JSON.stringify(data), { mode: 0o600 });
      await fs.promises.rename(tmp, this.file);
    });
    return this.writing;
  }
}
