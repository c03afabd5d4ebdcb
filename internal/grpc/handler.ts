import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { toServiceError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { methodOf } from "./caller-policy.js";
import { authorizePeer } from "./peer-identity.js";
import { MultiplexServer, type MultiplexedMethod } from "./multiplex-server.js";
import { serveTraced } from "./serve-traced.js";

export type UnaryHandler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>;

/**
 * Handlers for the unary methods of a service definition (ts-proto's `XServiceService`). A
 * service's Multiplex stream needs none: it runs these (multiplex.proto).
 */
export type AsyncService<Def> = {
  [K in keyof Def as Def[K] extends { requestStream: true } ? never : K]: Def[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? UnaryHandler<Req, Res>
    : never;
};

/** A unary method's definition as ts-proto writes it. */
interface MethodSpec {
  path?: string;
  requestStream?: boolean;
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(r: unknown): Buffer;
}

/**
 * Adapts async handlers to grpc-js callbacks: whatever a handler throws is
 * mapped once, in toServiceError, and logged when it is not a domain error.
 * With a caller `policy`, a caller whose certificate names an identity that may
 * not call the method is refused with PERMISSION_DENIED before the handler runs.
 * A `Multiplex` stream in the definition is served by a MultiplexServer over the
 * same handlers, each call checked against the policy as its unary method; it is
 * added to `multiplexes`, which the server drains before it stops.
 */
export function implement<Def extends object>(def: Def, impl: AsyncService<Def>, log: Logger, policy?: Readonly<Record<string, readonly string[]>>, multiplexes?: MultiplexServer[]): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  const multiplexed = new Map<string, MultiplexedMethod>();
  let streamName: string | undefined;
  for (const name of Object.keys(def) as Array<keyof Def & string>) {
    const spec = def[name] as unknown as MethodSpec;
    const path = spec.path ?? `/${name}`;
    const [, svc = "", method = ""] = path.split("/");
    if (spec.requestStream) {
      if (method !== "Multiplex") throw new Error(`${path}: the only streams served are Multiplex streams`);
      streamName = name;
      continue;
    }
    const handler = (impl as Record<string, UnaryHandler<unknown, unknown>>)[name]!;
    multiplexed.set(method, {
      name: { service: svc, method },
      run: async (payload, call) => {
        if (policy) authorizePeer(call, policy, methodOf(path));
        const res = await handler(spec.requestDeserialize(payload), call as never);
        return spec.responseSerialize(res);
      },
    });
    out[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      // The caller's trace context arrives as W3C traceparent metadata.
      const carrier: Record<string, string> = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) if (typeof v === "string") carrier[k] = v;
      void serveTraced({ service: svc, method }, call.getPeer(), carrier, log, async () => {
        // With mTLS, only the services that should call this one get past here.
        if (policy) authorizePeer(call, policy, methodOf(path));
        return handler(call.request, call);
      }).then((r) => ("ok" in r ? callback(null, r.ok) : callback(toServiceError(r.err) as never, null)));
    };
  }
  if (streamName) {
    const server = new MultiplexServer(multiplexed, log);
    multiplexes?.push(server);
    out[streamName] = server.handler;
  }
  return out;
}
