import type { ChannelCredentials, Client } from "@grpc/grpc-js";
import { AccountServiceClient, ChatServiceClient } from "../../gen/chat/internal/v1/chat.js";
import { EdgeDeliveryServiceClient } from "../../gen/chat/internal/v1/edge.js";
import { NotifierServiceClient } from "../../gen/chat/internal/v1/notifier.js";
import { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import type { CommonConfig } from "../config/config.js";
import type { Discovery, ServiceKind } from "../discovery/discovery.js";
import { StaticDiscovery } from "../discovery/discovery-static.js";
import { ChatRouter } from "./chat-router.js";
import { discoveryTarget } from "../discovery/grpc-resolver.js";
import { multiplex } from "./multiplex-client.js";
import { makeClient } from "./client.js";

/** Methods that answer with pages of up to PAGE_MAX_BYTES: unary, so a page never holds back other calls' results on a stream. */
const PAGED_METHODS = ["ReadLog", "History"];

/**
 * Multiplex streams on a channel balanced over several instances. Each goes to the instance the
 * round-robin balancer picks when it opens, so with more instances than this a process reaches
 * only some of them, and the many processes calling spread over all (~130 chat instances and
 * ~300 edges calling 14 presence instances at 50M daily users: ~130 streams each). A unary call reached every
 * instance and cost ~250 µs more of CPU at each end (docs/performance.md, "Stop 35").
 */
const BALANCED_STREAMS = 4;

/**
 * Channels to the other services. The TLS server name is the callee's
 * identity, so a certificate made for another service is refused.
 */
export class MeshClients {
  private readonly opened: Client[] = [];
  private readonly edgeByAddress = new Map<string, EdgeDeliveryServiceClient>();

  private readonly routers: ChatRouter[] = [];

  /** With etcd discovery, each channel resolves the live instances itself (meshchat:///<service>). */
  constructor(private readonly config: CommonConfig, private readonly creds: ChannelCredentials, private readonly discovery: Discovery = new StaticDiscovery(config)) {}

  /**
   * `multiplexed`: the channel's unary calls go on Multiplex streams (multiplex.proto), never
   * behind a sidecar (Envoy carries each call). "pinned": one stream, to the instance the
   * balancer picks when it opens (the message store: on Cassandra only the log's leader is
   * listed; docs/performance.md, "Multiplexed calls"). "balanced": one stream for one fixed
   * instance; over several instances, BALANCED_STREAMS streams that the round-robin balancer
   * spreads over them, taken in turn (presence: any instance answers for any user).
   */
  private open<C extends Client>(ctor: new (a: string, c: ChannelCredentials, o?: object) => C, service: ServiceKind, staticAddrs: string[], multiplexed: false | "balanced" | "pinned" = false): C {
    const addrs = this.discovery.dynamic && !this.config.meshSidecar ? [discoveryTarget(service)] : staticAddrs;
    const c = makeClient(ctor, addrs, this.creds, this.config.tls ? service : undefined);
    const oneInstance = addrs.length === 1 && !this.discovery.dynamic;
    // Streams to keep; 0: unary calls (behind a sidecar, or a fixed list a pinned stream would not balance).
    const streams = this.config.meshSidecar ? 0 : multiplexed === "balanced" ? (oneInstance ? 1 : BALANCED_STREAMS) : multiplexed === "pinned" && (oneInstance || this.discovery.dynamic) ? 1 : 0;
    if (streams > 0) multiplex(c as unknown as Parameters<typeof multiplex>[0], { unaryMethods: PAGED_METHODS, streams });
    this.opened.push(c);
    return c;
  }

  chat(): ChatServiceClient { return this.open(ChatServiceClient, "chat", this.config.chatAddrs); }
  accounts(): AccountServiceClient { return this.open(AccountServiceClient, "chat", this.config.chatAddrs); }
  store(): MessageStoreServiceClient { return this.open(MessageStoreServiceClient, "message-store", this.config.storeAddrs, "pinned"); }
  presence(): PresenceServiceClient { return this.open(PresenceServiceClient, "presence", this.config.presenceAddrs, "balanced"); }
  notifier(): NotifierServiceClient { return this.open(NotifierServiceClient, "notifier", this.config.notifierAddrs); }

  /** Per-conversation routing to the owning chat instance (behind a sidecar, Envoy's ring hash does it). */
  chatRouter(): ChatRouter {
    if (this.config.meshSidecar) return new ChatRouter(undefined, this.creds, undefined, this.chat());
    const r = new ChatRouter(this.discovery, this.creds, this.config.tls ? "chat" : undefined, this.chat());
    this.routers.push(r);
    return r;
  }

  /**
   * One channel per edge address, opened on first use. `multiplexed`: its unary calls go on
   * one Multiplex stream (multiplex.proto), as chat's deliveries do; not behind a sidecar,
   * where Envoy carries each call.
   */
  edge(address: string, multiplexed = false): EdgeDeliveryServiceClient {
    const mux = multiplexed && !this.config.meshSidecar;
    const key = `${mux ? "mux" : "unary"} ${address}`;
    let c = this.edgeByAddress.get(key);
    if (!c) {
      c = makeClient(EdgeDeliveryServiceClient, [address], this.creds, this.config.tls ? "edge" : undefined);
      if (mux) multiplex(c);
      this.opened.push(c);
      this.edgeByAddress.set(key, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.opened) c.close();
    for (const r of this.routers) r.close();
  }
}
