import type { CommonConfig } from "../config/config.js";
import { serverCredentials, tlsFilesFor } from "./credentials.js";
import { startGrpcServer, type GrpcServiceEntry, type RunningGrpcServer } from "./server.js";
import { channelCredentials } from "./credentials.js";
import type { ChannelCredentials } from "@grpc/grpc-js";

/** Serves `services` on the configured host and port, with mTLS when enabled. */
export function serve(config: CommonConfig, identity: string, port: number, services: GrpcServiceEntry[]): Promise<RunningGrpcServer> {
  const creds = serverCredentials(config.tls ? tlsFilesFor(config.dataDir, identity) : null);
  return startGrpcServer({ host: config.bindHost, port, credentials: creds, services });
}

export function clientCredentials(config: CommonConfig, identity: string): ChannelCredentials {
  return channelCredentials(config.tls ? tlsFilesFor(config.dataDir, identity) : null);
}
