import { AccountServiceService, ChatServiceService } from "../../gen/chat/internal/v1/chat.js";
import { signingKeyFile } from "../../internal/auth/keys.js";
import { TokenIssuer } from "../../internal/auth/tokens.js";
import { AccountDeletion } from "../../internal/chat/account-deletion.js";
import { accountService } from "../../internal/chat/accounts.js";
import { Sessions } from "../../internal/chat/sessions.js";
import { Fanout } from "../../internal/chat/fanout.js";
import { DEFAULT_CACHE_SIZE } from "../../internal/chat/directory.js";
import { ChatCore, chatService } from "../../internal/chat/service.js";
import { SEND_QUEUE_BYTES, SEND_QUEUE_BYTES_PER_SENDER } from "../../internal/chat/sequencer.js";
import { DEFAULT_PORTS, loadCommon } from "../../internal/config/config.js";
import { int } from "../../internal/config/env.js";
import { MeshClients } from "../../internal/grpc/mesh-clients.js";
import { clientCredentials, serve, service } from "../../internal/grpc/serve.js";
import { Logger } from "../../internal/log/logger.js";
import { openDiscovery } from "../../internal/discovery/factory.js";
import { LocalSignals } from "../../internal/chat/directory-signals.js";
import { RedisDirectorySignals } from "../../internal/chat/directory-signals-redis.js";
import { watchOwnership } from "../../internal/chat/ownership.js";
import { PresenceRouteIndex } from "../../internal/routes/route-index-presence.js";
import { RouteCache } from "../../internal/routes/route-cache.js";
import { runUntilSignal } from "../../internal/run/lifecycle.js";
import { startTelemetry } from "../../internal/telemetry/telemetry.js";

const port = int("CHAT_GRPC_PORT", DEFAULT_PORTS.chat, 0, 65535);
const config = loadCommon("chat", port);
const log = new Logger("chat", undefined, { instance: config.instanceId });
const chatConfig = {
  maxGroupMembers: int("MAX_GROUP_MEMBERS", 100, 2, 100_000),
  maxTextLength: int("MAX_TEXT_LENGTH", 100_000, 1, 10_000_000),
  receiptFlushMs: int("RECEIPT_FLUSH_MS", 100, 0, 60_000),
  // One transaction at a time suits PGlite; a server-backed store takes several batches at once.
  storeWritesInFlight: int("STORE_WRITES_IN_FLIGHT", config.profile === "embedded" ? 1 : 8, 1, 64),
  conversationCacheSize: int("CHAT_CONVERSATION_CACHE", DEFAULT_CACHE_SIZE, 100),
  contactsCacheMs: int("CONTACTS_CACHE_MS", 30_000, 0, 3_600_000),
  maxQueuedBytesPerSender: int("SEND_QUEUE_BYTES_PER_SENDER", SEND_QUEUE_BYTES_PER_SENDER, 1_000_000),
  maxQueuedBytes: int("SEND_QUEUE_BYTES", SEND_QUEUE_BYTES, 1_000_000),
  maxGroupsPerDay: int("MAX_GROUPS_PER_DAY", 50, 0, 1_000_000),
  editWindowS: int("EDIT_WINDOW_S", 86_400, 1, 10 * 365 * 86_400),
  maxEditsPerMessage: int("MAX_EDITS_PER_MESSAGE", 10, 1, 1_000),
  deleteWindowS: int("DELETE_WINDOW_S", 172_800, 1, 10 * 365 * 86_400),
};
// ACCESS_TOKEN_TTL_S: an access token's life, 15 min by default; REFRESH_TOKEN_TTL_S: a refresh
// token's, 30 days (each refresh starts a new one). See docs/security.md, "Sessions".
const accessTtlSeconds = int("ACCESS_TOKEN_TTL_S", 15 * 60, 1, 24 * 3600);
const sessionLifetimes = {
  refreshTtlSeconds: int("REFRESH_TOKEN_TTL_S", 30 * 24 * 3600, 60, 365 * 24 * 3600),
  // MAX_SESSIONS_PER_USER: live sessions per account, the least recently used ended past it. Default 20; 0 = no cap.
  maxSessionsPerUser: int("MAX_SESSIONS_PER_USER", 20, 0, 10_000),
};

await runUntilSignal("chat", log, config.shutdownTimeoutMs, async () => {
  const telemetry = startTelemetry("chat", config.instanceId, config.metricsPort, log);
  const issuer = await TokenIssuer.fromFile(signingKeyFile(config.profile, config.dataDir), accessTtlSeconds);
  const { discovery } = await openDiscovery(config, log);
  const mesh = new MeshClients(config, clientCredentials(config, "chat"), discovery);
  const store = mesh.store();
  // Routes live with presence, which records every connection and shards over Redis (Cluster):
  // etcd keeps membership, leases and ownership only (docs/scaling.md, "Routes").
  let liveEdges = new Set(discovery.instances("edge").map((i) => i.id));
  discovery.watch("edge", (now) => { liveEdges = new Set(now.map((i) => i.id)); });
  const edgeIsLive = discovery.dynamic ? (edgeId: string) => liveEdges.has(edgeId) : undefined;
  // ROUTE_CACHE_MS: how long a user's routes are reused while the store answers the same route
  // version (0: ask presence for every delivery); docs/performance.md, "The route cache".
  const routes = new RouteCache(new PresenceRouteIndex(mesh.presence(), edgeIsLive), {
    ttlMs: int("ROUTE_CACHE_MS", 10_000, 0, 600_000),
    maxUsers: int("ROUTE_CACHE_USERS", 100_000, 100),
    edgeIsLive,
  });
  // NOTIFY_BATCH_MS: how long chat gathers messages, uses and reads before it calls the notifier
  // (once per window, once per push shard behind sidecars, where shards live on several replicas).
  const fanout = new Fanout(routes, { get: (a) => mesh.edge(a, true) }, mesh.notifier(), log, { windowMs: int("NOTIFY_BATCH_MS", 100, 0, 1_000), callPerShard: config.meshSidecar });
  // Several chat instances (production): membership and mute changes reach every instance's cache at once.
  const signals = config.profile === "embedded"
    ? new LocalSignals()
    : new RedisDirectorySignals(config.redisUrl, config.redisPrefix, (err) => log.warn("directory signals: redis unavailable", { err }));
  const core = new ChatCore(store, fanout, chatConfig, log, signals);
  const server = await serve(config, "chat", port, log, [
    service(ChatServiceService, chatService(core)),
    service(AccountServiceService, accountService(store, new Sessions(store, issuer, sessionLifetimes), new AccountDeletion({ store, core, routes, edges: { get: (a) => mesh.edge(a) }, notifier: mesh.notifier(), log }))),
  ]);
  const self = { id: config.instanceId, address: `${config.advertiseHost}:${server.port}` };
  watchOwnership(discovery, self, core, log);
  await discovery.register("chat", self);
  log.info("chat ready", { grpc: `${config.bindHost}:${server.port}` });
  return {
    async stop(deadlineMs) {
      // Leaving the live set moves ownership away before the drain starts.
      await discovery.deregister();
      server.setServing(false);
      // Every send already accepted is written and acknowledged before the server goes.
      await core.drain();
      await server.shutdown(deadlineMs);
      await routes.close();
      await signals.close();
      await discovery.close();
      mesh.close();
      await telemetry.shutdown();
    },
  };
});
