import type { sendUnaryData, ServerDuplexStream, ServerUnaryCall, UntypedServiceImplementation } from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { isServerError, peerAttributes, statusName } from "../telemetry/rpc.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { toServiceError } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { methodOf } from "./caller-policy.js";
import { authorizePeer } from "./peer-identity.js";

export type UnaryHandler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>;

/** A bidirectional stream's handler; the caller's identity has been checked before it runs. */
export type StreamHandler<Req, Res> = (call: ServerDuplexStream<Req, Res>, log: Logger) => void;

/** Handlers for every method of a service definition (ts-proto's `XServiceService`): async for a unary one. */
export type AsyncService<Def> = {
  [K in keyof Def]: Def[K] extends { requestStream: true; requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
    ? StreamHandler<Req, Res>
    : Def[K] extends { requestDeserialize: (b: Buffer) => infer Req; responseSerialize: (r: infer Res) => Buffer }
      ? UnaryHandler<Req, Res>
      : never;
};

/** One server call as the traces and metrics see it: "chat.internal.v1.ChatService" and "Send". */
export interface ServerCallName {
  service: string;
  method: string;
}

/**
 * Runs one call of a server under its SERVER span (child of the caller's, from `carrier`'s
 * W3C trace context), records its duration, and logs it when it fails with anything but a
 * domain error. Unary calls and each call on a multiplexed stream go through here, so both
 * look the same in traces, metrics and logs. Resolves with the result or the ChatError.
 */
export function serveTraced<Res>(name: ServerCallName, peer: string, carrier: Record<string, string>, log: Logger, run: () => Promise<Res>): Promise<{ ok: Res } | { err: unknown }> {
  const metrics = ChatMetrics.get();
  const started = performance.now();
  const { service: svc, method } = name;
  const parent = propagation.extract(context.active(), carrier);
  return trace.getTracer("meshchat").startActiveSpan(`${svc}/${method}`, { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, ...peerAttributes(peer) } }, parent, (span) =>
    run().then(
      (ok) => {
        span.setAttribute("rpc.grpc.status_code", 0);
        span.end();
        metrics.rpcServerDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, "rpc.grpc.status_code": statusName(0) });
        return { ok };
      },
      (err: unknown) => {
        const chatErr = err instanceof ChatError ? err : undefined;
        if (!chatErr || chatErr.code === ErrorCode.ERROR_CODE_INTERNAL) log.error("rpc failed", { method, err });
        const se = toServiceError(err);
        const code = se.code ?? 2;
        span.setAttribute("rpc.grpc.status_code", code);
        // The caller's mistakes (NOT_FOUND, PERMISSION_DENIED...) are not this server's failures.
        if (isServerError(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: se.details });
        span.end();
        metrics.rpcServerDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, "rpc.grpc.status_code": statusName(code) });
        metrics.error(ErrorCode[(chatErr ?? ChatError.from(err)).code] ?? "UNKNOWN", { "rpc.service": svc }, err);
        return { err };
      },
    ),
  );
}

/**
 * Adapts async handlers to grpc-js callbacks: whatever a handler throws is
 * mapped once, in toServiceError, and logged when it is not a domain error.
 * With a caller `policy`, a caller whose certificate names an identity that may
 * not call the method is refused with PERMISSION_DENIED before the handler runs
 * (for a stream, before it starts: every call on it is then the caller's).
 */
export function implement<Def extends object>(def: Def, impl: AsyncService<Def>, log: Logger, policy?: Readonly<Record<string, readonly string[]>>): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const name of Object.keys(def) as Array<keyof Def & string>) {
    const spec = def[name] as { path?: string; requestStream?: boolean };
    const path = spec.path ?? `/${name}`;
    const [, svc = "", method = ""] = path.split("/");
    if (spec.requestStream) {
      const handler = impl[name] as StreamHandler<unknown, unknown>;
      out[name] = (call: ServerDuplexStream<unknown, unknown>) => {
        try {
          if (policy) authorizePeer(call, policy, methodOf(path));
        } catch (err) {
          call.emit("error", toServiceError(err));
          return;
        }
        handler(call, log);
      };
      continue;
    }
    const handler = impl[name] as UnaryHandler<unknown, unknown>;
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
  return out;
}
