import type { ChannelCredentials, Client } from "@grpc/grpc-js";
import { AccountServiceClient, ChatServiceClient } from "../../gen/chat/internal/v1/chat.js";
import { EdgeDeliveryServiceClient } from "../../gen/chat/internal/v1/edge.js";
import { NotifierServiceClient } from "../../gen/chat/internal/v1/notifier.js";
import { PresenceServiceClient } from "../../gen/chat/internal/v1/presence.js";
import { MessageStoreServiceClient } from "../../gen/chat/internal/v1/store.js";
import type { CommonConfig } from "../config/config.js";
import { makeClient } from "./client.js";

/**
 * Channels to the other services. The TLS server name is the callee's
 * identity, so a certificate made for another service is refused.
 */
export class MeshClients {
  private readonly opened: Client[] = [];
  private readonly edgeByAddress = new Map<string, EdgeDeliveryServiceClient>();

  constructor(private readonly config: CommonConfig, private readonly creds: ChannelCredentials) {}

  private open<C extends Client>(ctor: new (a: string, c: ChannelCredentials, o?: object) => C, addrs: string[], identity: string): C {
    const c = makeClient(ctor, addrs, this.creds, this.config.tls ? identity : undefined);
    this.opened.push(c);
    return c;
  }

  chat(): ChatServiceClient { return this.open(ChatServiceClient, this.config.chatAddrs, "chat"); }
  accounts(): AccountServiceClient { return this.open(AccountServiceClient, this.config.chatAddrs, "chat"); }
  store(): MessageStoreServiceClient { return this.open(MessageStoreServiceClient, this.config.storeAddrs, "message-store"); }
  presence(): PresenceServiceClient { return this.open(PresenceServiceClient, this.config.presenceAddrs, "presence"); }
  notifier(): NotifierServiceClient { return this.open(NotifierServiceClient, this.config.notifierAddrs, "notifier"); }

  /** One channel per edge address, opened on first use. */
  edge(address: string): EdgeDeliveryServiceClient {
    let c = this.edgeByAddress.get(address);
    if (!c) {
      c = this.open(EdgeDeliveryServiceClient, [address], "edge");
      this.edgeByAddress.set(address, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.opened) c.close();
  }
}
