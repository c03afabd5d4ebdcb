import { EdgeDeliveryServiceService } from "../../gen/chat/internal/v1/edge.js";
import { verifyingKeyFiles } from "../../internal/auth/keys.js";
import { TokenVerifier } from "../../internal/auth/tokens.js";
import { DEFAULT_PORTS, loadCommon } from "../../internal/config/config.js";
import { loadHttpLimits } from "../../internal/config/http-limits.js";
import { bool, ConfigError, int, str } from "../../internal/config/env.js";
import { openDiscovery } from "../../internal/discovery/factory.js";
import { MeshGateway } from "../../internal/edge/mesh-gateway.js";
import { DeviceCookies } from "../../internal/edge/device-cookie.js";
import { openRateLimiter } from "../../internal/edge/rate-limiter.js";
import { defaultSendBytesBurst, largestTextBytes } from "../../internal/edge/send-guard.js";
import { EdgeServer, legalFrameBytes } from "../../internal/edge/server.js";
import { MeshClients } from "../../internal/grpc/mesh-clients.js";
import { clientCredentials, serve, service } from "../../internal/grpc/serve.js";
import { Logger } from "../../internal/log/logger.js";
import { runUntilSignal } from "../../internal/run/lifecycle.js";
import { startTelemetry } from "../../internal/telemetry/telemetry.js";

const grpcPort = int("EDGE_GRPC_PORT", DEFAULT_PORTS.edge, 0, 65535);
const config = loadCommon("edge", grpcPort);
const log = new Logger("edge", undefined, { instance: config.instanceId });
const maxTextLength = int("MAX_TEXT_LENGTH", 100_000, 1, 10_000_000);
const edgeConfig = {
  httpPort: int("EDGE_HTTP_PORT", DEFAULT_PORTS.edgeHttp, 0, 65535),
  maxFrameBytes: int("MAX_FRAME_BYTES", legalFrameBytes(maxTextLength), 1024),
  readBytesPerS: int("READ_BYTES_PER_S", 512 * 1024, 1024),
  webRoot: str("WEB_ROOT", "web/dist"),
  debugEndpoints: bool("DEBUG_ENDPOINTS", false),
  helloTimeoutMs: int("HELLO_TIMEOUT_MS", 10_000, 100),
  heartbeatIntervalMs: int("HEARTBEAT_INTERVAL_MS", 15_000, 1_000),
  sendRate: int("SEND_RATE", 50, 1),
  sendBurst: int("SEND_BURST", 200, 1),
  sendBytesPerS: int("SEND_BYTES_PER_S", 256 * 1024, 1),
  // Below the largest legal message, that message could never be sent: refused at boot.
  sendBytesBurst: int("SEND_BYTES_BURST", defaultSendBytesBurst(maxTextLength), largestTextBytes(maxTextLength)),
  frameRate: int("FRAME_RATE", 200, 1),
  frameBurst: int("FRAME_BURST", 1_000, 1),
  maxQueuedFrames: int("MAX_QUEUED_FRAMES", 64, 1, 10_000),
  maxQueuedBytes: int("MAX_QUEUED_BYTES", 4 * 1024 * 1024, 64 * 1024),
  maxBufferedBytes: int("MAX_BUFFERED_BYTES", 8 * 1024 * 1024, 64 * 1024),
  maxTextLength,
  syncPageSize: int("SYNC_PAGE_SIZE", 5_000, 1, 5_000),
  maxPresenceSubscriptions: int("PRESENCE_MAX_SUBSCRIPTIONS", 200, 1, 10_000),
  headCheckIntervalMs: int("HEAD_CHECK_INTERVAL_MS", 60_000, 0, 3_600_000),
  sessionCheckIntervalMs: int("SESSION_CHECK_INTERVAL_MS", 30_000, 0, 3_600_000),
  memorySettle: {
    afterConnects: int("MEMORY_SETTLE_AFTER_CONNECTS", 1_000, 0),
    checkMs: int("MEMORY_SETTLE_CHECK_MS", 10_000, 100, 3_600_000),
    minIntervalMs: int("MEMORY_SETTLE_MIN_INTERVAL_MS", 60_000, 0, 86_400_000),
  },
  typingThrottleMs: int("TYPING_THROTTLE_MS", 2_000, 100, 60_000),
  typingExpiryMs: int("TYPING_EXPIRY_MS", 6_000, 1_000, 60_000),
  ...loadHttpLimits(config.dataDir),
};
// An indicator that expires before the next may be sent would flicker while someone types.
if (edgeConfig.typingExpiryMs <= edgeConfig.typingThrottleMs) throw new ConfigError(`TYPING_EXPIRY_MS (${edgeConfig.typingExpiryMs}) must be above TYPING_THROTTLE_MS (${edgeConfig.typingThrottleMs})`);

// SESSION_CACHE_MS: a session found live at Hello is taken as live this long without asking the
// store again (a device reconnecting in a loop). Bounds how long an ended session's access token
// still opens WebSockets on edges other than the one that ended it. Default 5000.
const sessionCacheMs = int("SESSION_CACHE_MS", 5_000, 0, 300_000);

await runUntilSignal("edge", log, config.shutdownTimeoutMs, async () => {
  const telemetry = startTelemetry("edge", config.instanceId, config.metricsPort, log);
  const cookies = DeviceCookies.load(edgeConfig.deviceCookieKeyFile, edgeConfig.deviceCookieMaxAgeDays, edgeConfig.publicHttps);
  const limiter = openRateLimiter(config, (err) => log.warn("rate limiter unavailable; letting requests through", { err }));
  const verifier = await TokenVerifier.fromFiles(verifyingKeyFiles(config.profile, config.dataDir));
  const { discovery } = await openDiscovery(config, log);
  const mesh = new MeshClients(config, clientCredentials(config, "edge"), discovery);
  const chats = mesh.chatRouter();
  // The gRPC port is bound first: the advertised route must name the real port.
  let edge!: EdgeServer;
  const grpc = await serve(config, "edge", grpcPort, log, [
    service(EdgeDeliveryServiceService, { deliver: (r, c) => edge.deliveryService().deliver(r, c), kick: (r, c) => edge.deliveryService().kick(r, c), endSessions: (r, c) => edge.deliveryService().endSessions(r, c) }),
  ]);
  const gateway = new MeshGateway({ tokens: verifier, clients: mesh, owners: chats, kickLocal: (r) => edge.kickLocal(r), sessionCacheMs });
  const grpcAddress = `${config.advertiseHost}:${grpc.port}`;
  edge = new EdgeServer(edgeConfig, gateway, mesh.accounts(), { edgeId: config.instanceId, grpcAddress }, log, { limiter, cookies });
  await discovery.register("edge", { id: config.instanceId, address: grpcAddress });
  const httpPort = await edge.listen(config.bindHost);
  log.info("edge ready", { ws: `ws://${config.bindHost}:${httpPort}/v1/ws`, http: `http://${config.bindHost}:${httpPort}`, grpc: `${config.bindHost}:${grpc.port}` });
  return {
    async stop(deadlineMs) {
      await discovery.deregister();
      grpc.setServing(false);
      await edge.drain(Math.floor(deadlineMs / 2));
      await grpc.shutdown(Math.floor(deadlineMs / 2));
      // Revoking the lease drops every route this edge still held at once.
      await discovery.close();
      mesh.close();
      await limiter.close();
      await telemetry.shutdown();
    },
  };
});
