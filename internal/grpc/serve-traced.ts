import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { ChatError, ErrorCode } from "../errors/chat-error.js";
import { grpcStatusOf, publicMessage } from "../errors/grpc-status.js";
import type { Logger } from "../log/logger.js";
import { isServerError, peerAttributes, statusName } from "../telemetry/rpc.js";
import { ChatMetrics, secondsSince } from "../telemetry/telemetry.js";

/** One server call as the traces and metrics see it: "chat.internal.v1.ChatService" and "Send". */
export interface ServerCallName {
  service: string;
  method: string;
}

/**
 * Runs one call of a server under its SERVER span (child of the caller's, from `carrier`'s
 * W3C trace context), records its duration, and logs it when it fails with anything but a
 * domain error. Unary calls and each call on a multiplexed stream go through here, so both
 * look the same in traces, metrics and logs. Resolves with the result or the ChatError the
 * caller is told.
 */
export function serveTraced<Res>(name: ServerCallName, peer: string, carrier: Record<string, string>, log: Logger, run: () => Promise<Res>): Promise<{ ok: Res } | { err: ChatError }> {
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
        if (!(err instanceof ChatError) || err.code === ErrorCode.ERROR_CODE_INTERNAL) log.error("rpc failed", { method, err });
        // Mapped once, here: the unary status, the stream's CallError and the error metric are all made from it.
        const e = ChatError.from(err);
        const code = grpcStatusOf(e.code);
        span.setAttribute("rpc.grpc.status_code", code);
        // The caller's mistakes (NOT_FOUND, PERMISSION_DENIED...) are not this server's failures.
        if (isServerError(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: publicMessage(e) });
        span.end();
        metrics.rpcServerDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": method, "rpc.grpc.status_code": statusName(code) });
        metrics.error(ErrorCode[e.code] ?? "UNKNOWN", { "rpc.service": svc }, err);
        return { err: e };
      },
    ),
  );
}
