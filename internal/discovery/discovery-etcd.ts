import type { Campaign, Etcd3 } from "etcd3";
import type { EventEmitter } from "node:events";
import type { Discovery, Instance, Leadership, ServiceKind } from "./discovery.js";
import type { EtcdKeyspace } from "./etcd-keyspace.js";
import { LeaseHolding } from "./lease-holding.js";

/**
 * Membership in etcd: `<prefix>services/<service>/<instance id>` -> address,
 * written under this process's lease. One watch on `<prefix>services/` keeps
 * every service's live set in memory, so lookups never wait on etcd.
 */
export class EtcdDiscovery implements Discovery {
  private readonly sets = new Map<ServiceKind, Map<string, Instance>>();
  private readonly listeners = new Map<ServiceKind, Set<(instances: Instance[]) => void>>();
  private watcher: Awaited<ReturnType<ReturnType<Etcd3["watch"]>["create"]>> | undefined;
  private registered: { service: ServiceKind; self: Instance } | undefined;
  private readonly campaigns: Campaign[] = [];
  private readonly holdings: LeaseHolding[] = [];

  /** Instances come and go: channels resolve them through discovery. */
  readonly dynamic = true;

  private constructor(private readonly space: EtcdKeyspace) {}

  static async open(space: EtcdKeyspace): Promise<EtcdDiscovery> {
    const d = new EtcdDiscovery(space);
    await d.load();
    return d;
  }

  onLost(listener: () => void): void {
    this.space.session.onLost(listener);
  }

  instances(service: ServiceKind): Instance[] {
    return [...(this.sets.get(service)?.values() ?? [])].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  watch(service: ServiceKind, listener: (instances: Instance[]) => void): () => void {
    let set = this.listeners.get(service);
    if (!set) this.listeners.set(service, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  async register(service: ServiceKind, self: Instance): Promise<void> {
    this.registered = { service, self };
    await this.space.session.put(this.key(service, self.id), JSON.stringify(self));
  }

  /** etcd's election (a key per candidate under its own lease, the oldest leads), with the session's lease time. */
  async lead(name: string, candidate: string, onLost: () => void): Promise<Leadership> {
    // Under the installation's prefix: <prefix>election/<name>/<lease id>.
    const campaign = this.space.client.namespace(this.space.prefix).election(name, this.space.leaseTtlSeconds).campaign(candidate);
    this.campaigns.push(campaign);
    // The campaign's own lease, whose keepalives say how long the election is surely held. etcd3
    // keeps it in a private field (checked by campaignLease's test against the pinned version);
    // without it nothing is vouched for and the log reads its fence every tick, as before.
    const lease = campaignLease(campaign);
    const holding = lease ? new LeaseHolding(lease) : undefined;
    if (holding) this.holdings.push(holding);
    let elected = false;
    campaign.on("error", () => {
      holding?.release();
      if (elected) onLost();
    });
    await campaign.wait();
    elected = true;
    return { heldUntil: () => holding?.heldUntil() ?? 0 };
  }

  async deregister(): Promise<void> {
    if (!this.registered) return;
    await this.space.session.delete(this.key(this.registered.service, this.registered.self.id)).catch(() => {});
    this.registered = undefined;
  }

  async close(): Promise<void> {
    // Resigning hands the election to the next candidate at once, not after the lease time: what
    // this process vouched for ends first.
    for (const h of this.holdings) h.release();
    await Promise.all(this.campaigns.map((c) => c.resign().catch(() => {})));
    await this.watcher?.cancel().catch(() => {});
    await this.space.close();
  }

  private key(service: ServiceKind, id: string): string {
    return `${this.space.prefix}services/${service}/${id}`;
  }

  private async load(): Promise<void> {
    const base = `${this.space.prefix}services/`;
    const res = await this.space.client.getAll().prefix(base).exec();
    for (const kv of res.kvs) this.apply(kv.key.toString(), kv.value.toString());
    // Watch from the revision the snapshot was read at: no change falls between the two.
    this.watcher = await this.space.client.watch().prefix(base).startRevision(String(Number(res.header.revision) + 1)).create();
    this.watcher.on("put", (kv) => this.apply(kv.key.toString(), kv.value.toString()));
    this.watcher.on("delete", (kv) => this.apply(kv.key.toString(), null));
  }

  private apply(key: string, value: string | null): void {
    const [service, id] = key.slice(`${this.space.prefix}services/`.length).split("/") as [ServiceKind, string];
    if (!service || !id) return;
    let set = this.sets.get(service);
    if (!set) this.sets.set(service, (set = new Map()));
    if (value === null) {
      if (!set.delete(id)) return;
    } else {
      try {
        const inst = JSON.parse(value) as Instance;
        set.set(id, { id, address: inst.address });
      } catch {
        return;
      }
    }
    const now = this.instances(service);
    for (const fn of this.listeners.get(service) ?? []) fn(now);
  }
}

/** The lease etcd3's Campaign keeps its key under (a private field of the library), if it is there. */
export function campaignLease(campaign: Campaign): EventEmitter | undefined {
  const lease = (campaign as unknown as { lease?: unknown }).lease;
  return lease && typeof (lease as EventEmitter).on === "function" ? (lease as EventEmitter) : undefined;
}
