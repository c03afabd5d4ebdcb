import type { CommonConfig } from "../config/config.js";
import type { Discovery, Instance, Leadership, ServiceKind } from "./discovery.js";

/**
 * Fixed address lists from the config (CHAT_ADDRS, STORE_ADDRS, ...): the
 * embedded profile, where the launcher knows every port. The id of each
 * instance is its address, so ownership is the same in every process.
 */
export class StaticDiscovery implements Discovery {
  private readonly lists: Record<Exclude<ServiceKind, "edge">, Instance[]>;

  constructor(config: CommonConfig) {
    const of = (addrs: string[]) => [...new Set(addrs)].sort().map((address) => ({ id: address, address }));
    this.lists = {
      chat: of(config.chatAddrs),
      presence: of(config.presenceAddrs),
      "message-store": of(config.storeAddrs),
      notifier: of(config.notifierAddrs),
    };
  }

  /** The launcher fixed every address. */
  readonly dynamic = false;

  onLost(): void {}

  instances(service: ServiceKind): Instance[] {
    return service === "edge" ? [] : this.lists[service];
  }

  watch(): () => void {
    return () => {};
  }

  async register(): Promise<void> {}
  /** One process per service by configuration, which nothing here can check: it vouches for no time. */
  async lead(): Promise<Leadership> {
    return { heldUntil: () => 0 };
  }
  async deregister(): Promise<void> {}
  async close(): Promise<void> {}
}
