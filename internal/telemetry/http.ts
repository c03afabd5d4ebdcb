import type http from "node:http";
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";

/**
 * An HTTP SERVER span (OpenTelemetry HTTP conventions) for one request on a
 * known route; the caller's traceparent header, if any, is the parent. Ended
 * with the response status by `end`.
 */
export function startHttpServerSpan(req: http.IncomingMessage, route: string): { span: Span; end(status: number): void } {
  const parent = propagation.extract(context.active(), req.headers as Record<string, string>);
  const method = req.method ?? "GET";
  const span = trace.getTracer("meshchat").startSpan(`${method} ${route}`, {
    kind: SpanKind.SERVER,
    attributes: {
      "http.request.method": method,
      "http.route": route,
      "url.path": route,
      "url.scheme": "http",
      ...(req.socket.remoteAddress ? { "network.peer.address": req.socket.remoteAddress, "network.peer.port": req.socket.remotePort ?? 0 } : {}),
      ...(req.headers["user-agent"] ? { "user_agent.original": req.headers["user-agent"] } : {}),
    },
  }, parent);
  let ended = false;
  return {
    span,
    end(status: number) {
      if (ended) return;
      ended = true;
      span.setAttribute("http.response.status_code", status);
      // HTTP conventions: 5xx is a server error; 4xx is the client's and leaves a server span unset.
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** Runs a request handler inside an HTTP server span, ended when the response is finished. */
export function withHttpServerSpan(req: http.IncomingMessage, res: http.ServerResponse, route: string, fn: () => Promise<void>): Promise<void> {
  const s = startHttpServerSpan(req, route);
  res.once("close", () => s.end(res.statusCode));
  return context.with(trace.setSpan(context.active(), s.span), fn);
}
