import type { ChannelCredentials } from "@grpc/grpc-js";
import { ChatServiceClient } from "../../gen/chat/internal/v1/chat.js";
import type { Discovery } from "../discovery/discovery.js";
import { ownerOf } from "../discovery/rendezvous.js";
import { call, makeClient, type UnaryMethod } from "./client.js";
import { multiplex } from "./multiplex-client.js";

/** The header a conversation's calls carry: behind sidecars, Envoy's ring hash routes on it to the owner. */
export const CONVERSATION_HEADER = "x-conversation-id";

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
    /** Without one (behind a sidecar), every call goes to `fallback` and the sidecar picks the owner. */
    private readonly discovery: Discovery | undefined,
    private readonly creds: ChannelCredentials,
    private readonly serverName: string | undefined,
    /** Used when no instance is known yet (the channel itself then reports UNAVAILABLE). */
    private readonly fallback: ChatServiceClient,
  ) {
    discovery?.watch("chat", (live) => {
      const keep = new Set(live.map((i) => i.address));
      for (const [address, c] of this.clients) if (!keep.has(address)) { c.close(); this.clients.delete(address); }
    });
  }

  /** Calls a method of the conversation's owner, with the conversation header every routed call needs. */
  call<Req, Res>(conversationId: string, method: (c: ChatServiceClient) => UnaryMethod<Req, Res>, req: Req, timeoutMs?: number): Promise<Res> {
    const c = this.for(conversationId);
    return call(c, method(c), req, timeoutMs, { [CONVERSATION_HEADER]: conversationId });
  }

  /**
   * Calls a method about one user on the instance that owns the key `user:<id>` (the same
   * rendezvous, the same header for the sidecar's ring hash), so that one instance answers
   * a user's calls and its per-user cache is the one that is warm.
   */
  callForUser<Req, Res>(userId: string, method: (c: ChatServiceClient) => UnaryMethod<Req, Res>, req: Req, timeoutMs?: number): Promise<Res> {
    return this.call(`user:${userId}`, method, req, timeoutMs);
  }

  private for(conversationId: string): ChatServiceClient {
    const owner = this.discovery && ownerOf(conversationId, this.discovery.instances("chat"));
    if (!owner) return this.fallback;
    let c = this.clients.get(owner.address);
    if (!c) {
      c = makeClient(ChatServiceClient, [owner.address], this.creds, this.serverName);
      // One instance behind this channel: its calls share one Multiplex stream (multiplex.proto).
      multiplex(c);
      this.clients.set(owner.address, c);
    }
    return c;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
