import { PresenceServiceService } from "../../gen/chat/internal/v1/presence.js";
import { DEFAULT_PORTS, loadCommon } from "../../internal/config/config.js";
import { int } from "../../internal/config/env.js";
import { call } from "../../internal/grpc/client.js";
import { openDiscovery } from "../../internal/discovery/factory.js";
import { MeshClients } from "../../internal/grpc/mesh-clients.js";
import { clientCredentials, serve, service } from "../../internal/grpc/serve.js";
import { Logger } from "../../internal/log/logger.js";
import { openPresence } from "../../internal/presence/factory.js";
import { PresencePublisher } from "../../internal/presence/publisher.js";
import { presenceService } from "../../internal/presence/service.js";
import { runUntilSignal } from "../../internal/run/lifecycle.js";
import { startTelemetry } from "../../internal/telemetry/telemetry.js";

const port = int("PRESENCE_GRPC_PORT", DEFAULT_PORTS.presence, 0, 65535);
const config = loadCommon("presence", port);
const log = new Logger("presence", undefined, { instance: config.instanceId });
const presenceConfig = {
  timeoutMs: int("PRESENCE_TIMEOUT_MS", 45_000, 1_000),
  graceMs: int("PRESENCE_GRACE_MS", 5_000, 0),
  maxDevicesPerUser: int("MAX_DEVICES_PER_USER", 10, 0, 10_000),
};

/** PRESENCE_PUBLISH_BATCH_MS: changes gather this long before each edge gets one call. Default 100. */
const publishBatchMs = int("PRESENCE_PUBLISH_BATCH_MS", 100, 0, 10_000);

await runUntilSignal("presence", log, config.shutdownTimeoutMs, async () => {
  const telemetry = startTelemetry("presence", config.instanceId, config.metricsPort, log);
  const { discovery } = await openDiscovery(config, log);
  const mesh = new MeshClients(config, clientCredentials(config, "presence"), discovery);
  // Status changes go to the edges holding the subscribers: batched per edge, debounced per user.
  const publisher = new PresencePublisher(async (address, presence) => {
    const edge = mesh.edge(address);
    await call(edge, edge.deliver, { events: [], targets: [], receipts: [], presence, traceparent: "", typing: [] });
  }, publishBatchMs, (err) => log.warn("presence publish failed", { err }));
  const presence = await openPresence(config, presenceConfig, (update, subscribers) => publisher.publish(update, subscribers), (what, err) => log.warn(what, { err }));
  const server = await serve(config, "presence", port, log, [service(PresenceServiceService, presenceService(presence))]);
  await discovery.register("presence", { id: config.instanceId, address: `${config.advertiseHost}:${server.port}` });
  log.info("presence ready", { grpc: `${config.bindHost}:${server.port}` });
  return {
    async stop(deadlineMs) {
      await discovery.deregister();
      await server.shutdown(deadlineMs);
      await discovery.close();
      await presence.close();
      await publisher.flush();
      mesh.close();
      await telemetry.shutdown();
    },
  };
});
