import fs from "node:fs";
import path from "node:path";
import { PROVIDER_NAMES, type ProviderName } from "./provider.js";
import { MemoryTokenStore } from "./token-store-memory.js";
import { checkRegistration, type TokenStore } from "./token-store.js";

/** On disk: `{ "<userId>": { "<deviceId>": { "provider": "fcm", "token": "..." } } }`. */
type FileData = Record<string, Record<string, { provider: ProviderName; token: string }>>;

/**
 * Tokens in one JSON file: the embedded profile's store (a single notifier, no
 * database). Use PostgresTokenStore as soon as there is more than one notifier.
 *
 * Every change is written to a temporary file in the same directory, flushed to
 * disk, and renamed over the old file, so a crash leaves either the old or the
 * new file, never half of one; a change resolves only once it is on disk.
 * Changes that arrive while a write is in progress share the next write.
 */
export class FileTokenStore extends MemoryTokenStore implements TokenStore {
  private last: Promise<void> = Promise.resolve();
  private next: Promise<void> | undefined;
  private seq = 0;

  private constructor(private readonly file: string) {
    super();
  }

  /** Opens (or creates) the store; a file that is not a token store fails here, at start-up. */
  static open(file: string): FileTokenStore {
    const store = new FileTokenStore(file);
    const dir = path.dirname(file);
    fs.mkdirSync(dir, { recursive: true });
    // Temporary files of a process that crashed mid-write.
    const base = path.basename(file);
    for (const name of fs.readdirSync(dir)) if (name.startsWith(`${base}.`) && name.endsWith(".tmp")) fs.rmSync(path.join(dir, name), { force: true });
    let raw: string;
    try {
      raw = fs.readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return store;
      throw err;
    }
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch (err) {
      throw new Error(`push token file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error(`push token file ${file}: expected an object of users`);
    for (const [userId, devices] of Object.entries(data as FileData)) {
      if (typeof devices !== "object" || devices === null) throw new Error(`push token file ${file}: user ${userId} is not an object`);
      for (const [deviceId, t] of Object.entries(devices)) {
        if (!(PROVIDER_NAMES as readonly string[]).includes(t?.provider) || typeof t?.token !== "string") throw new Error(`push token file ${file}: bad entry for ${userId}/${deviceId}`);
        store.registerNow(userId, deviceId, t.provider, t.token);
      }
    }
    return store;
  }

  override async register(userId: string, deviceId: string, provider: ProviderName, token: string): Promise<void> {
    this.checkOpen();
    checkRegistration(userId, deviceId, provider, token);
    if (this.registerNow(userId, deviceId, provider, token)) await this.persist();
  }

  override async unregister(userId: string, deviceId: string): Promise<void> {
    this.checkOpen();
    if (this.unregisterNow(userId, deviceId)) await this.persist();
  }

  override async removeToken(provider: ProviderName, token: string): Promise<void> {
    this.checkOpen();
    if (this.removeTokenNow(provider, token)) await this.persist();
  }

  override async close(): Promise<void> {
    this.closed = true;
    await this.last.catch(() => {});
  }

  /**
   * Writes the current state after the write in progress. A failed write fails the
   * changes waiting for it; the next change writes everything again.
   */
  private persist(): Promise<void> {
    if (this.next) return this.next;
    const write: Promise<void> = this.last
      .catch(() => {})
      .then(() => {
        if (this.next === write) this.next = undefined;
        return this.writeNow();
      });
    this.next = write;
    this.last = write;
    return write;
  }

  private async writeNow(): Promise<void> {
    const data: FileData = {};
    for (const [userId, devices] of this.byUser) {
      data[userId] = Object.fromEntries([...devices].map(([id, t]) => [id, { provider: t.provider, token: t.token }]));
    }
    const tmp = `${this.file}.${process.pid}.${++this.seq}.tmp`;
    const fh = await fs.promises.open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(data));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.promises.rename(tmp, this.file);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    // The rename itself is durable once the directory is flushed.
    const dir = await fs.promises.open(path.dirname(this.file), "r");
    try {
      await dir.sync();
    } catch {
      // Some file systems refuse fsync on a directory; the rename is still atomic.
    } finally {
      await dir.close();
    }
  }
}
