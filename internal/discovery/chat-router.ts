import type { ChannelCredentials } from "@grpc/grpc-js";
import { ChatServiceClient } from "../../gen/chat/internal/v1/chat.js";
import { makeClient } from "../grpc/client.js";
import type { Discovery } from "./discovery.js";
import { ownerOf } from "./rendezvous.js";

/**
 * Sends each conversation's calls to its owner: the chat instance that wins the
 * rendezvous hash over the live set. Ownership is a routing choice, not a lock:
 * if two instances briefly both think they own a conversation (a watch is
 * late), the store's base_seq check refuses the stale one's append and it
 * retries on fresh state, so no position is ever written twice (P1).
 */
export class ChatRouter {
  private readonly clients = new Map<string, ChatServiceClient>();

  constructor(
    private readonly discovery: Discovery,
    private readonly creds: ChannelCredentials,
    private readonly serverName: string | undefined,
    /** Used when no instance is known yet (the channel itself then reports UNAVAILABLE). */
    private readonly fallback: ChatServiceClient,
  ) {
    discovery.watch("chat", (live) => {
      const keep = new Set(live.map((i) => i.address));
      for (const [address, c] of this.clients) if (!keep.has(address)) { c.close(); this.clients.delete(address); }
    });
  }

  for(conversationId: string): ChatServiceClient {
    const owner = ownerOf(conversationId, this.discovery.instances("chat"));
    if (!owner) return this.fallback;
    let c = this.clients.get(owner.address);
    if (!c) this.clients.set(owner.address, (c = makeClient(ChatServiceClient, [owner.address], this.creds, this.serverName)));
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
