import fs from "node:fs";
import { isIP } from "node:net";
import { Etcd3, type IOptions } from "etcd3";
import type { Logger } from "../log/logger.js";
import { EtcdSession } from "./etcd-session.js";

/**
 * ETCD_CA_FILE: the CA of etcd's serving certificate (https:// endpoints).
 * ETCD_CERT_FILE / ETCD_KEY_FILE: this process's client certificate, for an etcd
 * run with --client-cert-auth. ETCD_USERNAME / ETCD_PASSWORD: etcd's own auth.
 * ETCD_SERVER_NAME: the name etcd's certificate is checked against, for endpoints
 * given as IP addresses (TLS sends a name, never an address: Node 26 refuses that).
 * All empty by default (a loopback etcd in development).
 */
export interface EtcdAccess {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  serverName?: string;
}

export function etcdAccess(env: NodeJS.ProcessEnv = process.env): EtcdAccess {
  const pick = (k: string) => env[k] || undefined;
  return { caFile: pick("ETCD_CA_FILE"), certFile: pick("ETCD_CERT_FILE"), keyFile: pick("ETCD_KEY_FILE"), username: pick("ETCD_USERNAME"), password: pick("ETCD_PASSWORD"), serverName: pick("ETCD_SERVER_NAME") };
}

/** The etcd3 client options for `access`: TLS credentials and auth, when configured. */
export function etcdClientOptions(endpoints: string[], access: EtcdAccess = {}): IOptions {
  const options: IOptions = { hosts: endpoints, dialTimeout: 3_000 };
  if (access.caFile) {
    const literal = endpoints.find((e) => isIP(new URL(e).hostname.replace(/^\[|\]$/g, "")) !== 0);
    if (literal && !access.serverName) {
      throw new Error(`etcd endpoint ${literal} is an IP address: set ETCD_SERVER_NAME to the name in etcd's certificate (TLS sends a name, not an address)`);
    }
    if (access.serverName) options.grpcOptions = { "grpc.ssl_target_name_override": access.serverName, "grpc.default_authority": access.serverName };
    options.credentials = {
      rootCertificate: fs.readFileSync(access.caFile),
      ...(access.certFile && access.keyFile ? { certChain: fs.readFileSync(access.certFile), privateKey: fs.readFileSync(access.keyFile) } : {}),
    };
  }
  if (access.username) options.auth = { username: access.username, password: access.password ?? "" };
  return options;
}

export interface EtcdKeyspaceOptions {
  endpoints: string[];
  /** ETCD_PREFIX: every key of this installation lives under it. Default /meshchat/. */
  prefix: string;
  /** DISCOVERY_LEASE_TTL_S: a dead process's keys vanish this long after its last keep-alive. Default 5. */
  leaseTtlSeconds: number;
  access?: EtcdAccess;
}

/**
 * One process's place in etcd: the client, the process's lease (EtcdSession) and
 * the installation's prefix. Every key the process writes under it (its membership)
 * lives exactly as long as its lease.
 */
export class EtcdKeyspace {
  private constructor(readonly client: Etcd3, readonly session: EtcdSession, readonly prefix: string, readonly leaseTtlSeconds: number) {}

  static async open(opts: EtcdKeyspaceOptions, log: Logger): Promise<EtcdKeyspace> {
    const client = new Etcd3(etcdClientOptions(opts.endpoints, opts.access));
    const session = new EtcdSession(client, opts.leaseTtlSeconds, log);
    try {
      await session.start();
    } catch (err) {
      client.close();
      throw err;
    }
    return new EtcdKeyspace(client, session, opts.prefix, opts.leaseTtlSeconds);
  }

  /** Revokes the lease (every key of this process vanishes at once) and closes the client. */
  async close(): Promise<void> {
    await this.session.revoke();
    this.client.close();
  }
}
