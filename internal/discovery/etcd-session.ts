import type { Etcd3, Lease } from "etcd3";
import type { Logger } from "../log/logger.js";
import { sleep } from "../run/sleep.js";

/**
 * This process's lease in etcd and every key it holds under it (its membership,
 * an edge's routes). Keep-alives run in the background; if the lease is lost
 * (etcd unreachable for longer than the TTL), the keys are gone from etcd, so
 * `onLost` listeners stop acting on what the keys claimed, and a new lease is
 * taken and every key written again as soon as etcd answers; `onRestored`
 * listeners then resume.
 */
export class EtcdSession {
  private lease: Lease | undefined;
  private readonly keys = new Map<string, string>();
  private readonly lostListeners: Array<() => void> = [];
  private readonly restoredListeners: Array<() => void> = [];
  private closed = false;
  /** Between losing the lease and writing every key under a new one. */
  private restoring = false;

  constructor(
    private readonly client: Etcd3,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const lease = this.newLease();
    await lease.grant();
    this.lease = lease;
  }

  /** The current lease's id (for operators and tests). */
  async leaseId(): Promise<string | undefined> {
    return this.lease?.grant();
  }

  onLost(fn: () => void): void {
    this.lostListeners.push(fn);
  }

  onRestored(fn: () => void): void {
    this.restoredListeners.push(fn);
  }

  async put(key: string, value: string): Promise<void> {
    this.keys.set(key, value);
    if (this.lease && !this.restoring) await this.lease.put(key).value(value).exec();
  }

  /** Deletes a key this session wrote, unless someone else has written it since. */
  async delete(key: string): Promise<void> {
    const ours = this.keys.get(key);
    if (ours === undefined) return;
    this.keys.delete(key);
    if (!this.restoring) await this.deleteIfStill(key, ours);
  }

  /** Deletes `key` only while it holds `value`: another process may have taken it over since. */
  private async deleteIfStill(key: string, value: string): Promise<void> {
    await this.client.if(key, "Value", "==", value).then(this.client.delete().key(key)).commit();
  }

  /** Revokes the lease: every key goes at once (drain). */
  async revoke(): Promise<void> {
    this.closed = true;
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await lease.revoke().catch((err) => this.log.warn("lease revoke failed", { err }));
  }

  /** Ends keep-alives without revoking: the keys expire after the TTL, as if the process died. */
  release(): void {
    this.closed = true;
    this.lease?.release();
    this.lease = undefined;
  }

  private newLease(): Lease {
    const lease = this.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on("lost", (err) => {
      if (this.closed || lease !== this.lease || this.restoring) return;
      this.log.warn("etcd lease lost: stop acting on it, take a new one", { err: err.message });
      this.restoring = true;
      for (const fn of this.lostListeners) fn();
      void this.restore();
    });
    return lease;
  }

  private async restore(): Promise<void> {
    for (let delay = 200; !this.closed; delay = Math.min(delay * 2, 5_000)) {
      const lease = this.newLease();
      try {
        const id = await lease.grant();
        const entries = [...this.keys];
        // One transaction per chunk keeps a restore of many keys to a few round trips.
        for (let i = 0; i < entries.length; i += 100) {
          const ops = entries.slice(i, i + 100).map(([k, v]) => this.client.put(k).value(v).lease(id));
          await this.client.if(entries[i]![0], "Create", ">", -1).then(...ops).commit();
        }
        this.lease = lease;
        this.restoring = false;
        // Keys put or deleted while the snapshot was being written.
        const written = new Map(entries);
        for (const [k, v] of this.keys) if (written.get(k) !== v) await lease.put(k).value(v).exec();
        for (const [k, v] of written) if (!this.keys.has(k)) await this.deleteIfStill(k, v);
        this.log.info("etcd lease restored", { keys: this.keys.size });
        for (const fn of this.restoredListeners) fn();
        return;
      } catch (err) {
        // This attempt's lease is dropped (no keep-alives left running); the next one starts afresh.
        if (lease !== this.lease) lease.release();
        this.log.warn("etcd lease not restored yet", { err: (err as Error).message });
        await sleep(delay);
      }
    }
  }
}
