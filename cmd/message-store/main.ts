import { MessageStoreServiceService } from "../../gen/chat/internal/v1/store.js";
import { DEFAULT_PORTS, loadCommon } from "../../internal/config/config.js";
import { int } from "../../internal/config/env.js";
import { serve, service } from "../../internal/grpc/serve.js";
import { Logger } from "../../internal/log/logger.js";
import { runUntilSignal } from "../../internal/run/lifecycle.js";
import { startTelemetry } from "../../internal/telemetry/telemetry.js";
import type { Leadership } from "../../internal/discovery/discovery.js";
import { openDiscovery } from "../../internal/discovery/factory.js";
import { openStore, storeHasOneWriter, syncLogRetentionSeconds } from "../../internal/store/factory.js";
import { startLogTrimmer } from "../../internal/store/log-trimmer.js";
import { storeService } from "../../internal/store/service.js";

const port = int("STORE_GRPC_PORT", DEFAULT_PORTS.store, 0, 65535);
const config = loadCommon("message-store", port);
const log = new Logger("message-store", undefined, { instance: config.instanceId });

await runUntilSignal("message-store", log, config.shutdownTimeoutMs, async () => {
  const telemetry = startTelemetry("message-store", config.instanceId, config.metricsPort, log);
  const { discovery } = await openDiscovery(config, log);
  let leadership: Leadership | undefined;
  if (storeHasOneWriter(config)) {
    // One instance writes the message log (docs/cassandra-log.md); the others wait as standbys,
    // out of discovery, until the leader's lease goes.
    log.info("waiting to lead the message log");
    leadership = await discovery.lead("message-log", config.instanceId, () => exitForStandby(log, "lost the message log's election (lease expired)"));
  }
  const store = await openStore(config, (err) => log.warn("history cache unavailable; reading the store", { err }),
    () => exitForStandby(log, "another instance took the message log"), leadership);
  const trimmer = startLogTrimmer(store, syncLogRetentionSeconds(), log);
  const server = await serve(config, "message-store", port, log, [service(MessageStoreServiceService, storeService(store))]);
  await discovery.register("message-store", { id: config.instanceId, address: `${config.advertiseHost}:${server.port}` });
  log.info("message-store ready", { grpc: `${config.bindHost}:${server.port}`, profile: config.profile });
  return {
    async stop(deadlineMs) {
      // Leave the live set first: callers pick another instance for new calls.
      await discovery.deregister();
      await server.shutdown(deadlineMs);
      await discovery.close();
      await trimmer.stop();
      await store.close();
      await telemetry.shutdown();
    },
  };
});

/**
 * The log's writer was replaced: what this instance wrote since is never read (fencing), and
 * staying up would only refuse calls. It exits; its supervisor starts it again as a standby.
 */
function exitForStandby(log: Logger, why: string): never {
  log.error(`message-store stepping down: ${why}`);
  process.exit(75);
}
