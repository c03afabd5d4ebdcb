import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { isServerError, peerAttributes, statusName } from "../telemetry/rpc.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { methodOf } from "./caller-policy.js";
import { authorizePeer } from "./peer-identity.js";

export type UnaryHandler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>;

/** Async handlers for every method of a service definition (ts-proto's `XServiceService`). */
export type AsyncService<Def> = {
  [K in keyof Def]: Def[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? UnaryHandler<Req, Res>
    : never;
};

/**
 * Adapts async handlers to grpc-js callbacks: whatever a handler throws is
 * mapped once, in toServiceError, and logged when it is not a domain error.
 * With a caller `policy`, a caller whose certificate names an identity that may
 * not call the method is refused with PERMISSION_DENIED before the handler runs.
 */
export function implement<Def extends object>(def: Def, impl: AsyncService<Def>, log: Logger, policy?: Readonly<Record<string, readonly string[]>>): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  const metrics = ChatMetrics.get();
  for (const name of Object.keys(def) as Array<keyof Def & string>) {
    const handler = impl[name] as UnaryHandler<unknown, unknown>;
    const path = (def[name] as { path?: string }).path ?? `/${name}`;
    const [, svc = "", method = ""] = path.split("/");
    out[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const started = performance.now();
      // The caller's trace context arrives as W3C traceparent metadata.
      const carrier: Record<string, string> = {};
      for (const [k, v] of Object.entries(call.metadata.getMap())) if (typeof v === "string") carrier[k] = v;
      const parent = propagation.extract(context.active(), carrier);
      trace.getTracer("meshchat").startActiveSpan(`${svc}/${method}`, { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, ...peerAttributes(call.getPeer()) } }, parent, (span) => {
        const run = async () => {
          // With mTLS, only the services that should call this one get past here.
          if (policy) authorizePeer(call, policy, methodOf(path));
          return handler(call.request, call);
        };
        run().then(
          (res) => {
            span.setAttribute("rpc.grpc.status_code", 0);
            span.end();
            metrics.rpcServerDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, "rpc.grpc.status_code": statusName(0) });
            callback(null, res);
          },
          (err: unknown) => {
            const chatErr = err instanceof ChatError ? err : undefined;
            if (!chatErr || chatErr.code === ErrorCode.ERROR_CODE_INTERNAL) log.error("rpc failed", { method: name, err });
            const se = toServiceError(err);
            const code = se.code ?? 2;
            span.setAttribute("rpc.grpc.status_code", code);
            // The caller's mistakes (NOT_FOUND, PERMISSION_DENIED...) are not this server's failures.
            if (isServerError(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: se.details });
            span.end();
            metrics.rpcServerDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, "rpc.grpc.status_code": statusName(code) });
            metrics.error(ErrorCode[(chatErr ?? ChatError.from(err)).code] ?? "UNKNOWN", { "rpc.service": svc }, err);
            callback(se as never, null);
          },
        );
      });
    };
  }
  return out;
}
