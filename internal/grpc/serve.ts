import type { ChannelCredentials, ServiceDefinition } from "@grpc/grpc-js";
import type { CommonConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import { channelCredentials, serverCredentials, tlsFilesFor } from "./credentials.js";
import { implement, type AsyncService } from "./handler.js";
import { CALLER_POLICY } from "./caller-policy.js";
import type { MultiplexServer } from "./multiplex-server.js";
import { startGrpcServer, type RunningGrpcServer } from "./server.js";

export interface ServiceEntry<Def extends object> {
  definition: Def;
  impl: AsyncService<Def>;
}

/** Type-checks one service's handlers against its definition. */
export function service<Def extends object>(definition: Def, impl: AsyncService<Def>): ServiceEntry<Def> {
  return { definition, impl };
}

/**
 * Serves the services of `identity` on the configured host and port. With mTLS on,
 * the handshake refuses callers without a mesh certificate and each call is
 * refused (PERMISSION_DENIED) unless the caller's identity may call that method.
 */
export function serve(config: CommonConfig, identity: string, port: number, log: Logger, services: Array<ServiceEntry<object>>): Promise<RunningGrpcServer> {
  const creds = serverCredentials(config.tls ? tlsFilesFor(config.certsDir, identity) : null);
  const policy = config.tls ? (CALLER_POLICY[identity] ?? {}) : undefined;
  const multiplexes: MultiplexServer[] = [];
  return startGrpcServer({
    host: config.bindHost,
    port,
    credentials: creds,
    services: services.map((s) => ({ definition: s.definition as unknown as ServiceDefinition, implementation: implement(s.definition, s.impl, log, policy, multiplexes) })),
    multiplexes,
  });
}

export function clientCredentials(config: CommonConfig, identity: string): ChannelCredentials {
  return channelCredentials(config.tls ? tlsFilesFor(config.certsDir, identity) : null);
}
