import { experimental, status } from "@grpc/grpc-js";
import type { ChannelOptions } from "@grpc/grpc-js";
import type { Discovery, ServiceKind } from "./discovery.js";

const SCHEME = "meshchat";
let current: Discovery | undefined;

/**
 * Lets grpc-js channels resolve `meshchat:///<service>` from discovery, so a
 * channel balances (round robin) over exactly the live instances and follows
 * every change, while callers keep one client object per service.
 */
class DiscoveryResolver implements experimental.Resolver {
  private readonly service: ServiceKind;
  private unwatch: (() => void) | undefined;

  constructor(target: experimental.GrpcUri, private readonly listener: experimental.ResolverListener, _options: ChannelOptions) {
    this.service = target.path.replace(/^\//, "") as ServiceKind;
  }

  updateResolution(): void {
    const d = current;
    if (!d) return;
    this.unwatch ??= d.watch(this.service, () => this.report());
    setImmediate(() => this.report());
  }

  destroy(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  private report(): void {
    const instances = current?.instances(this.service) ?? [];
    if (instances.length === 0) {
      this.listener(experimental.statusOrFromError({ code: status.UNAVAILABLE, details: `no live ${this.service} instance` }), {}, null, "");
      return;
    }
    const endpoints = instances.map((i) => {
      const at = i.address.lastIndexOf(":");
      return { addresses: [{ host: i.address.slice(0, at), port: Number(i.address.slice(at + 1)) }] };
    });
    this.listener(experimental.statusOrFromValue(endpoints), {}, null, "");
  }

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    return target.path.replace(/^\//, "");
  }
}

export function useDiscoveryForChannels(discovery: Discovery): void {
  current = discovery;
  experimental.registerResolver(SCHEME, DiscoveryResolver);
}

export function discoveryTarget(service: ServiceKind): string {
  return `${SCHEME}:///${service}`;
}
