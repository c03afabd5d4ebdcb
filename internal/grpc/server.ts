import { Server, type ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { GRPC_MAX_MESSAGE_BYTES } from "./message-size.js";
import type { MultiplexServer } from "./multiplex-server.js";
import { cachePeerCertificates } from "./peer-identity.js";

export interface GrpcServiceEntry {
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
}

export interface RunningGrpcServer {
  server: Server;
  port: number;
  health: HealthImplementation;
  setServing(serving: boolean): void;
  /** Graceful: refuse new calls, wait for running ones up to the deadline, then force. */
  shutdown(deadlineMs: number): Promise<void>;
}

/** Starts a gRPC server with grpc.health.v1 on host:port (0 = any free port). */
export async function startGrpcServer(opts: {
  host: string;
  port: number;
  credentials: ServerCredentials;
  services: GrpcServiceEntry[];
  /** The services' Multiplex streams: ended, each once its calls are answered, before the server stops. */
  multiplexes?: MultiplexServer[];
}): Promise<RunningGrpcServer> {
  cachePeerCertificates();
  const server = new Server({
    "grpc.max_receive_message_length": GRPC_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": GRPC_MAX_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_permit_without_calls": 1,
  });
  const health = new HealthImplementation({ "": "NOT_SERVING" });
  health.addToServer(server);
  for (const s of opts.services) server.addService(s.definition, s.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${opts.host}:${opts.port}`, opts.credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const setServing = (serving: boolean) => health.setStatus("", serving ? "SERVING" : "NOT_SERVING");
  setServing(true);
  return {
    server,
    port,
    health,
    setServing,
    shutdown: (deadlineMs) =>
      new Promise<void>((resolve) => {
        setServing(false);
        const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, deadlineMs);
        // A stream stays open until it is ended: end them (callers open new ones elsewhere), then stop.
        void Promise.all((opts.multiplexes ?? []).map((m) => m.drain())).then(() => server.tryShutdown(() => { clearTimeout(timer); resolve(); }));
      }),
  };
}
