import fs from "node:fs";
import { Etcd3, type IOptions } from "etcd3";
import type { Logger } from "../log/logger.js";
import type { Discovery, Instance, ServiceKind } from "./discovery.js";
import { EtcdSession } from "./etcd-session.js";

export interface EtcdDiscoveryOptions {
  endpoints: string[];
  /** ETCD_PREFIX: every key of this installation lives under it. Default /meshchat/. */
  prefix: string;
  /** DISCOVERY_LEASE_TTL_S: a dead process leaves the set this long after its last keep-alive. Default 5. */
  leaseTtlSeconds: number;
  /** How to reach a secured etcd (client TLS, password auth); see etcdAccess(). */
  access?: EtcdAccess;
}

/**
 * ETCD_CA_FILE: the CA of etcd's serving certificate (https:// endpoints).
 * ETCD_CERT_FILE / ETCD_KEY_FILE: this process's client certificate, for an etcd
 * run with --client-cert-auth. ETCD_USERNAME / ETCD_PASSWORD: etcd's own auth.
 * All empty by default (a loopback etcd in development).
 */
export interface EtcdAccess {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
}

export function etcdAccess(env: NodeJS.ProcessEnv = process.env): EtcdAccess {
  const pick = (k: string) => env[k] || undefined;
  return { caFile: pick("ETCD_CA_FILE"), certFile: pick("ETCD_CERT_FILE"), keyFile: pick("ETCD_KEY_FILE"), username: pick("ETCD_USERNAME"), password: pick("ETCD_PASSWORD") };
}

/** The etcd3 client options for `access`: TLS credentials and auth, when configured. */
export function etcdClientOptions(endpoints: string[], access: EtcdAccess = {}): IOptions {
  const options: IOptions = { hosts: endpoints, dialTimeout: 3_000 };
  if (access.caFile) {
    options.credentials = {
      rootCertificate: fs.readFileSync(access.caFile),
      ...(access.certFile && access.keyFile ? { certChain: fs.readFileSync(access.certFile), privateKey: fs.readFileSync(access.keyFile) } : {}),
    };
  }
  if (access.username) options.auth = { username: access.username, password: access.password ?? "" };
  return options;
}

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

  private constructor(
    readonly client: Etcd3,
    readonly session: EtcdSession,
    readonly prefix: string,
  ) {}

  static async open(opts: EtcdDiscoveryOptions, log: Logger): Promise<EtcdDiscovery> {
    const client = new Etcd3(etcdClientOptions(opts.endpoints, opts.access));
    const session = new EtcdSession(client, opts.leaseTtlSeconds, log);
    const d = new EtcdDiscovery(client, session, opts.prefix);
    await session.start();
    await d.load();
    return d;
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
    await this.session.put(this.key(service, self.id), JSON.stringify(self));
  }

  async deregister(): Promise<void> {
    if (!this.registered) return;
    await this.session.delete(this.key(this.registered.service, this.registered.self.id)).catch(() => {});
    this.registered = undefined;
  }

  async close(): Promise<void> {
    await this.watcher?.cancel().catch(() => {});
    await this.session.revoke();
    this.client.close();
  }

  private key(service: ServiceKind, id: string): string {
    return `${this.prefix}services/${service}/${id}`;
  }

  private async load(): Promise<void> {
    const base = `${this.prefix}services/`;
    const res = await this.client.getAll().prefix(base).exec();
    for (const kv of res.kvs) this.apply(kv.key.toString(), kv.value.toString());
    // Watch from the revision the snapshot was read at: no change falls between the two.
    this.watcher = await this.client.watch().prefix(base).startRevision(String(Number(res.header.revision) + 1)).create();
    this.watcher.on("put", (kv) => this.apply(kv.key.toString(), kv.value.toString()));
    this.watcher.on("delete", (kv) => this.apply(kv.key.toString(), null));
  }

  private apply(key: string, value: string | null): void {
    const [service, id] = key.slice(`${this.prefix}services/`.length).split("/") as [ServiceKind, string];
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
