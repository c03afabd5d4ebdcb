import { Metadata, type CallOptions, type ChannelCredentials, type Client, type ServiceError } from "@grpc/grpc-js";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type { ChatError } from "../errors/chat-error.js";
import { fromServiceError, grpcStatusOf } from "../errors/grpc-status.js";
import { multiplexOf, type MultiplexableMethod } from "./multiplex-client.js";
import { GRPC_MAX_MESSAGE_BYTES } from "./message-size.js";
import { serverAttributes, statusName } from "../telemetry/rpc.js";
import { ChatMetrics, markRemote, secondsSince } from "../telemetry/telemetry.js";

type Ctor<C> = new (address: string, credentials: ChannelCredentials, options?: object) => C;

/**
 * One channel to a service. Several addresses are balanced round robin by grpc-js
 * itself (the `ipv4:` target with a list), so a dead instance is skipped.
 */
export function makeClient<C extends Client>(ctor: Ctor<C>, addrs: string[], creds: ChannelCredentials, serverName?: string): C {
  const target = addrs.length === 1 ? addrs[0]! : `ipv4:${addrs.join(",")}`;
  const options: Record<string, unknown> = {
    "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    "grpc.max_receive_message_length": GRPC_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": GRPC_MAX_MESSAGE_BYTES,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2_000,
  };
  if (serverName) options["grpc.ssl_target_name_override"] = serverName;
  return new ctor(target, creds, options);
}

export type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/**
 * Calls a unary method and returns a promise; a failure is the ChatError the peer
 * threw (or UNAVAILABLE when the peer could not be reached). The active trace
 * context travels in the metadata as W3C traceparent (in the call, on a stream).
 * A client given a Multiplex stream (multiplex-client.ts) sends the call there;
 * its span, metrics and errors are the same either way.
 */
export function call<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, req: Req, timeoutMs = 5_000, extra?: Record<string, string>): Promise<Res> {
  // grpc-js generic clients carry the full method path ("/pkg.Service/Method") on each method.
  const path = (method as unknown as { path?: string }).path ?? "/unknown/unknown";
  const [, svc = "", name = ""] = path.split("/");
  const started = performance.now();
  return trace.getTracer("meshchat").startActiveSpan(
    `${svc}/${name}`,
    { kind: SpanKind.CLIENT, attributes: { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": name, ...serverAttributes(client.getChannel().getTarget()) } },
    (span) => {
      const done = (code: number, err?: ChatError) => {
        ChatMetrics.get().rpcClientDuration.record(secondsSince(started), { "rpc.system": "grpc", "rpc.service": svc, "rpc.method": name, "rpc.grpc.status_code": statusName(code) });
        span.setAttribute("rpc.grpc.status_code", code);
        // Any non-OK status is a failed call from the caller's side.
        if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
        span.end();
        if (err) markRemote(err);
      };
      const streamed = "requestSerialize" in method ? multiplexOf(client)?.call(method as unknown as MultiplexableMethod<Req, Res>, req, timeoutMs) : undefined;
      if (streamed) {
        return streamed.then(
          (res) => { done(0); return res; },
          (err: ChatError) => { done(grpcStatusOf(err.code), err); throw err; },
        );
      }
      const md = new Metadata();
      const carrier: Record<string, string> = {};
      propagation.inject(context.active(), carrier);
      for (const [k, v] of Object.entries(carrier)) md.set(k, v);
      if (extra) for (const [k, v] of Object.entries(extra)) md.set(k, v);
      return new Promise<Res>((resolve, reject) => {
        method.call(client, req, md, { deadline: Date.now() + timeoutMs }, (err, res) => {
          if (err) {
            const e = fromServiceError(err);
            done(err.code, e);
            reject(e);
          } else {
            done(0);
            resolve(res);
          }
        });
      });
    },
  );
}
