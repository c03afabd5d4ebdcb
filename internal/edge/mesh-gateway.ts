import type { ChatServiceClient, AccountServiceClient, Actor } from "../../gen/chat/internal/v1/chat.js";
import { EdgeDeliveryServiceClient } from "../../gen/chat/internal/v1/edge.js";
import type { NotifierServiceClient } from "../../gen/chat/internal/v1/notifier.js";
import type { PresenceServiceClient, Route } from "../../gen/chat/internal/v1/presence.js";
import type { MessageStoreServiceClient, ReadLogResponse } from "../../gen/chat/internal/v1/store.js";
import { ErrorCode, PresenceStatus, PresenceVisibility, PushProvider, type PrivacySettings, type BlockedUser, type Ack, type Conversation, type DeleteRequest, type EditRequest, type Event, type HistoryPage, type HistoryRequest, type PresenceUpdate, type Send, type Sent } from "../../gen/chat/v1/client.js";
import type { TokenVerifier } from "../auth/tokens.js";
import { ChatError } from "../errors/chat-error.js";
import { TickBatcher } from "../run/tick-batcher.js";
import { byPushShard, pushShardHeader } from "../grpc/push-shard.js";
import { call } from "../grpc/client.js";
import type { ChatRouter } from "../grpc/chat-router.js";
import { SessionLiveness } from "./session-liveness.js";

/**
 * The answer for `userIds`, in order: what presence said for the users shown, and for the
 * hidden ones what anyone offline with no last seen looks like.
 */
function withHidden(userIds: string[], hidden: Set<string>, shown: PresenceUpdate[]): PresenceUpdate[] {
  if (hidden.size === 0) return shown;
  const byId = new Map(shown.map((u) => [u.userId, u]));
  return userIds.map((id) => byId.get(id) ?? { userId: id, status: PresenceStatus.PRESENCE_STATUS_OFFLINE, lastActiveAtMs: 0 });
}

/** The mesh's service clients an edge calls (MeshClients gives them). */
export interface EdgeMeshClients {
  chat(): ChatServiceClient;
  accounts(): AccountServiceClient;
  store(): MessageStoreServiceClient;
  presence(): PresenceServiceClient;
  notifier(): NotifierServiceClient;
  edge(address: string): EdgeDeliveryServiceClient;
}

export interface MeshGatewayOptions {
  tokens: TokenVerifier;
  clients: EdgeMeshClients;
  /** Calls about one conversation, sent to its owner among the live chat instances. */
  owners: ChatRouter;
  /** Where this edge records the devices it holds (presence or etcd). */
  /** Closes a device's session if this edge holds it (false if another edge does). */
  kickLocal: (route: Route) => boolean;
  /** SESSION_CACHE_MS: how long a session found live is taken as live without asking again. */
  sessionCacheMs: number;
}

/** How long the edge gathers devices that came online before telling the notifier (a push collapse window is seconds). */
const ONLINE_WINDOW_MS = 50;

/**
 * The edge's gateway to the mesh: everything a session asks of the other
 * services, one method per client action. The edge holds no chat state: each
 * method is a gRPC call (batched per tick where many sessions ask at once),
 * with the session's user as the actor (the only identity the edge vouches for).
 */
export class MeshGateway {
  readonly tokens: TokenVerifier;
  /** Whether the log-in session of a token is still live (asked of the store, briefly cached). */
  readonly liveness: SessionLiveness;
  private readonly chat: ChatServiceClient;
  private readonly accounts: AccountServiceClient;
  private readonly store: MessageStoreServiceClient;
  private readonly presence: PresenceServiceClient;
  private readonly notifier: NotifierServiceClient;
  private readonly edgeClient: (address: string) => EdgeDeliveryServiceClient;
  private readonly kickLocal: (route: Route) => boolean;
  private readonly owners: ChatRouter;

  constructor(opts: MeshGatewayOptions) {
    this.tokens = opts.tokens;
    this.chat = opts.clients.chat();
    this.accounts = opts.clients.accounts();
    this.store = opts.clients.store();
    this.presence = opts.clients.presence();
    this.notifier = opts.clients.notifier();
    this.edgeClient = (address) => opts.clients.edge(address);
    this.kickLocal = opts.kickLocal;
    this.owners = opts.owners;
    this.liveness = new SessionLiveness((ids) => this.checkSessions(ids), opts.sessionCacheMs);
  }

  /** The Hellos of one tick: one presence call (a burst of reconnecting devices costs one RPC per tick, not one each). */
  private readonly connects = new TickBatcher(async (connects: Array<{ route: Route; takeover: boolean }>) =>
    (await call(this.presence, this.presence.connectBatch, { connects })).results);
  /**
   * One UserOnline per push shard: each reaches the notifier replica that holds those users'
   * pushes. Nobody waits on it, and cut 16 ways a tick's few Hellos made a call of one user
   * each (the notifier spent ~170 µs per session connected), so it gathers 50 ms of them.
   */
  private readonly online = new TickBatcher(async (userIds: string[]) => {
    await Promise.all([...byPushShard(new Set(userIds), (u) => u)].map(([shard, mine]) =>
      call(this.notifier, this.notifier.userOnline, { userId: "", userIds: mine }, 5_000, pushShardHeader(shard))));
    return userIds;
  }, 1_000, ONLINE_WINDOW_MS);

  /**
   * The log heads asked in one tick, in one store call (500 users a call, as the head check):
   * a reconnect storm's catch-ups first learn whether there is anything to read at all.
   */
  private readonly heads = new TickBatcher((userIds: string[]) => this.logHeads(userIds, true), 500);

  /**
   * Users whose devices left presence in one tick, in one store call: their route versions move,
   * so chat stops using the routes it holds for them (docs/performance.md, "The route cache").
   */
  private readonly routesChanged = new TickBatcher(async (userIds: string[]) => {
    await call(this.store, this.store.routesChanged, { userIds: [...new Set(userIds)] }, 10_000);
    return userIds;
  }, 1_000);

  /** For each log-in session id, in order: is it live? (SessionLiveness batches and caches these.) */
  async checkSessions(sessionIds: string[]): Promise<boolean[]> {
    return (await call(this.store, this.store.checkSessions, { sessionIds }, 10_000)).live;
  }

  async send(actor: Actor, send: Send): Promise<Sent> {
    return (await this.owners.call(send.conversationId, (c) => c.send, { actor, send }, 20_000)).sent!;
  }
  async typing(actor: Actor, conversationId: string, expiresInMs: number): Promise<void> {
    await this.owners.call(conversationId, (c) => c.typing, { actor, conversationId, expiresInMs }, 5_000);
  }
  async edit(actor: Actor, edit: EditRequest): Promise<void> {
    await this.owners.call(edit.conversationId, (c) => c.edit, { actor, edit }, 15_000);
  }
  async delete(actor: Actor, del: DeleteRequest): Promise<void> {
    await this.owners.call(del.conversationId, (c) => c.delete, { actor, delete: del }, 15_000);
  }
  async ack(actor: Actor, ack: Ack): Promise<void> {
    await this.owners.call(ack.conversationId, (c) => c.ack, { actor, ack }, 5_000);
  }
  async history(userId: string, request: HistoryRequest): Promise<HistoryPage> {
    return (await call(this.store, this.store.history, { userId, request })).page!;
  }
  /** `catchUp`: for devices' catch-ups, whose routes presence has just taken (raises their route versions). */
  async logHeads(userIds: string[], catchUp = false): Promise<number[]> {
    return (await call(this.store, this.store.getLogHeads, { userIds, catchUp }, 10_000)).heads;
  }
  /** The user's log head for a device's catch-up, asked together with every other asked in the same tick. */
  logHead(userId: string): Promise<number> {
    return this.heads.call(userId);
  }
  /** A page of the user's log; `more` when it stopped at its count or byte bound. */
  async readLog(userId: string, afterPos: number, limit: number): Promise<ReadLogResponse> {
    return call(this.store, this.store.readLog, { userId, afterPos, limit }, 15_000);
  }
  async listConversations(userId: string): Promise<Conversation[]> {
    return (await call(this.store, this.store.listConversations, { userId })).conversations;
  }
  async openDirect(actor: Actor, username: string): Promise<Conversation> {
    return (await call(this.chat, this.chat.openDirect, { actor, username })).conversation!;
  }
  async createGroup(actor: Actor, title: string, usernames: string[]): Promise<Conversation> {
    return (await call(this.chat, this.chat.createGroup, { actor, title, usernames })).conversation!;
  }
  async changeMembership(actor: Actor, conversationId: string, username: string, adding: boolean): Promise<Conversation> {
    const req = { actor, conversationId, username };
    return (await this.owners.call(conversationId, (c) => (adding ? c.addMember : c.removeMember), req, 5_000)).conversation!;
  }
  async setMuted(actor: Actor, conversationId: string, muted: boolean): Promise<void> {
    // The owner caches who muted what (push decisions): it must see the change.
    await this.owners.call(conversationId, (c) => c.setMuted, { actor, conversationId, muted });
  }
  async registerPushToken(actor: Actor, provider: PushProvider, token: string): Promise<void> {
    if (provider === PushProvider.PUSH_PROVIDER_UNSPECIFIED || provider === PushProvider.UNRECOGNIZED) throw ChatError.invalid("provider is required");
    if (token.length === 0 || token.length > 4096) throw ChatError.invalid("token must be 1-4096 characters");
    await call(this.notifier, this.notifier.registerToken, { userId: actor.userId, deviceId: actor.deviceId, provider, token });
  }
  async unregisterPushToken(actor: Actor): Promise<void> {
    await call(this.notifier, this.notifier.unregisterToken, { userId: actor.userId, deviceId: actor.deviceId });
  }
  async presenceConnect(route: Route, takeover: boolean): Promise<{ replaced?: Route }> {
    const res = await this.connects.call({ route, takeover });
    if (res.error !== ErrorCode.ERROR_CODE_UNSPECIFIED) throw new ChatError(res.error, res.message);
    return res.response ?? {};
  }
  /** A device came online: pending collapsed pushes for the user are moot. */
  userOnline(userId: string): void {
    this.online.call(userId).catch(() => {});
  }
  /**
   * The route goes from presence, and then the user's route version moves (after, so that chat,
   * seeing it move, fetches routes without this one). A failure of either leaves a route chat
   * may use until its cache entry's age runs out (ROUTE_CACHE_MS), as presence keeps a route
   * whose disconnect failed until its heartbeats lapse.
   */
  async presenceDisconnect(route: Route): Promise<void> {
    try {
      await call(this.presence, this.presence.disconnect, { route });
    } finally {
      // Not awaited: the same device's next Hello waits on this disconnect, and must not wait on
      // the store (its own catch-up raises the version anyway).
      this.routesChanged.call(route.userId).catch(() => {});
    }
  }
  /** Routes presence had lost and took back from this heartbeat are changes, as a connect's are. */
  async presenceHeartbeat(routes: Route[]): Promise<void> {
    const { restoredUserIds } = await call(this.presence, this.presence.heartbeat, { routes });
    for (const u of restoredUserIds) this.routesChanged.call(u).catch(() => {});
  }
  /** Users who hide their presence are answered as offline with no last seen, and not subscribed to. */
  async presenceSubscribe(subscriber: Route, userIds: string[]): Promise<PresenceUpdate[]> {
    const hidden = await this.hiddenAmong({ userId: subscriber.userId, deviceId: subscriber.deviceId }, userIds);
    const shown = userIds.filter((id) => !hidden.has(id));
    return withHidden(userIds, hidden, (await call(this.presence, this.presence.subscribe, { subscriber, userIds: shown })).users);
  }
  async presenceQuery(actor: Actor, userIds: string[]): Promise<PresenceUpdate[]> {
    const hidden = await this.hiddenAmong(actor, userIds);
    const shown = userIds.filter((id) => !hidden.has(id));
    return withHidden(userIds, hidden, shown.length > 0 ? (await call(this.presence, this.presence.query, { userIds: shown })).users : []);
  }
  async getPrivacy(actor: Actor): Promise<PrivacySettings> {
    return (await call(this.chat, this.chat.getPrivacy, { actor })).settings!;
  }
  async setPrivacy(actor: Actor, settings: PrivacySettings): Promise<PrivacySettings> {
    const now = (await call(this.chat, this.chat.setPrivacy, { actor, settings })).settings!;
    // Subscriptions made while it was shown end too (a failure here fails the frame: resending it is safe).
    if (now.presence === PresenceVisibility.PRESENCE_VISIBILITY_NOBODY) await call(this.presence, this.presence.unwatch, { userId: actor.userId, watcherUserId: "" });
    return now;
  }
  /**
   * Blocks or unblocks by username. A block also ends the subscriptions the two hold to each
   * other's presence (from then on each is answered offline with no last seen, and not subscribed
   * to); a failure there fails the frame, and resending it is safe.
   */
  async setBlocked(actor: Actor, username: string, blocked: boolean): Promise<void> {
    const { userId } = await call(this.chat, this.chat.setBlocked, { actor, username, blocked });
    if (!blocked) return;
    await call(this.presence, this.presence.unwatch, { userId, watcherUserId: actor.userId });
    await call(this.presence, this.presence.unwatch, { userId: actor.userId, watcherUserId: userId });
  }
  async listBlocked(actor: Actor): Promise<BlockedUser[]> {
    return (await call(this.chat, this.chat.listBlocked, { actor })).users;
  }
  /** Answers the log-in sessions of the account, all ended now. */
  async deleteAccount(claims: { userId: string; username: string; sessionId: string }, password: string, erase: boolean): Promise<string[]> {
    // Erasure deletes each message for everyone: a long account may take a while.
    const res = await call(this.accounts, this.accounts.deleteAccount, { ...claims, password, erase }, 120_000);
    return res.endedSessionIds;
  }

  /** Closes a device's older session, on this edge or another. */
  async kick(route: Route): Promise<void> {
    if (this.kickLocal(route)) return;
    const edge = this.edgeClient(route.edgeAddress);
    await call(edge, edge.kick, { userId: route.userId, deviceId: route.deviceId, sessionId: route.sessionId }).catch(() => {});
  }

  /**
   * Which of `userIds` hide their presence from the actor; PERMISSION_DENIED if any is not a
   * contact. Chat decides who may see whom (PresenceAccess), before presence is asked, so
   * timing does not tell an unknown user from a hidden one.
   */
  private async hiddenAmong(actor: Actor, userIds: string[]): Promise<Set<string>> {
    const res = await this.owners.callForUser(actor.userId, (c) => c.presenceAccess, { actor, userIds });
    return new Set(res.hiddenUserIds);
  }
}
