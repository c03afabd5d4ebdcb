import { NotifierServiceService } from "../../gen/chat/internal/v1/notifier.js";
import { PUSH_PREVIEW_MAX } from "../../internal/notifier/preview.js";
import { openDiscovery } from "../../internal/discovery/factory.js";
import { DEFAULT_PORTS, loadCommon } from "../../internal/config/config.js";
import { int } from "../../internal/config/env.js";
import { serve, service } from "../../internal/grpc/serve.js";
import { Logger } from "../../internal/log/logger.js";
import { PushDispatcher } from "../../internal/notifier/dispatcher.js";
import { DEFAULT_MAX_DEVICES_PER_USER, DEFAULT_MAX_TOKEN_BYTES, notifierService } from "../../internal/notifier/grpc-service.js";
import { openTokenStore, pushProvidersFromEnv } from "../../internal/notifier/setup.js";
import { runUntilSignal } from "../../internal/run/lifecycle.js";
import { startTelemetry } from "../../internal/telemetry/telemetry.js";

const port = int("NOTIFIER_GRPC_PORT", DEFAULT_PORTS.notifier, 0, 65535);
const config = loadCommon("notifier", port);
const log = new Logger("notifier", undefined, { instance: config.instanceId });

await runUntilSignal("notifier", log, config.shutdownTimeoutMs, async () => {
  const telemetry = startTelemetry("notifier", config.instanceId, config.metricsPort, log);
  const providers = await pushProvidersFromEnv();
  const tokens = await openTokenStore(config);
  const dispatcher = new PushDispatcher({
    providers,
    tokens,
    previewLength: int("PUSH_PREVIEW_LENGTH", 120, 0, PUSH_PREVIEW_MAX),
    perDeviceRatePerMinute: int("PUSH_RATE_PER_MINUTE", 30, 1),
    maxAttempts: int("PUSH_MAX_ATTEMPTS", 5, 1),
    collapseWindowMs: int("PUSH_COLLAPSE_WINDOW_MS", 2_000, 0),
    // Pushes that know (docs/features.md): the defaults and why are where DispatcherOptions declares them.
    holdMs: int("PUSH_HOLD_MS", 3_000, 0, 60_000),
    holdActiveMs: int("PUSH_HOLD_ACTIVE_MS", 10_000, 0, 600_000),
    readUpdateWindowMs: int("PUSH_READ_UPDATE_WINDOW_MS", 1_000, 0, 60_000),
    onError: (msg, fields) => log.warn(msg, fields),
  });
  const { discovery } = await openDiscovery(config, log);
  const server = await serve(config, "notifier", port, log, [
    service(NotifierServiceService, notifierService(tokens, dispatcher, new Set(providers.keys()), {
      maxDevicesPerUser: int("PUSH_MAX_DEVICES_PER_USER", DEFAULT_MAX_DEVICES_PER_USER, 1, 1_000),
      maxTokenBytes: int("PUSH_TOKEN_MAX_BYTES", DEFAULT_MAX_TOKEN_BYTES, 64, 4_096),
    })),
  ]);
  await discovery.register("notifier", { id: config.instanceId, address: `${config.advertiseHost}:${server.port}` });
  log.info("notifier ready", { grpc: `${config.bindHost}:${server.port}`, providers: [...providers.keys()] });
  return {
    async stop(deadlineMs) {
      await discovery.deregister();
      await server.shutdown(deadlineMs);
      await discovery.close();
      await dispatcher.stop();
      for (const p of providers.values()) await p.close();
      await tokens.close();
      await telemetry.shutdown();
    },
  };
});
