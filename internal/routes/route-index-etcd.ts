import type { Etcd3 } from "etcd3";
import type { Route, RouteIndex } from "./route-index.js";

const MAX_CACHED_USERS = 100_000;

/**
 * Routes read from etcd, cached per user and kept fresh by one watch on
 * `<prefix>routes/`: a change to any of a user's routes drops that user's entry
 * and the next lookup reads it again. A per-user generation stops a read that
 * raced with a change from caching what it saw.
 */
export class EtcdRouteIndex implements RouteIndex {
  private readonly cache = new Map<string, Route[]>();
  private readonly generation = new Map<string, number>();
  private watcher: { cancel(): Promise<void> } | undefined;

  private constructor(private readonly client: Etcd3, private readonly prefix: string) {}

  static async open(client: Etcd3, prefix: string): Promise<EtcdRouteIndex> {
    const index = new EtcdRouteIndex(client, prefix);
    const watcher = await client.watch().prefix(`${prefix}routes/`).create();
    const invalidate = (key: Buffer) => index.invalidate(key.toString().slice(`${prefix}routes/`.length).split("/")[0]!);
    watcher.on("put", (kv) => invalidate(kv.key));
    watcher.on("delete", (kv) => invalidate(kv.key));
    // After a reconnect events may have been missed: start from nothing.
    watcher.on("connected", () => index.cache.clear());
    index.watcher = watcher;
    return index;
  }

  async lookup(userIds: string[]): Promise<Route[]> {
    const out: Route[] = [];
    const missing: string[] = [];
    for (const id of new Set(userIds)) {
      const hit = this.cache.get(id);
      if (hit) out.push(...hit);
      else missing.push(id);
    }
    await Promise.all(missing.map(async (userId) => {
      const gen = this.generation.get(userId) ?? 0;
      const values = await this.client.getAll().prefix(`${this.prefix}routes/${userId}/`).strings();
      const routes = Object.values(values).map((v) => JSON.parse(v) as Route);
      if ((this.generation.get(userId) ?? 0) === gen) {
        if (this.cache.size >= MAX_CACHED_USERS) this.cache.clear();
        this.cache.set(userId, routes);
      }
      out.push(...routes);
    }));
    return out;
  }

  async close(): Promise<void> {
    await this.watcher?.cancel().catch(() => {});
  }

  private invalidate(userId: string): void {
    this.cache.delete(userId);
    this.generation.set(userId, (this.generation.get(userId) ?? 0) + 1);
    if (this.generation.size > MAX_CACHED_USERS) this.generation.clear();
  }
}
